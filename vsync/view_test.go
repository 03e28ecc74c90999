package vsync

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"vmfs/internal/message"
)

// TestReadsNeverWaitForBodies: while the engine reads a message's body for
// a BODY folder (here held up until the test lets it go, as a 300 MB
// message would hold it), the filesystem's reads — listings, lookups by
// name, generations — of that folder and of every other answer at once,
// from the last published views.
func TestReadsNeverWaitForBodies(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a\n\nneedle\n")
	e := f.open([]Folder{
		{Name: "Body", Mailboxes: []string{"*"}, Query: `BODY "needle"`},
		{Name: "All", Mailboxes: []string{"*"}, Query: "ALL"},
	})
	entered, release := make(chan struct{}, 1), make(chan struct{})
	e.textOf = func(p string, headers bool, fn func(string) bool) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return message.TextOf(p, headers, fn)
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	writeMsg(t, filepath.Join(f.root, "new", "2.b"), "Subject: b\n\nneedle too\n")
	synced := make(chan error, 1)
	go func() { synced <- e.FilesChanged(context.Background(), map[string][]string{f.root: {"new/2.b"}}) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the body was never read")
	}

	read := make(chan string, 1)
	go func() {
		for _, folder := range []string{"All", "Body"} {
			l, gen, err := e.Names(folder)
			if err != nil || len(l) != 1 || gen == 0 {
				read <- fmt.Sprintf("%s: listing %d entries, generation %d: %v", folder, len(l), gen, err)
				return
			}
			if _, err := e.Lookup(folder, l[0].Name, l[0].New); err != nil {
				read <- folder + ": lookup: " + err.Error()
				return
			}
			if _, err := e.Get(folder, l[0].Name); err != nil {
				read <- folder + ": get: " + err.Error()
				return
			}
			e.Gen(folder)
		}
		e.Folders()
		read <- ""
	}()
	select {
	case msg := <-read:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reads waited for a body being read")
	}

	close(release)
	released = true
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{"All", "Body"} {
		if l, _, _ := e.Names(folder); len(l) != 2 {
			t.Errorf("%s lists %d messages after the sync, want 2", folder, len(l))
		}
	}
}
