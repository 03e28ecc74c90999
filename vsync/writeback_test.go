package vsync

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

// backendFiles lists every message file under root (relative paths).
func backendFiles(t *testing.T, root string) map[string]bool {
	out := map[string]bool{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if d := filepath.Base(filepath.Dir(p)); d == "cur" || d == "new" {
				rel, _ := filepath.Rel(root, p)
				out[rel] = true
			}
		}
		return nil
	})
	return out
}

// initMaildir makes dir a mailbox: cur/, new/ and tmp/.
func initMaildir(t *testing.T, dir string) {
	t.Helper()
	if err := maildir.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
}

func writeMsg(t *testing.T, p, body string) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSetFlagsKeepsEverything(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a,U=7,S=20,W=21:2,Fab,extra=1"), "Subject: one\n\nbody\n")
	writeMsg(t, filepath.Join(f.root, "new", "2.b,U=8"), "Subject: two\n\nbody\n")
	e := f.open(DefaultFolders())
	l := f.list("Unread")
	if len(l) != 2 {
		t.Fatalf("Unread = %+v", l)
	}
	var notified [][]string
	e.cfg.OnChange = func(fs []string) { notified = append(notified, fs) }
	// Mark the first seen, as mutt renames cur/X:2,Fab to cur/X:2,FSab.
	ent, err := e.SetFlags(context.Background(), "Unread", l[0].Name, l[0].New, maildir.BaseOf(l[0].Name)+":2,FSab,extra=1", false)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(f.root, "cur", "1.a,U=7,S=20,W=21:2,FSab,extra=1")
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("backend not renamed: %v (have %v)", err, backendFiles(t, f.root))
	}
	if ent.Path != want || maildir.BaseOf(ent.Name) != maildir.BaseOf(l[0].Name) || !strings.HasSuffix(ent.Name, ":2,FSab,extra=1") {
		t.Errorf("entry after SetFlags: %+v", ent)
	}
	if len(f.list("Unread")) != 2 || len(notified) == 0 {
		t.Fatal("the message read through the folder must linger, and the change be notified")
	}
	// new/ -> cur/ with a flag, for the message in new/.
	ent, err = e.SetFlags(context.Background(), "Unread", l[1].Name, l[1].New, maildir.BaseOf(l[1].Name)+":2,S", false)
	if err != nil || ent.New {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "cur", "2.b,U=8:2,S")); err != nil {
		t.Fatalf("new->cur: %v", backendFiles(t, f.root))
	}
	if len(backendFiles(t, f.root)) != 2 {
		t.Fatalf("files: %v", backendFiles(t, f.root))
	}
}

// TestSetFlagsRacingBackendRename: a client renames a name the message no
// longer has (mbsync added R meanwhile): ENOENT, and mbsync's flags stay,
// as on a plain Maildir; after the rescan the client's retry on the new
// name works.
func TestSetFlagsRacingBackendRename(t *testing.T) {
	f := newFixture(t, 0)
	p := filepath.Join(f.root, "cur", "1.a:2,")
	writeMsg(t, p, "Subject: x\n\nbody\n")
	os.MkdirAll(filepath.Join(f.root, "new"), 0o755)
	e := f.open(DefaultFolders())
	l := f.list("Unread")
	os.Rename(p, filepath.Join(f.root, "cur", "1.a:2,R"))
	base := maildir.BaseOf(l[0].Name)
	if _, err := e.SetFlags(context.Background(), "Unread", l[0].Name, false, base+":2,S", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rename of a name renamed meanwhile: %v, want ErrNotExist", err)
	}
	if files := backendFiles(t, f.root); len(files) != 1 || !files["cur/1.a:2,R"] {
		t.Fatalf("after the refused rename: %v", files)
	}
	if err := e.MailboxChanged(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	// The old name is gone, as on a disk; the new one is found.
	if ent, err := e.Lookup("Unread", l[0].Name, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lookup of the old name: %+v, %v", ent, err)
	}
	if ent, err := e.Lookup("Unread", base+":2,R", false); err != nil || ent.Name != base+":2,R" {
		t.Fatalf("Lookup of the new name: %+v, %v", ent, err)
	}
	if _, err := e.SetFlags(context.Background(), "Unread", l[0].Name, false, base+":2,S", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rename from the stale name: %v", err)
	}
	if _, err := e.SetFlags(context.Background(), "Unread", base+":2,R", false, base+":2,RS", false); err != nil {
		t.Fatal(err)
	}
	if files := backendFiles(t, f.root); len(files) != 1 || !files["cur/1.a:2,RS"] {
		t.Fatalf("after the retry: %v", files)
	}
	// Set then clear: back onto the name it had before is a flag change.
	if _, err := e.SetFlags(context.Background(), "Unread", base+":2,RS", false, base+":2,R", false); err != nil {
		t.Fatal(err)
	}
	if files := backendFiles(t, f.root); len(files) != 1 || !files["cur/1.a:2,R"] {
		t.Fatalf("after clearing S: %v", files)
	}
}

func TestDeleteAndDuplicates(t *testing.T) {
	f := newFixture(t, 0)
	body := "Subject: dup\nMessage-ID: <d@x>\n\nsame\n"
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), body)
	writeMsg(t, filepath.Join(f.root, ".Other", "cur", "1.a:2,"), body)
	os.MkdirAll(filepath.Join(f.root, "new"), 0o755)
	os.MkdirAll(filepath.Join(f.root, ".Other", "new"), 0o755)
	e := f.open(DefaultFolders())
	l := f.list("Unread")
	if len(l) != 2 || l[0].Name == l[1].Name {
		t.Fatalf("duplicates must show once per backend file with distinct names: %+v", l)
	}
	if err := e.Delete(context.Background(), "Unread", l[0].Name, l[0].New); err != nil {
		t.Fatal(err)
	}
	files := backendFiles(t, f.root)
	if len(files) != 1 {
		t.Fatalf("delete removed the wrong number of files: %v", files)
	}
	if got := f.list("Unread"); len(got) != 1 || got[0].Name != l[1].Name {
		t.Fatalf("after delete: %+v", got)
	}
	if err := e.Delete(context.Background(), "Unread", l[0].Name, l[0].New); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second delete: %v", err)
	}
}

