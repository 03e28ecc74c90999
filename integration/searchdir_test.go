package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/corpus"
)

// searchBackend is a backend with messages from alice and bob in two
// mailboxes (and one from alice in Trash, which search folders leave out).
func searchBackend(t *testing.T) (root string, alice, bob int) {
	root = emptyBackend(t, ".Work", ".Trash")
	for i, from := range []string{"Alice <alice@example.org>", "bob@example.org", "Alice <alice@example.org>", "bob@example.org", "Alice <alice@example.org>"} {
		box := root
		if i%2 == 1 {
			box = filepath.Join(root, ".Work")
		}
		quickDeliver(t, box, "From: "+from+"\nSubject: m"+itoa(i)+"\n\nbody\n")
		if strings.Contains(from, "alice") {
			alice++
		} else {
			bob++
		}
	}
	quickDeliver(t, filepath.Join(root, ".Trash"), "From: alice@example.org\nSubject: trashed\n\nx\n")
	return root, alice, bob
}

func listedIn(t *testing.T, dir string) int {
	return len(names(t, filepath.Join(dir, "cur"))) + len(names(t, filepath.Join(dir, "new")))
}

// TestMkdirSearch: mkdir at the root makes a folder of that search, live,
// kept across remounts and shown by vmfs ls; a name that is no query is
// refused with EINVAL and one log line; rmdir removes it (with its cur/
// new/ tmp/) and never a backend message; a configured folder answers
// EBUSY.
func TestMkdirSearch(t *testing.T) {
	root, alice, _ := searchBackend(t)
	m := mount(t, root)
	want := snapshotBackend(t, root)
	dir := m.path("FROM alice")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("mkdir a search: %v", err)
	}
	// Another process (a shell's ls) sees its messages at once.
	out, err := exec.Command("sh", "-c", "ls '"+dir+"/cur' '"+dir+"/new' | grep -c vmfs").Output()
	if strings.TrimSpace(string(out)) != itoa(alice) {
		t.Fatalf("ls of FROM alice: %q (%v), want %d messages", out, err, alice)
	}
	// The process that made it makes cur/ new/ tmp/ next, as Dovecot's
	// CREATE does (EEXIST would fail the CREATE): that succeeds.
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Errorf("mkdir %s in the new folder: %v", sub, err)
		}
	}
	if got := listedIn(t, dir); got != alice {
		t.Fatalf("FROM alice lists %d, want %d", got, alice)
	}
	if err := os.Mkdir(filepath.Join(dir, "cur"), 0o700); !errors.Is(err, os.ErrExist) {
		t.Errorf("a second mkdir of cur: %v, want EEXIST", err)
	}
	// Its rights file withholds the delete right, and cannot be made to
	// grant it: not by writing, removing or renaming over it.
	acl := filepath.Join(dir, "dovecot-acl")
	if b, err := os.ReadFile(acl); err != nil || !strings.Contains(string(b), "owner lrwstipek\n") {
		t.Fatalf("rights file: %q %v", b, err)
	}
	if err := os.WriteFile(acl, []byte("owner lrwstipekxa\n"), 0o600); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write of the rights file: %v, want EACCES", err)
	}
	if err := os.Remove(acl); !errors.Is(err, syscall.EACCES) {
		t.Errorf("rm of the rights file: %v, want EACCES", err)
	}
	lock := filepath.Join(dir, "dovecot-acl.lock")
	if err := os.WriteFile(lock, []byte("owner lrwstipekx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(lock, acl); !errors.Is(err, syscall.EACCES) {
		t.Errorf("rename of rights granting x over the rights file: %v, want EACCES", err)
	}
	os.Remove(lock)
	// Live like every folder.
	quickDeliver(t, root, "From: alice@example.org\nSubject: later\n\nx\n")
	eventually(t, 2*time.Second, func() string {
		if got := listedIn(t, dir); got != alice+1 {
			return "after a delivery FROM alice lists " + itoa(got)
		}
		return ""
	})
	want = snapshotBackend(t, root)
	// Not a query.
	err = os.Mkdir(m.path("FROM"), 0o700)
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("mkdir of a bad query: %v, want EINVAL", err)
	}
	// The daemon's stderr reaches the buffer through a pipe: the line may
	// come a moment after the refusal.
	eventually(t, 2*time.Second, func() string {
		if n := strings.Count(m.stderr.String(), "not a search query"); n != 1 {
			return itoa(n) + " log lines for the bad query, want 1:\n" + m.stderr.String()
		}
		return ""
	})
	if _, err := os.Stat(m.path("FROM")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused folder exists: %v", err)
	}
	// Configured folders stay.
	if err := syscall.Rmdir(m.path("Unread")); err != syscall.EBUSY {
		t.Errorf("rmdir of a configured folder: %v, want EBUSY", err)
	}
	// Kept across a remount, with the same names; vmfs ls shows it.
	before := names(t, filepath.Join(dir, "cur"), filepath.Join(dir, "new"))
	m.remount()
	if after := names(t, filepath.Join(dir, "cur"), filepath.Join(dir, "new")); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("after a remount FROM alice lists %q, had %q", after, before)
	}
	out, err = exec.Command(vmfsBin, "ls", "--state", m.state, root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "FROM alice") {
		t.Fatalf("vmfs ls: %v\n%s", err, out)
	}
	// rmdir, with cur/ new/ tmp/ inside: the folder goes, the mail stays.
	if err := os.Remove(dir); err != nil {
		t.Fatalf("rmdir of the search: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed search still there: %v", err)
	}
	sameBackend(t, root, want, "after rmdir of a search folder")
	m.remount()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed search back after a remount: %v", err)
	}
	// And it can be made again.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("mkdir again: %v", err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if got := listedIn(t, dir); got != alice+1 {
		t.Fatalf("made again, it lists %d, want %d", got, alice+1)
	}
}

