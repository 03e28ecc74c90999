package query_test

import (
	"path/filepath"
	"sort"
	"testing"

	"vmfs/internal/maildir"
	"vmfs/internal/message"
	"vmfs/internal/query"
)

// everything a query can need, so one load serves every query
var allNeeds = query.Needs{
	Headers: []string{"from", "to", "cc", "bcc", "subject", "list-id", "x-spam-score", "message-id", "x-thing"},
	Sent:    true, Body: true, AllHeaders: true, Threads: true,
}

type loaded struct {
	key string // mailbox + "/" + base
	msg *query.Msg
}

// loadTree loads every message under a backend root, as the engine will.
func loadTree(t testing.TB, root string) []loaded {
	t.Helper()
	tr, err := maildir.Discover(root)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	var out []loaded
	for _, mb := range tr.Mailboxes {
		kw, err := maildir.ReadKeywords(mb.Path)
		if err != nil {
			t.Fatal(err)
		}
		ents, err := maildir.List(mb.Path)
		if err != nil {
			t.Fatalf("list %s: %v", mb.Name, err)
		}
		for _, e := range ents {
			sub := "cur"
			if e.New {
				sub = "new"
			}
			m, err := message.Load(filepath.Join(mb.Path, sub, e.Name), allNeeds)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			n, _ := maildir.ParseName(e.Name)
			m.Mailbox, m.Flags, m.Recent = mb.Name, n.Flags, e.New
			for _, l := range maildir.KeywordLetters(n.Flags) {
				if k, ok := kw[l]; ok {
					m.Keywords = append(m.Keywords, k)
				}
			}
			out = append(out, loaded{key: mb.Name + "/" + n.Base, msg: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}
