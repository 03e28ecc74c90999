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

	"vmfs/internal/maildir"
)

const saveConfig = `
[folder.Lists]
mailboxes = ["Lists/*"]
query = "ALL"
save = "Lists/saved"
`

func savedMessages(t *testing.T, root string) []backendMsg {
	var out []backendMsg
	for _, b := range backend(t, root) {
		if b.Mailbox == "Lists/saved" {
			out = append(out, b)
		}
	}
	return out
}

// TestDeliveryExactlyOnce: a delivery interrupted by kill -9 after the
// backend file was written, retried by the client after the restart,
// leaves one copy under the client's name; a delivery onto the name of a
// message already listed answers EEXIST and writes nothing; the tmp
// file's mtime (IMAP INTERNALDATE) is the delivered file's.
func TestDeliveryExactlyOnce(t *testing.T) {
	root := emptyBackend(t, ".Lists.saved", ".Lists.other")
	quickDeliver(t, filepath.Join(root, ".Lists.other"), "Subject: there before\n\nx\n")
	cfg := configFile(t, saveConfig)
	m := mount(t, root, "--config", cfg)
	existing := names(t, m.path("Lists", "new"))
	if len(existing) != 1 {
		t.Fatalf("Lists/new = %q", existing)
	}

	// Onto an existing message's name: EEXIST, nothing delivered, the
	// original still listed once.
	tmp := m.path("Lists", "tmp", "clash")
	os.WriteFile(tmp, []byte("Subject: impostor\n\nx\n"), 0o600)
	if err := os.Rename(tmp, m.path("Lists", "new", existing[0])); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("delivery onto %s: %v, want EEXIST", existing[0], err)
	}
	if n := len(savedMessages(t, root)); n != 0 {
		t.Fatalf("the refused delivery wrote %d files", n)
	}
	if got := names(t, m.path("Lists", "new")); len(got) != 1 || got[0] != existing[0] {
		t.Fatalf("Lists/new = %q after the refused delivery", got)
	}
	b, _ := os.ReadFile(m.path("Lists", "new", existing[0]))
	if !strings.Contains(string(b), "there before") {
		t.Fatalf("the listed name now shows %q", b)
	}
	os.Remove(tmp)

	// A delivery with a date (Dovecot's APPEND sets it with utime()).
	date := time.Date(2019, 7, 1, 12, 0, 0, 0, time.UTC)
	tmp = m.path("Lists", "tmp", "1700000000.M1P2.client")
	msg := "From: a@example.org\nSubject: appended\n\nhello\n"
	os.WriteFile(tmp, []byte(msg), 0o600)
	os.Chtimes(tmp, date, date)
	m.unmount()
	os.Setenv("VMFS_TEST_CRASH", "after-deliver")
	m.start()
	os.Unsetenv("VMFS_TEST_CRASH")
	target := m.path("Lists", "cur", "1700000000.M1P2.client:2,S")
	if err := os.Rename(tmp, target); err == nil {
		t.Fatal("the crash point was not reached")
	}
	select {
	case <-m.exited:
		m.exited <- nil
	case <-time.After(10 * time.Second):
		t.Fatalf("vmfs did not crash at the delivery\n%s", m.stderr)
	}
	exec.Command("fusermount3", "-u", m.mnt).Run()
	exec.Command("umount", "-l", m.mnt).Run()
	if n := len(savedMessages(t, root)); n != 1 {
		t.Fatalf("after the crash the save mailbox has %d messages, want the 1 delivered", n)
	}
	m.start()
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the client's tmp file did not survive the crash: %v", err)
	}
	// The client retries the same rename.
	if err := os.Rename(tmp, target); err != nil {
		t.Fatalf("retry after the crash: %v", err)
	}
	saved := savedMessages(t, root)
	if len(saved) != 1 {
		t.Fatalf("after the retry the save mailbox has %d messages: %+v", len(saved), saved)
	}
	if b, _ := os.ReadFile(saved[0].Path); string(b) != msg {
		t.Fatalf("delivered %q", b)
	}
	if fi, err := os.Stat(saved[0].Path); err != nil || !fi.ModTime().Equal(date) {
		t.Fatalf("delivered file's mtime %v, want the tmp file's %v", fi.ModTime(), date)
	}
	if fi, err := os.Stat(target); err != nil || !fi.ModTime().Equal(date) {
		t.Fatalf("the client's name after the retry: %v", err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("tmp file left after the retry: %v", err)
	}
	// The client's name stays after the index is rebuilt from the backend.
	m.unmount()
	os.RemoveAll(m.state)
	os.MkdirAll(m.state, 0o700)
	m.start()
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("after an index rebuild: %v (Lists/cur = %q)", err, names(t, m.path("Lists", "cur")))
	}
	if n := maildir.BaseOf(filepath.Base(target)); !strings.HasPrefix(saved[0].Name, n) {
		t.Fatalf("backend name %s does not carry the client's %s", saved[0].Name, n)
	}
}