// TestDovecotCreateSearch: through Dovecot serving the mount, CREATE makes
// a search folder, SELECT shows its messages, DELETE is refused before
// anything is expunged (the folder's dovecot-acl withholds the delete
// right): every backend file is as it was.
func TestDovecotCreateSearch(t *testing.T) {
	root, _, bob := searchBackend(t)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "-o", "allow_other")
	want := snapshotBackend(t, root)
	d := startDovecot(t, m.mnt, t.TempDir(), false)
	if err := d.c.Create("FROM bob", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	sel, err := d.c.Select("FROM bob", nil).Wait()
	if err != nil || int(sel.NumMessages) != bob {
		t.Fatalf("SELECT: %v, %v messages, want %d", err, sel, bob)
	}
	if _, err := d.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// SELECT moved the folder's messages from new/ to cur/, in the
	// backend too: that is the state DELETE must leave alone.
	want = snapshotBackend(t, root)
	if err := d.c.Delete("FROM bob").Wait(); err == nil {
		t.Error("DELETE of the search folder succeeded")
	}
	sameBackend(t, root, want, "after DELETE of a search folder")
	if got := listedIn(t, m.path("FROM bob")); got != bob {
		t.Errorf("after DELETE the folder lists %d, want %d", got, bob)
	}
	// (A CREATE of a name that is no query gets NO, and Dovecot logs the
	// EINVAL of its mkdir as an error: TestMkdirSearch checks the EINVAL.)
	d.close()
	sameBackend(t, root, want, "at the end")
}