func TestDeliver(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	e := f.open(append(DefaultFolders(), Folder{Name: "Lists/Go", Mailboxes: []string{"Lists/*"}, Query: "FROM golang", Save: "Lists/golang"}))
	if _, err := e.Deliver(context.Background(), "Unread", "", strings.NewReader("x"), "", false, time.Time{}); !errors.Is(err, ErrNoSave) {
		t.Fatalf("deliver without save: %v", err)
	}
	if len(backendFiles(t, f.root)) != 0 {
		t.Fatal("something was written")
	}
	msg := "From: someone@else\nSubject: appended\n\nhello\n"
	date := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	ent, err := e.Deliver(context.Background(), "Lists/Go", "123.client.host", strings.NewReader(msg), "S", true, date)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ent.Path)
	if err != nil || !bytes.Equal(b, []byte(msg)) || !strings.Contains(ent.Path, ".Lists.golang/cur/") {
		t.Fatalf("delivered %+v: %q %v", ent, b, err)
	}
	// It does not match FROM golang, but stays visible until the linger ends.
	l := f.list("Lists/Go")
	if len(l) != 1 || l[0].Name != ent.Name || ent.Name != "123.client.host:2,S" {
		t.Fatalf("Lists/Go = %+v (delivered as %q)", l, ent.Name)
	}
	if fi, err := os.Stat(ent.Path); err != nil || !fi.ModTime().Equal(date) {
		t.Fatalf("delivered file's mtime %v, want the client's %v", fi.ModTime(), date)
	}
	// The client's name survives a restart.
	e.Close()
	f.open(append(DefaultFolders(), Folder{Name: "Lists/Go", Mailboxes: []string{"Lists/*"}, Query: "FROM golang", Save: "Lists/golang"}))
	if l := f.list("Lists/Go"); len(l) != 1 || l[0].Name != "123.client.host:2,S" {
		t.Fatalf("after restart: %+v", l)
	}
}

func TestDeleteOfAMessageRenamedMeanwhile(t *testing.T) {
	f := newFixture(t, 0)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a\n\nx\n")
	writeMsg(t, filepath.Join(f.root, "cur", "2.b:2,"), "Subject: b\n\nx\n")
	os.MkdirAll(filepath.Join(f.root, "new"), 0o755)
	e := f.open(DefaultFolders())
	var target Entry
	for _, x := range f.list("Unread") {
		if strings.HasSuffix(x.Path, "1.a:2,") {
			target = x
		}
	}
	// Another program renames it before vmfs deletes it: the client's
	// name is gone, so nothing is deleted (the client rescans and sees
	// the new flags before it decides again).
	os.Rename(filepath.Join(f.root, "cur", "1.a:2,"), filepath.Join(f.root, "cur", "1.a:2,R"))
	if err := e.Delete(context.Background(), "Unread", target.Name, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("delete of a name renamed meanwhile: %v, want ErrNotExist", err)
	}
	files := backendFiles(t, f.root)
	if len(files) != 2 || !files["cur/2.b:2,"] || !files["cur/1.a:2,R"] {
		t.Fatalf("after deleting a renamed message: %v", files)
	}
}

