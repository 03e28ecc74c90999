package query

import (
	"strings"
	"testing"
	"time"
)

func TestFold(t *testing.T) {
	for _, tc := range []struct {
		hay, needle string
		ok          bool
	}{
		{"Hello World", "WORLD", true},
		{"Café", "CAFÉ", true},
		{"Café", "cafe", true}, // decomposed: "CAFE" + combining acute
		{"naïve", "naive", false},
		{"Straße", "STRASSE", false}, // simple case mapping only, as Dovecot
		{"Straße", "straße", true},
		{"ΑΘΗΝΑ", "αθηνα", true},
		{"Москва", "МОСКВА", true},
		{"Ёлка", "ёлка", true},
		{"ﬁnance", "finance", true},
		{"abc", "", true},
		{"", "x", false},
	} {
		if got := contains(tc.hay, Fold(tc.needle)); got != tc.ok {
			t.Errorf("contains(%q, %q) = %v", tc.hay, tc.needle, got)
		}
	}
}

func TestMatchKeys(t *testing.T) {
	now := time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)
	text := "Hello Wörld, this is the body. Long tail " + strings.Repeat("x", 100) + " needle-at-end"
	m := &Msg{
		Mailbox:  "Lists/Go",
		Flags:    "FSa",
		Keywords: []string{"$Important"},
		Recent:   false,
		Received: time.Date(2024, 6, 10, 23, 30, 0, 0, time.UTC),
		Size:     2048,
		Sent:     time.Date(2024, 6, 11, 1, 30, 0, 0, time.FixedZone("", 2*3600)), // 10 Jun 23:30 UTC
		Headers: map[string][]string{
			"from":    {"Jürgen Müller <jm@example.de>"},
			"to":      {"team@example.org"},
			"subject": {"Re: Übergröße release"},
			"list-id": {"golang-nuts <golang-nuts.googlegroups.com>"},
			"x-empty": {""},
		},
		Text: func(headers bool, fn func(string) bool) error {
			if headers && fn("subject: Re: Übergröße release\n") {
				return nil
			}
			// deliver in small chunks so matches cross chunk boundaries
			for i := 0; i < len(text); i += 7 {
				end := min(i+7, len(text))
				if fn(text[i:end]) {
					return nil
				}
			}
			return nil
		},
	}
	for _, tc := range []struct {
		q  string
		ok bool
	}{
		{"ALL", true},
		{"SEEN", true}, {"UNSEEN", false}, {"FLAGGED", true}, {"UNFLAGGED", false},
		{"ANSWERED", false}, {"UNANSWERED", true}, {"DELETED", false}, {"UNDELETED", true},
		{"DRAFT", false}, {"UNDRAFT", true},
		{"RECENT", false}, {"OLD", true}, {"NEW", false},
		{"KEYWORD $important", true}, {"KEYWORD other", false}, {"UNKEYWORD other", true},
		{"FROM müller", true}, {"FROM MÜLLER", true}, {"FROM nobody", false},
		{"TO team", true}, {"CC team", false}, {"BCC x", false},
		{"SUBJECT übergröße", true}, {"SUBJECT RELEASE", true}, {"SUBJECT absent", false},
		{"HEADER List-Id golang", true}, {`HEADER list-id ""`, true}, {`HEADER X-Empty ""`, true},
		{`HEADER X-Missing ""`, false},
		{"BODY wörld", true}, {"BODY needle-at-end", true}, {"BODY übergröße", false}, {"TEXT übergröße", true},
		{"BODY xxxxxxxxxx", true}, {"BODY absent", false}, {`BODY ""`, true},
		{"BEFORE 10-Jun-2024", false}, {"BEFORE 11-Jun-2024", true}, {"ON 10-Jun-2024", true}, {"SINCE 11-Jun-2024", false},
		{"SENTON 11-Jun-2024", true}, {"SENTON 10-Jun-2024", false}, // the sender's wall clock
		{"SENTBEFORE 12-Jun-2024", true}, {"SENTSINCE 12-Jun-2024", false},
		{"YOUNGER 391000", true}, {"YOUNGER 390000", false}, {"OLDER 390000", true}, {"OLDER 391000", false}, // age 390600 s
		{"LARGER 2047", true}, {"LARGER 2048", false}, {"SMALLER 2049", true}, {"SMALLER 2048", false},
		{"MAILBOX Lists/*", true}, {"MAILBOX Lists/Go", true}, {"MAILBOX %", false}, {"MAILBOX INBOX", false},
		{"OR UNSEEN FLAGGED", true}, {"OR UNSEEN DRAFT", false}, {"NOT SEEN", false},
		{"(SEEN FLAGGED) NOT DRAFT", true}, {"SEEN (FLAGGED DRAFT)", false},
	} {
		q, err := Compile(tc.q)
		if err != nil {
			t.Fatalf("%q: %v", tc.q, err)
		}
		if got := q.Match(m, now); got != tc.ok {
			t.Errorf("%q = %v, want %v", tc.q, got, tc.ok)
		}
	}
	// Relative dates move with time, without any change to the message.
	q := MustCompile("YOUNGER 604800")
	if !q.Match(m, now) || q.Match(m, now.Add(72*time.Hour)) {
		t.Error("YOUNGER does not move with time")
	}
}

func TestInThread(t *testing.T) {
	ms := []*Msg{
		{ID: "a@x", Headers: map[string][]string{"from": {"alice"}}},
		{ID: "b@x", References: []string{"a@x"}, Headers: map[string][]string{"from": {"bob"}}},
		{ID: "c@x", References: []string{"b@x"}, Headers: map[string][]string{"from": {"carol"}}},
		{ID: "d@x", Headers: map[string][]string{"from": {"dave"}}},
		{ID: "e@x", References: []string{"zzz@x"}, Headers: map[string][]string{"from": {"erin"}}},
		{ID: "f@x", References: []string{"zzz@x"}, Headers: map[string][]string{"from": {"frank"}}}, // sibling via a missing parent
	}
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"INTHREAD REFS FROM carol", "YYYNNN"},
		{"INTHREAD REFS FROM dave", "NNNYNN"},
		{"INTHREAD REFS FROM frank", "NNNNYY"},
		{"NOT INTHREAD REFS FROM alice", "NNNYYY"},
		{"INTHREAD REFS FROM nobody", "NNNNNN"},
		{"OR FROM dave INTHREAD REFS FROM erin", "NNNYYY"},
	} {
		res := MustCompile(tc.q).MatchAll(ms, time.Now())
		var b strings.Builder
		for _, ok := range res {
			b.WriteByte(map[bool]byte{true: 'Y', false: 'N'}[ok])
		}
		if b.String() != tc.want {
			t.Errorf("%q = %s, want %s", tc.q, b.String(), tc.want)
		}
	}
}
