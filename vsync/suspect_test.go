package vsync

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestRenameInProgressIsNoDelete: a message file the watcher reported that
// was renamed again before the engine looked (mbsync setting flags faster
// than vmfs follows) stays listed, under its old name and UID, until its
// new name is reported; a file that is really gone leaves once it is
// reported again (after the watcher's barrier), still gone.
func TestRenameInProgressIsNoDelete(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a\n\nx\n")
	writeMsg(t, filepath.Join(f.root, "cur", "2.b:2,"), "Subject: b\n\nx\n")
	var mu sync.Mutex
	var asked []string
	e, err := Open(f.state, Config{Root: f.root, Folders: []Folder{{Name: "All", Mailboxes: []string{"*"}, Query: "ALL"}}, Now: f.clk.now,
		Recheck: func(files map[string][]string) {
			mu.Lock()
			defer mu.Unlock()
			for _, rels := range files {
				asked = append(asked, rels...)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f.e = e
	ctx := context.Background()
	if err := e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	uidOf := func(base string) uint32 {
		t.Helper()
		for _, ent := range f.list("All") {
			if filepath.Base(ent.Path)[:len(base)] == base {
				return ent.UID
			}
		}
		return 0
	}
	uid1 := uidOf("1.a")

	// 1.a: renamed twice; the watcher has told of the first rename only.
	cur := filepath.Join(f.root, "cur")
	os.Rename(filepath.Join(cur, "1.a:2,"), filepath.Join(cur, "1.a:2,F"))
	os.Rename(filepath.Join(cur, "1.a:2,F"), filepath.Join(cur, "1.a:2,FS"))
	// 2.b: deleted.
	os.Remove(filepath.Join(cur, "2.b:2,"))
	if err := e.FilesChanged(ctx, map[string][]string{f.root: {"cur/1.a:2,", "cur/1.a:2,F", "cur/2.b:2,"}}); err != nil {
		t.Fatal(err)
	}
	if uidOf("1.a") != uid1 || uidOf("2.b") == 0 {
		t.Fatalf("a message left while its rename or delete was unclear: %+v", f.list("All"))
	}
	mu.Lock()
	if len(asked) != 2 {
		t.Errorf("asked to report again %q, want 1.a:2, and 2.b:2,", asked)
	}
	mu.Unlock()

	// The rest of the rename is reported: the message has its new name,
	// the same UID.
	if err := e.FilesChanged(ctx, map[string][]string{f.root: {"cur/1.a:2,F", "cur/1.a:2,FS"}}); err != nil {
		t.Fatal(err)
	}
	l := f.list("All")
	if uidOf("1.a") != uid1 || len(l) != 2 {
		t.Fatalf("after the rename: %+v (uid of 1.a was %d)", l, uid1)
	}
	for _, ent := range l {
		if filepath.Base(ent.Path) == "1.a:2,F" || filepath.Base(ent.Path) == "1.a:2," {
			t.Fatalf("1.a listed under an old name: %+v", ent)
		}
	}

	// 2.b, reported again, still gone: deleted.
	if err := e.FilesChanged(ctx, map[string][]string{f.root: {"cur/2.b:2,"}}); err != nil {
		t.Fatal(err)
	}
	if l := f.list("All"); len(l) != 1 || uidOf("2.b") != 0 {
		t.Fatalf("a deleted message stayed: %+v", l)
	}
}
