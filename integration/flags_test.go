package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"

	"vmfs/internal/maildir"
)

const allFolderConfig = `
[folder.All]
mailboxes = ["*"]
query = "ALL"
`

// backendFlags returns the flags of the backend file whose base name is
// base, failing unless there is exactly one.
func backendFlags(t *testing.T, root, base string) (flags string, inNew bool) {
	t.Helper()
	var found []backendMsg
	for _, b := range backend(t, root) {
		if maildir.BaseOf(b.Name) == base {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d backend files of base %s: %+v", len(found), base, found)
	}
	return found[0].Flags, found[0].New
}

// TestSetThenClearFlags: mark read then unread, flag then unflag, trash
// then undelete, in one mount session, through rename(2) and mv; every
// step reaches the backend file, and the name the client chose is the
// name that exists afterwards.
func TestSetThenClearFlags(t *testing.T) {
	root := emptyBackend(t)
	quickDeliver(t, root, "Subject: one\n\nbody\n")
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte(allFolderConfig), 0o644)
	m := mount(t, root, "--config", cfg)
	news := names(t, m.path("All", "new"))
	if len(news) != 1 {
		t.Fatalf("new/ = %q", news)
	}
	vbase := maildir.BaseOf(news[0])
	var backendBase string
	for _, b := range backend(t, root) {
		backendBase = maildir.BaseOf(b.Name)
	}
	cur := func(info string) string { return m.path("All", "cur", vbase+info) }
	// new/ → cur/, as mutt does when it opens the folder.
	if err := os.Rename(m.path("All", "new", news[0]), cur(":2,")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		info, want string
		mv         bool
	}{
		{":2,S", "S", false}, {":2,", "", false}, // read, unread
		{":2,FS", "FS", false}, {":2,S", "S", false}, // flag, unflag
		{":2,ST", "ST", true}, {":2,S", "S", true}, // trash, undelete (mv)
		{":2,", "", true}, {":2,S", "S", false},
	}
	prev := ":2,"
	for i, st := range steps {
		if st.mv {
			if out, err := exec.Command("mv", cur(prev), cur(st.info)).CombinedOutput(); err != nil {
				t.Fatalf("step %d: mv %s %s: %v %s", i, prev, st.info, err, out)
			}
		} else if err := os.Rename(cur(prev), cur(st.info)); err != nil {
			t.Fatalf("step %d: rename %s -> %s: %v", i, prev, st.info, err)
		}
		if flags, inNew := backendFlags(t, root, backendBase); flags != st.want || inNew {
			t.Fatalf("step %d (%s -> %s): backend flags %q new=%v, want %q in cur/", i, prev, st.info, flags, inNew, st.want)
		}
		if got := names(t, m.path("All", "cur")); len(got) != 1 || got[0] != vbase+st.info {
			t.Fatalf("step %d: cur/ = %q, want %q", i, got, vbase+st.info)
		}
		if _, err := os.Stat(cur(st.info)); err != nil {
			t.Fatalf("step %d: the name the client chose: %v", i, err)
		}
		prev = st.info
	}
	// A name the message no longer has is gone, as on a disk (Dovecot
	// stat()s it to tell whether a flag change is still to be made):
	// renaming or deleting through it answers ENOENT and changes nothing.
	stale := cur(":2,")
	if _, err := os.Stat(stale); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat of the previous name: %v, want ENOENT", err)
	}
	if err := os.Rename(stale, cur(":2,F")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("rename from the previous name: %v, want ENOENT", err)
	}
	if err := os.Remove(stale); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unlink of the previous name: %v, want ENOENT", err)
	}
	if flags, _ := backendFlags(t, root, backendBase); flags != "S" {
		t.Fatalf("backend flags %q after refused operations, want S", flags)
	}
	// st_ino is the message's, through stat and fstat.
	fi, err := os.Stat(cur(":2,S"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cur(":2,S"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ffi, _ := f.Stat()
	if fi.Sys().(*syscall.Stat_t).Ino != ffi.Sys().(*syscall.Stat_t).Ino {
		t.Fatal("st_ino differs between stat and fstat")
	}
	// An open file keeps working after its message is deleted: fstat
	// answers with st_nlink 0, reads go on.
	if err := os.Remove(cur(":2,S")); err != nil {
		t.Fatal(err)
	}
	if n := len(backend(t, root)); n != 0 {
		t.Fatalf("backend has %d after delete", n)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 {
		t.Fatalf("fstat after delete: nlink %d, %v; want 0, nil", st.Nlink, err)
	}
	buf := make([]byte, 64)
	if n, err := f.ReadAt(buf, 0); n == 0 || !strings.Contains(string(buf[:n]), "Subject") {
		t.Fatalf("read after delete: %d %v", n, err)
	}
}

// TestDovecotSetThenClear: STORE +FLAGS then -FLAGS through Dovecot serving
// the mount, for \Seen, \Flagged and \Deleted, each reaching the backend;
// then two IMAP sessions change the same message's flags one after the
// other, and each change lands.
func TestDovecotSetThenClear(t *testing.T) {
	root := emptyBackend(t)
	quickDeliver(t, root, "Subject: one\n\nbody\n")
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte(allFolderConfig), 0o644)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	var base string
	for _, b := range backend(t, root) {
		base = maildir.BaseOf(b.Name)
	}
	dir := t.TempDir()
	d := startDovecot(t, m.mnt, dir, false)
	if _, err := d.c.Select("All", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(c *dovecot, op imap.StoreFlagsOp, f imap.Flag) {
		t.Helper()
		if err := c.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: []imap.Flag{f}, Silent: true}, nil).Close(); err != nil {
			t.Fatalf("STORE %v %s: %v", op, f, err)
		}
		c.c.Noop().Wait()
	}
	for _, st := range []struct {
		op   imap.StoreFlagsOp
		flag imap.Flag
		want string
	}{
		{imap.StoreFlagsAdd, imap.FlagSeen, "S"}, {imap.StoreFlagsDel, imap.FlagSeen, ""},
		{imap.StoreFlagsAdd, imap.FlagFlagged, "F"}, {imap.StoreFlagsDel, imap.FlagFlagged, ""},
		{imap.StoreFlagsAdd, imap.FlagDeleted, "T"}, {imap.StoreFlagsDel, imap.FlagDeleted, ""},
		{imap.StoreFlagsAdd, imap.FlagSeen, "S"}, {imap.StoreFlagsDel, imap.FlagSeen, ""},
	} {
		store(d, st.op, st.flag)
		if flags, _ := backendFlags(t, root, base); flags != st.want {
			t.Fatalf("STORE %v %s: backend flags %q, want %q", st.op, st.flag, flags, st.want)
		}
	}
	// A second session on the same folder; the two take turns.
	d2 := startDovecot(t, m.mnt, dir, false)
	if _, err := d2.c.Select("All", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store(d, imap.StoreFlagsAdd, imap.FlagSeen)
	store(d2, imap.StoreFlagsAdd, imap.FlagFlagged)
	store(d, imap.StoreFlagsDel, imap.FlagSeen)
	store(d2, imap.StoreFlagsAdd, imap.FlagAnswered)
	store(d, imap.StoreFlagsDel, imap.FlagFlagged)
	if flags, _ := backendFlags(t, root, base); flags != "R" {
		t.Fatalf("after two sessions' changes: backend flags %q, want R", flags)
	}
}
