package vsync

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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
			l, gen, err := e.names(folder)
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
		if l, _, _ := e.names(folder); len(l) != 2 {
			t.Errorf("%s lists %d messages after the sync, want 2", folder, len(l))
		}
	}
}

// names returns a folder's listing and its generation, as the filesystem
// reads it (View.Scan).
func (e *Engine) names(folder string) ([]NameEntry, uint64, error) {
	v, err := e.View(folder)
	if err != nil {
		return nil, 0, err
	}
	var l []NameEntry
	v.t.ascend(func(e *vent) bool {
		l = append(l, NameEntry{UID: e.uid, Name: e.name, New: e.new})
		return true
	})
	return l, v.Gen(), nil
}

// TestViewScan: Scan goes on after any UID, stops when told, and a View
// already taken does not change when the folder does.
func TestViewScan(t *testing.T) {
	f := newFixture(t, 50)
	for i := range 8 { // some in new/
		writeMsg(t, filepath.Join(f.root, "new", fmt.Sprintf("%d.n%d.host", 1800000000+i, i)), "Subject: n\n\nx\n")
	}
	e := f.open([]Folder{{Name: "All", Mailboxes: []string{"*"}, Query: "ALL"}})
	v, err := e.View("All")
	if err != nil {
		t.Fatal(err)
	}
	all, _, _ := e.names("All")
	if len(all) < 50 {
		t.Fatalf("%d entries", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].UID >= all[i].UID {
			t.Fatalf("entries out of UID order: %d before %d", all[i-1].UID, all[i].UID)
		}
	}
	for _, isNew := range []bool{false, true} {
		for _, after := range []uint32{0, all[0].UID, all[9].UID, all[len(all)-1].UID, ^uint32(0)} {
			var got []uint32
			v.Scan(after, isNew, func(n NameEntry) bool {
				got = append(got, n.UID)
				return len(got) < 5
			})
			var want []uint32
			for _, n := range all {
				if n.New == isNew && n.UID > after && len(want) < 5 {
					want = append(want, n.UID)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Scan(%d, new %v) = %v, want %v", after, isNew, got, want)
			}
		}
	}
	for _, isNew := range []bool{false, true} {
		var want []NameEntry
		for _, n := range all {
			if n.New == isNew && n.UID > all[4].UID {
				want = append(want, n)
			}
		}
		if len(want) == 0 {
			t.Fatalf("no entry in new/ = %v after the fifth", isNew)
		}
		var got []NameEntry
		for after, more := all[4].UID, true; more; {
			var l []NameEntry
			l, more = v.List(after, isNew, make([]NameEntry, 0, 3))
			if len(l) == 0 && more {
				t.Fatal("List: nothing, and more")
			}
			got = append(got, l...)
			if len(l) > 0 {
				after = l[len(l)-1].UID
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(isNew %v) in threes = %v, want %v", isNew, got, want)
		}
	}
	if uid, ok := v.UIDOf(all[3].Name[:strings.IndexByte(all[3].Name, ':')]); !ok || uid != all[3].UID {
		t.Errorf("UIDOf(%q) = %d, %v", all[3].Name, uid, ok)
	}
	gen := v.Gen()
	writeMsg(t, filepath.Join(f.root, "cur", "9999999999.new.host:2,S"), "Subject: n\n\nx\n")
	if err := e.MailboxChanged(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	n := v.t.len()
	if n != len(all) || v.Gen() != gen {
		t.Errorf("a View taken before a delivery lists %d (gen %d), want %d (gen %d)", n, v.Gen(), len(all), gen)
	}
	if now, g, _ := e.names("All"); len(now) != len(all)+1 || g == gen {
		t.Errorf("the folder now lists %d (gen %d), want %d and a new generation", len(now), g, len(all)+1)
	}
}
