package dvirtual

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, s string, sep byte) *Def {
	t.Helper()
	d, err := Parse(strings.NewReader(s), "dovecot-virtual", sep)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestDocumentationExamples(t *testing.T) {
	// From Dovecot's documentation of the virtual plugin.
	d := parse(t, "*\n  all\n", '.')
	if len(d.Boxes) != 1 || d.Rules[0] != "all" || d.Boxes[0].Name != "*" {
		t.Errorf("all: %+v", d)
	}
	d = parse(t, "-Trash\n-Trash/*\n*\n  unseen\n", '/')
	if len(d.Boxes) != 3 || !d.Boxes[0].Negative || d.Rules[0] != "unseen" {
		t.Errorf("unseen: %+v", d)
	}
	got := d.Assign([]string{"INBOX", "Trash", "Trash/Old", "Lists/go"})
	if !reflect.DeepEqual(got, map[string]int{"INBOX": 0, "Lists/go": 0}) {
		t.Errorf("assign = %v", got)
	}
	// Several groups with their own rules in one file; a comment; the
	// rule continued over two lines.
	d = parse(t, "# my lists\nINBOX\nSent\n  or from boss\n  subject urgent\n\nLists.*\n  unseen\n", '.')
	if len(d.Rules) != 2 || d.Rules[0] != "or from boss subject urgent" || d.Rules[1] != "unseen" {
		t.Fatalf("groups: %+v", d)
	}
	if d.Boxes[0].Rule != 0 || d.Boxes[1].Rule != 0 || d.Boxes[2].Rule != 1 || d.Boxes[2].Name != "Lists/*" {
		t.Errorf("boxes: %+v", d.Boxes)
	}
}

func TestPrefixesAndSave(t *testing.T) {
	d := parse(t, "!Saved\n+INBOX\n*\n  flagged\n", '/')
	if d.SaveMailbox() != "Saved" || d.Boxes[1].Name != "INBOX" {
		t.Errorf("%+v", d)
	}
	// inbox is case-insensitive
	if d := parse(t, "inbox\n", '/'); d.Boxes[0].Name != "INBOX" || d.Rules[0] != "" {
		t.Errorf("inbox: %+v", d)
	}
}

func TestExplicitBeatsWildcard(t *testing.T) {
	d := parse(t, "*\n  seen\nWork\n  flagged\n", '/')
	got := d.Assign([]string{"INBOX", "Work"})
	if got["Work"] != 1 || got["INBOX"] != 0 {
		t.Errorf("explicit Work should keep its rule: %v", got)
	}
	// Negative patterns apply to wildcard results only.
	d = parse(t, "-Work\nWork\n*\n", '/')
	if got := d.Assign([]string{"Work", "Other"}); len(got) != 2 {
		t.Errorf("explicit mailbox excluded by a negative: %v", got)
	}
	// The first matching wildcard decides.
	d = parse(t, "Lists/*\n  unseen\n\n*\n  flagged\n", '/')
	if got := d.Assign([]string{"Lists/go", "INBOX"}); got["Lists/go"] != 0 || got["INBOX"] != 1 {
		t.Errorf("first wildcard: %v", got)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"  unseen\n", "dovecot-virtual:1: search rule without a mailbox"},
		{"!A\n!B\n", "dovecot-virtual:2: multiple save mailboxes defined"},
		{"# nothing\n", "dovecot-virtual:1: no mailboxes defined"},
		{"-Trash\n", "dovecot-virtual:1: no mailboxes defined"},
		{"INBOX\n  since yesterday\n", `dovecot-virtual:2: previous search rule is invalid: query: at 7: expected a date like 1-Feb-2024, got "yesterday"`},
		{"/private/comment:x*\n", "dovecot-virtual:1: metadata filters (/entry:value) are not supported by vmfs"},
		{"INBOX\n\n  unseen\n", "dovecot-virtual:3: search rule without a mailbox"},
	} {
		_, err := Parse(strings.NewReader(tc.in), "dovecot-virtual", '/')
		var e *Error
		if err == nil || !errors.As(err, &e) || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.in, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*\n  all\n", "-Trash\n*\n  unseen\n", "!Saved\n+INBOX\n*\n  flagged\n", "INBOX\n\n  x\n", "# c\nA.B\n  or seen flagged\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(strings.NewReader(s), "f", '.')
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, b := range d.Boxes {
			if b.Rule < 0 || b.Rule >= len(d.Rules) {
				t.Fatalf("box %+v without a rule (%d rules)", b, len(d.Rules))
			}
		}
		d.Assign([]string{"INBOX", "A/B", "Trash"})
	})
}
