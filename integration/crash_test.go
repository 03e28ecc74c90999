package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

// TestKill9DuringRenames: vmfs is killed with SIGKILL while a client
// renames messages through the mount. After `fusermount3 -u` of the dead
// mount and a restart on the same state, nothing is lost, no name is
// duplicated, messages keep their virtual names, and Unread equals the
// truth computed from the backend.
func TestKill9DuringRenames(t *testing.T) {
	root := genBackend(t, 400)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("linger = \"1ms\"\n[folder.Unread]\nmailboxes = [\"*\", \"-Trash\", \"-Junk\", \"-Spam\"]\nquery = \"UNSEEN\"\n[folder.All]\nquery = \"ALL\"\n"), 0o644)
	m := mount(t, root, "--config", cfg)
	before := backend(t, root)
	// Names of every message in All, by content, before the crash.
	namesBefore := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		for _, n := range names(t, m.path("All", sub)) {
			namesBefore[hashFile(t, m.path("All", sub, n))] = maildir.BaseOf(n)
		}
	}
	if len(namesBefore) != len(before) {
		t.Fatalf("All lists %d of %d", len(namesBefore), len(before))
	}
	done := make(chan int)
	go func() { // a client marking messages seen as fast as it can
		n := 0
		for _, name := range names(t, m.path("Unread", "cur")) {
			nm, _ := maildir.ParseName(name)
			nm.Flags = maildir.SetFlags(nm.Flags, "S", "")
			if os.Rename(m.path("Unread", "cur", name), m.path("Unread", "cur", nm.String())) != nil {
				break // the daemon is gone
			}
			n++
		}
		done <- n
	}()
	time.Sleep(150 * time.Millisecond)
	m.cmd.Process.Signal(syscall.SIGKILL)
	renamed := <-done
	<-m.exited
	m.exited <- nil
	// The dead mount answers ENOTCONN until it is unmounted; vmfs says so.
	out, err := exec.Command(vmfsBin, "mount", "--state", m.state, root, m.mnt).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run fusermount3 -u") {
		t.Errorf("mount over the dead mount: %v %s", err, out)
	}
	if out, err := exec.Command("fusermount3", "-u", m.mnt).CombinedOutput(); err != nil {
		if out2, err2 := exec.Command("umount", "-l", m.mnt).CombinedOutput(); err2 != nil {
			t.Fatalf("unmount the dead mount: %v %s / %v %s", err, out, err2, out2)
		}
	}
	t.Logf("%d renames through the mount before the kill", renamed)
	// Nothing lost: the same messages, by content, each once.
	after := backend(t, root)
	if len(after) != len(before) {
		t.Fatalf("backend had %d messages, has %d after the crash", len(before), len(after))
	}
	contents := map[string]int{}
	for _, b := range after {
		contents[hashFile(t, b.Path)]++
	}
	for h, c := range contents {
		if c != 1 || namesBefore[h] == "" {
			t.Fatalf("content %s present %d times (known before: %v)", h[:8], c, namesBefore[h] != "")
		}
	}
	m.start()
	// Same names for every message, none twice.
	seen := map[string]bool{}
	for _, sub := range []string{"new", "cur"} {
		for _, n := range names(t, m.path("All", sub)) {
			base := maildir.BaseOf(n)
			if seen[base] {
				t.Fatalf("name %s twice after restart", base)
			}
			seen[base] = true
			if h := hashFile(t, m.path("All", sub, n)); namesBefore[h] != base {
				t.Fatalf("message %s renamed from %s to %s by the crash", h[:8], namesBefore[h], base)
			}
		}
	}
	if len(seen) != len(before) {
		t.Fatalf("All lists %d after restart, want %d", len(seen), len(before))
	}
	// Unread equals the truth once the (1 ms) linger has passed.
	eventually(t, 5*time.Second, func() string {
		want := unreadTruth(t, root)
		got := len(names(t, m.path("Unread", "new"))) + len(names(t, m.path("Unread", "cur")))
		if got != len(want) {
			return fmt.Sprintf("Unread has %d, truth %d", got, len(want))
		}
		for _, sub := range []string{"new", "cur"} {
			for _, n := range names(t, m.path("Unread", sub)) {
				if strings.Contains(n[strings.LastIndex(n, ":")+1:], "S") && strings.Contains(n, ":2,") {
					return "a seen message is still in Unread: " + n
				}
			}
		}
		return ""
	})
}
