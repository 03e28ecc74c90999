package integration

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// snapshotBackend maps every backend message file to its content hash.
func snapshotBackend(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range backend(t, root) {
		out[b.Path] = hashFile(t, b.Path)
	}
	return out
}

// sameBackend fails unless every file of the snapshot is still there with
// the same bytes, and no other message appeared.
func sameBackend(t *testing.T, root string, want map[string]string, what string) {
	t.Helper()
	got := snapshotBackend(t, root)
	for p, h := range want {
		if got[p] != h {
			t.Fatalf("%s: backend message %s lost or changed (%d of %d files left)", what, p, len(got), len(want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: backend has %d messages, want %d", what, len(got), len(want))
	}
}

const deleteConfig = `
[folder.All]
mailboxes = ["*"]
query = "ALL"
[folder.Unread]
mailboxes = ["*", "-Trash", "-Junk", "-Spam"]
query = "UNSEEN"
[folder."Lists/Go"]
mailboxes = ["Lists/*"]
query = "ALL"
`

// TestDeletingAFolderKeepsMail: deleting a folder — IMAP DELETE through
// Dovecot (which expunges every message before it removes a Maildir
// folder), rmdir, rm -r — never deletes or moves a backend message, and
// the folder stays; deleting messages still reaches the backend.
func TestDeletingAFolderKeepsMail(t *testing.T) {
	root := genBackend(t, 150)
	cfg := configFile(t, deleteConfig)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	want := snapshotBackend(t, root)
	count := len(ls(t, m.path("All", "cur"))) + len(ls(t, m.path("All", "new")))
	if count != len(want) {
		t.Fatalf("All lists %d, the backend has %d", count, len(want))
	}

	t.Run("dovecot-DELETE", func(t *testing.T) {
		d := startDovecot(t, m.mnt, t.TempDir(), false)
		for _, name := range []string{"All", "Unread", "Lists/Go", "Lists"} {
			err := d.c.Delete(name).Wait()
			if err == nil {
				t.Errorf("DELETE %s succeeded", name)
			}
			sameBackend(t, root, want, "after DELETE "+name)
		}
		list, err := d.c.List("", "*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range list {
			names = append(names, l.Mailbox)
		}
		if j := "," + strings.Join(names, ",") + ","; !strings.Contains(j, ",All,") || !strings.Contains(j, ",Lists/Go,") {
			t.Fatalf("folders gone after DELETE: LIST = %q", names)
		}
		sel, err := d.c.Select("All", nil).Wait()
		if err != nil || int(sel.NumMessages) != len(want) {
			t.Fatalf("SELECT All after DELETE: %v, %v messages, want %d", err, sel, len(want))
		}
		// Messages are still deleted one by one: EXPUNGE reaches the backend
		// (also for the messages that already had \Deleted).
		trashed := 0
		for _, b := range backend(t, root) {
			if strings.Contains(b.Flags, "T") {
				trashed++
			}
		}
		first, err := d.c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(first) != 1 {
			t.Fatal(err)
		}
		for _, f := range first[0].Flags {
			if f == imap.FlagDeleted {
				trashed--
			}
		}
		if err := d.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
		if n := len(backend(t, root)); n != len(want)-1-trashed {
			t.Fatalf("EXPUNGE: backend has %d, want %d", n, len(want)-1-trashed)
		}
		d.close()
		want = snapshotBackend(t, root)
	})

	t.Run("rmdir", func(t *testing.T) {
		for _, dir := range []string{"All", "All/cur", "All/new", "All/tmp", "Lists", "Lists/Go", "Lists/Go/cur"} {
			err := syscall.Rmdir(m.path(dir))
			if !errors.Is(err, syscall.EBUSY) {
				t.Errorf("rmdir %s: %v, want EBUSY", dir, err)
			}
		}
		if _, err := os.Stat(m.path("All", "cur")); err != nil {
			t.Fatalf("All/cur after rmdir: %v", err)
		}
		sameBackend(t, root, want, "after rmdir")
	})

	t.Run("rm-r", func(t *testing.T) {
		for _, dir := range []string{"Unread", "All"} {
			out, err := exec.Command("rm", "-rf", m.path(dir)).CombinedOutput()
			if err == nil {
				t.Errorf("rm -rf %s succeeded", dir)
			}
			if !strings.Contains(string(out), "Operation not permitted") {
				t.Errorf("rm -rf %s said %q", dir, firstLine(string(out)))
			}
			sameBackend(t, root, want, "after rm -rf "+dir)
		}
		if n := len(ls(t, m.path("All", "cur"))) + len(ls(t, m.path("All", "new"))); n != len(want) {
			t.Fatalf("All lists %d after rm -rf, want %d", n, len(want))
		}
		// A single rm of a message is a delete.
		ents := ls(t, m.path("All", "cur"))
		if out, err := exec.Command("rm", m.path("All", "cur", ents[0])).CombinedOutput(); err != nil {
			t.Fatalf("rm of one message: %v %s", err, out)
		}
		if n := len(backend(t, root)); n != len(want)-1 {
			t.Fatalf("rm of one message: backend has %d, want %d", n, len(want)-1)
		}
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestRightsFileIsFixed: the dovecot-acl that keeps Dovecot from deleting
// a folder can be read but not changed, replaced or removed through the
// mount, in folders and in parent-only directories.
func TestRightsFileIsFixed(t *testing.T) {
	root := genBackend(t, 10)
	cfg := configFile(t, deleteConfig)
	m := mount(t, root, "--config", cfg)
	for _, dir := range []string{"All", "Lists", "Lists/Go", ""} {
		p := m.path(dir, "dovecot-acl")
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "owner lrwstipek\n") {
			t.Fatalf("%s: %q, %v", p, b, err)
		}
		if err := os.WriteFile(p, []byte("owner lrwstipekxa\n"), 0o600); !errors.Is(err, syscall.EACCES) {
			t.Errorf("write %s: %v, want EACCES", p, err)
		}
		if err := os.Remove(p); !errors.Is(err, syscall.EACCES) {
			t.Errorf("rm %s: %v, want EACCES", p, err)
		}
		if dir != "Lists" {
			tmp := m.path(dir, "tmp", "acl")
			if dir == "" {
				tmp = m.path("x.tmp")
			}
			if err := os.WriteFile(tmp, []byte("owner lrwstipekxa\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); !errors.Is(err, syscall.EACCES) {
				t.Errorf("rename onto %s: %v, want EACCES", p, err)
			}
			os.Remove(tmp)
		}
		if b2, _ := os.ReadFile(p); string(b2) != string(b) {
			t.Errorf("%s changed to %q", p, b2)
		}
	}
}