// TestSearchFromIndex: vmfs search answers from the running mount's index,
// and from a stopped mount's, when the index holds what the query needs
// (same answer as reading every message, and no note); otherwise, and
// without an index, it says so and reads the messages.
func TestSearchFromIndex(t *testing.T) {
	root, alice, _ := searchBackend(t)
	cfg := configFile(t, "[folder.People]\nquery = \"FROM alice\"\n")
	m := mount(t, root, "--config", cfg)
	search := func(state, q string) (string, string) {
		t.Helper()
		cmd := exec.Command(vmfsBin, "search", "--config", cfg, "--state", state, root, q)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("vmfs search %q: %v\n%s", q, err, stderr.String())
		}
		return string(out), stderr.String()
	}
	empty := t.TempDir()
	for _, q := range []string{"FROM alice", "UNSEEN", "ALL", "NOT FROM alice", "BODY body"} {
		scanned, note := search(empty, q)
		if !strings.Contains(note, "reading every message") {
			t.Errorf("%q without an index: no note that it scans: %q", q, note)
		}
		indexed, note := search(m.state, q)
		if indexed != scanned {
			t.Errorf("%q from the index:\n%s\nby scanning:\n%s", q, indexed, scanned)
		}
		if wantNote := q == "BODY body"; strings.Contains(note, "reading every message") != wantNote {
			t.Errorf("%q from the running mount: note %q", q, note)
		}
	}
	if out, _ := search(m.state, "FROM alice"); strings.Count(out, "\n") != alice+1 { // and the one in Trash
		t.Errorf("FROM alice: %q, want %d lines", out, alice+1)
	}
	m.unmount()
	scanned, _ := search(empty, "FROM alice")
	if indexed, note := search(m.state, "FROM alice"); indexed != scanned || note != "" {
		t.Errorf("from the stopped index: %q (note %q), want %q", indexed, note, scanned)
	}
}

// TestMkdirNestedSearch: below a parent-only directory, mkdir makes a
// search folder of a nested name, whose query is its last component.
func TestMkdirNestedSearch(t *testing.T) {
	root, _, bob := searchBackend(t)
	cfg := configFile(t, "[folder.\"Lists/All\"]\nquery = \"ALL\"\n")
	m := mount(t, root, "--config", cfg)
	dir := m.path("Lists", "FROM bob")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "ls '"+dir+"/cur' '"+dir+"/new' | grep -c vmfs").Output()
	if strings.TrimSpace(string(out)) != itoa(bob) {
		t.Fatalf("Lists/FROM bob: %q %v, want %d", out, err, bob)
	}
	if err := syscall.Rmdir(m.path("Lists", "All")); err != syscall.EBUSY {
		t.Errorf("rmdir of a configured nested folder: %v, want EBUSY", err)
	}
	m.remount()
	if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
		t.Fatalf("after a remount: %v", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("still there: %v", err)
	}
}

// TestMkdirSearchKilled: the process making a search folder is killed
// while the search reads every message (its FUSE request is interrupted),
// and the user runs mkdir again: it makes the folder or finds it made, and
// either way the root lists it and rmdir removes it. (A folder the daemon
// kept but the mount did not show answered EEXIST to every mkdir.)
func TestMkdirSearchKilled(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: 6000, Mailboxes: 10, Seed: 5, BodyScale: 10, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m := mount(t, root)
	const q = "BODY zzyzx"
	for _, wait := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
		exec.Command("sh", "-c", "echo 3 > /proc/sys/vm/drop_caches").Run() // a slow search
		cmd := exec.Command("mkdir", m.path(q))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait)
		cmd.Process.Kill()
		cmd.Wait()
		// mkdir again: it makes the folder, or finds it made (then
		// after the search the killed one began, which it waits for).
		if err := os.Mkdir(m.path(q), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatalf("killed after %v: mkdir again gives %v", wait, err)
		}
		listed := false
		ents, _ := os.ReadDir(m.mnt)
		for _, e := range ents {
			listed = listed || e.Name() == q
		}
		if !listed {
			t.Fatalf("killed after %v: mkdir again succeeds or finds it, but the root does not list it", wait)
		}
		if _, err := os.Stat(m.path(q, "cur")); err != nil {
			t.Fatalf("killed after %v, then made: %v", wait, err)
		}
		if err := os.Remove(m.path(q)); err != nil {
			t.Fatalf("rmdir after a killed mkdir: %v", err)
		}
	}
}