func TestDeleteMovesToTrash(t *testing.T) {
	f := newFixture(t, 0)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a\n\nx\n")
	os.MkdirAll(filepath.Join(f.root, "new"), 0o755)
	e, err := Open(f.state, Config{Root: f.root, Folders: DefaultFolders(), Now: f.clk.now, Trash: "Trash"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.Sync(context.Background())
	f.e = e
	l := f.list("Unread")
	if err := e.Delete(context.Background(), "Unread", l[0].Name, l[0].New); err != nil {
		t.Fatal(err)
	}
	files := backendFiles(t, f.root)
	if len(files) != 1 || !files[".Trash/cur/1.a:2,"] {
		t.Fatalf("after delete with a trash mailbox: %v", files)
	}
	if len(f.list("Unread")) != 0 {
		t.Fatal("still listed")
	}
	// The same name once more (a copy deleted again): a fresh name in the
	// trash, not an error forever.
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a again\n\nx\n")
	if err := e.MailboxChanged(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	l = f.list("Unread")
	if len(l) != 1 {
		t.Fatalf("Unread = %+v", l)
	}
	if err := e.Delete(context.Background(), "Unread", l[0].Name, l[0].New); err != nil {
		t.Fatalf("second delete of the same name into the trash: %v", err)
	}
	files = backendFiles(t, f.root)
	if len(files) != 2 || !files[".Trash/cur/1.a:2,"] {
		t.Fatalf("after the second delete: %v", files)
	}
}

// TestDeliverExactlyOnce: the same delivery again (a client retrying after
// a crash) writes nothing new; another message under a name the folder
// shows is refused with ErrExist and writes nothing; the client's name
// comes back after the index is rebuilt from the backend.
func TestDeliverExactlyOnce(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	writeMsg(t, filepath.Join(f.root, ".Lists.golang", "cur", "1.old:2,S"), "From: golang@x\nSubject: old\n\nx\n")
	os.MkdirAll(filepath.Join(f.root, ".Lists.golang", "new"), 0o755)
	folders := []Folder{{Name: "Lists", Mailboxes: []string{"Lists/*"}, Query: "ALL", Save: "Lists/golang"}}
	e := f.open(folders)
	msg := "From: golang@x\nSubject: appended\n\nhello\n"
	deliver := func(name, body string) (Entry, error) {
		return e.Deliver(context.Background(), "Lists", name, strings.NewReader(body), "S", true, time.Time{})
	}
	ent, err := deliver("1733.M1P2.client", msg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := deliver("1733.M1P2.client", msg)
	if err != nil || again.Name != ent.Name || again.Path != ent.Path {
		t.Fatalf("retried delivery: %+v, %v; want the first %+v", again, err, ent)
	}
	if n := len(backendFiles(t, f.root)); n != 2 {
		t.Fatalf("after the retry the backend has %d files, want 2: %v", n, backendFiles(t, f.root))
	}
	if _, err := deliver("1733.M1P2.client", "Subject: other\n\nbytes\n"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("another message under a taken name: %v, want ErrExist", err)
	}
	var old Entry
	for _, x := range f.list("Lists") {
		if x.Name != ent.Name {
			old = x
		}
	}
	if _, err := deliver(old.Name, msg); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("delivery onto an existing message's name: %v, want ErrExist", err)
	}
	if n := len(backendFiles(t, f.root)); n != 2 {
		t.Fatalf("refused deliveries wrote files: %v", backendFiles(t, f.root))
	}
	// A lost index: the backend alone gives the name back.
	e.Close()
	os.RemoveAll(f.state)
	e = f.open(folders)
	found := false
	for _, x := range f.list("Lists") {
		found = found || x.Name == ent.Name
	}
	if !found {
		t.Fatalf("after an index rebuild Lists = %+v, want %s among them", f.list("Lists"), ent.Name)
	}
	if again, err := deliver("1733.M1P2.client", msg); err != nil || again.Name != ent.Name {
		t.Fatalf("retry after the rebuild: %+v, %v", again, err)
	}
	if n := len(backendFiles(t, f.root)); n != 2 {
		t.Fatalf("after the rebuild's retry: %v", backendFiles(t, f.root))
	}
}

// TestKeywordMembershipStable: a KEYWORD folder keeps a message that still
// carries the keyword after polls that skip the unchanged mailbox, a warm
// restart, and flag changes; a changed keyword map alone re-evaluates it.
func TestKeywordMembershipStable(t *testing.T) {
	f := newFixture(t, 0)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,a"), "Subject: x\n\nbody\n")
	os.MkdirAll(filepath.Join(f.root, "new"), 0o755)
	os.WriteFile(filepath.Join(f.root, "dovecot-keywords"), []byte("0 Important\n"), 0o600)
	old := time.Now().Add(-time.Hour)
	settle := func() {
		for _, sub := range []string{"cur", "new"} {
			os.Chtimes(filepath.Join(f.root, sub), old, old)
		}
	}
	settle()
	folders := []Folder{{Name: "Important", Mailboxes: []string{"*"}, Query: "KEYWORD Important"}}
	e := f.open(folders)
	member := func(when string) Entry {
		t.Helper()
		l := f.list("Important")
		if len(l) != 1 {
			t.Fatalf("%s: Important = %+v", when, l)
		}
		return l[0]
	}
	member("cold")
	for i := 0; i < 2; i++ { // polls that skip the settled mailbox
		if err := e.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ent := member("after polls")
	base := maildir.BaseOf(ent.Name)
	if _, err := e.SetFlags(context.Background(), "Important", ent.Name, false, base+":2,Sa", false); err != nil {
		t.Fatal(err)
	}
	settle()
	e.Close()
	f.clk.t = f.clk.t.Add(time.Hour) // past any linger
	e = f.open(folders)
	ent = member("after a warm restart")
	if _, err := e.SetFlags(context.Background(), "Important", ent.Name, false, base+":2,FSa", false); err != nil {
		t.Fatal(err)
	}
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	if l := f.list("Important"); len(l) != 1 || l[0].Name != base+":2,FSa" {
		t.Fatalf("after a flag change that kept the keyword: %+v", l)
	}
	// The map changes alone (letter a is another keyword now): the message
	// stops matching (and lingers, as any message that stops matching).
	os.WriteFile(filepath.Join(f.root, "dovecot-keywords"), []byte("0 Other\n1 Important\n"), 0o600)
	if err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st[0].Lingering != 1 {
		t.Fatalf("after the map changed: %+v, want the message lingering", st)
	}
}

// TestDuplicateBaseNeverTouched: two files of one base name in a mailbox
// (a buggy writer): deleting the listed one after the backend moved it
// answers ErrNotExist and deletes neither, the unlisted file least of all.
func TestDuplicateBaseNeverTouched(t *testing.T) {
	f := newFixture(t, 0)
	writeMsg(t, filepath.Join(f.root, "cur", "1.dup:2,"), "Subject: listed\n\nx\n")
	writeMsg(t, filepath.Join(f.root, "new", "1.dup"), "Subject: the other one\n\nx\n")
	e := f.open(DefaultFolders())
	l := f.list("Unread")
	if len(l) != 1 {
		t.Fatalf("Unread = %+v, want the first of the two", l)
	}
	listed := l[0].Path
	os.Rename(listed, listed+"R") // the backend moves the listed one
	if err := e.Delete(context.Background(), "Unread", l[0].Name, l[0].New); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("delete: %v, want ErrNotExist", err)
	}
	if files := backendFiles(t, f.root); len(files) != 2 {
		t.Fatalf("a file was deleted: %v", files)
	}
}

// TestRetriedDeliveryNotAMember: a delivery that no longer shows in its
// folder (it does not match, its linger ended) is still found by the
// client's retry: nothing is written twice.
func TestRetriedDeliveryNotAMember(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	folders := []Folder{{Name: "Go", Mailboxes: []string{"*"}, Query: "FROM golang", Save: "INBOX"}}
	e := f.open(folders)
	msg := "From: someone@else\nSubject: not from golang\n\nhello\n"
	if _, err := e.Deliver(context.Background(), "Go", "1733.M9P9.client", strings.NewReader(msg), "", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.clk.t = f.clk.t.Add(time.Hour)
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	if l := f.list("Go"); len(l) != 0 {
		t.Fatalf("Go = %+v after the linger", l)
	}
	if _, err := e.Deliver(context.Background(), "Go", "1733.M9P9.client", strings.NewReader(msg), "", false, time.Time{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if files := backendFiles(t, f.root); len(files) != 1 {
		t.Fatalf("the retry wrote again: %v", files)
	}
}
