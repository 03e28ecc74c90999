package query

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SINCE yesterday", `query: at 7: expected a date like 1-Feb-2024, got "yesterday"`},
		{"SEEN SINCE 31-Feb-2024", `query: at 12: expected a date like 1-Feb-2024, got "31-Feb-2024"`},
		{"FROM", "query: at 5: expected a string to search FROM for, got the end of the query"},
		{"OR SEEN", "query: at 8: expected a search key, got the end of the query"},
		{"(SEEN", `query: at 6: expected ")", got the end of the query`},
		{"SEEN)", `query: at 5: unbalanced ")"`},
		{"BOGUS", `query: at 1: expected a search key, got "BOGUS"`},
		{`SUBJECT "abc`, "query: at 9: unterminated quoted string"},
		{"LARGER big", `query: at 8: expected a number of bytes, got "big"`},
		{"YOUNGER -5", `query: at 9: expected a number of seconds, got "-5"`},
		{"INTHREAD SEEN", `query: at 10: expected the thread algorithm REFS after INTHREAD, got "SEEN"`},
		{"HEADER \"\" x", `query: at 8: expected a header field name, got ""`},
		{"()", `query: at 1: expected a search key inside "()"`},
		{`"SEEN"`, `query: at 1: expected a search key, got the string "SEEN"`},
		{"KEYWORD", "query: at 8: expected a keyword, got the end of the query"},
	} {
		_, err := Parse(tc.in)
		var qe *Error
		if err == nil || !errors.As(err, &qe) || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestParseShapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "ALL"},
		{"all", "ALL"},
		{"seen flagged", "(SEEN FLAGGED)"},
		{"unseen", "NOT SEEN"},
		{"OR seen (flagged draft)", "OR SEEN (FLAGGED DRAFT)"},
		{`from "a b" subject x`, `(FROM "a b" SUBJECT "x")`},
		{`HEADER List-Id ""`, `HEADER "list-id" ""`},
		{"since 1-feb-2024", "SINCE 1-Feb-2024"},
		{"SENTON 01-Feb-2024", "SENTON 1-Feb-2024"},
		{"not not seen", "NOT NOT SEEN"},
		{"younger 3600 larger 10", "(YOUNGER 3600 LARGER 10)"},
		{"new", "(RECENT NOT SEEN)"},
		{"old", "NOT RECENT"},
		{"X-MAILBOX Lists/*", `MAILBOX "Lists/*"`},
		{"inthread refs from x", `INTHREAD REFS FROM "x"`},
		{`subject "quote \" and \\ backslash"`, `SUBJECT "quote \" and \\ backslash"`},
		{"unkeyword $Junk", "NOT KEYWORD $Junk"},
	} {
		n, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := n.String(); got != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, got, tc.want)
		}
		// The printed form parses to the same thing.
		n2, err := Parse(n.String())
		if err != nil || n2.String() != n.String() {
			t.Errorf("reparse of %q: %v %v", n.String(), n2, err)
		}
	}
}

func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		in        string
		flagsOnly bool
		headers   string
		body, all bool
		timeRel   bool
		threads   bool
		sent      bool
		stat      bool
	}{
		{in: "UNSEEN", flagsOnly: true},
		{in: "FLAGGED LARGER 5 SINCE 1-Jan-2020 MAILBOX x", flagsOnly: true, stat: true},
		{in: "YOUNGER 604800", flagsOnly: true, timeRel: true, stat: true},
		{in: "NOT OR SMALLER 10 ON 1-Jan-2020", flagsOnly: true, stat: true},
		{in: "OR KEYWORD $x NEW", flagsOnly: true},
		{in: "FROM a SUBJECT b", headers: "from,subject"},
		{in: "HEADER List-Id x OR TO a CC b", headers: "cc,list-id,to"},
		{in: "BODY x", body: true},
		{in: "TEXT x", body: true, all: true},
		{in: "SENTSINCE 1-Jan-2020", sent: true},
		{in: "INTHREAD REFS SEEN", threads: true},
	} {
		q := MustCompile(tc.in)
		n := q.Needs()
		if n.FlagsOnly() != tc.flagsOnly || strings.Join(n.Headers, ",") != tc.headers || n.Body != tc.body ||
			n.AllHeaders != tc.all || n.TimeRelated != tc.timeRel || n.Threads != tc.threads || n.Sent != tc.sent || n.Stat != tc.stat {
			t.Errorf("Needs(%q) = %+v", tc.in, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ALL", "OR SEEN (FLAGGED DRAFT)", `FROM "a b" SUBJECT x`, "SINCE 1-Feb-2024", "INTHREAD REFS FROM x",
		`HEADER List-Id ""`, "NOT (", `"`, "YOUNGER 99999999999999999999", "MAILBOX *",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || qe.Pos < 1 || qe.Pos > len(s)+1 {
				t.Fatalf("Parse(%q): bad error %v", s, err)
			}
			return
		}
		out := n.String()
		n2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) printed %q which does not parse: %v", s, out, err)
		}
		if n2.String() != out {
			t.Fatalf("unstable print: %q -> %q -> %q", s, out, n2.String())
		}
	})
}
