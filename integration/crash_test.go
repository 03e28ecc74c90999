package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

// TestKill9DuringRenames: vmfs is killed with SIGKILL while a client
// renames messages through the mount. After `fusermount3 -u` of the dead
// mount and a restart on the same state, nothing is lost, no name is
// duplicated, messages keep their virtual names, and Unread equals the
// truth computed from the backend.
func TestKill9DuringRenames(t *testing.T) {
	root := genBackend(t, 400)
	cfg := configFile(t, "linger = \"1ms\"\n[folder.Unread]\nmailboxes = [\"*\", \"-Trash\", \"-Junk\", \"-Spam\"]\nquery = \"UNSEEN\"\n[folder.All]\nquery = \"ALL\"\n")
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

// TestCrashBetweenRenameAndCommit: vmfs dies right after renaming a backend
// file for a client and before its index records it. After a restart the
// message is found under its new name, once, with its old virtual name.
func TestCrashBetweenRenameAndCommit(t *testing.T) {
	root := genBackend(t, 50)
	m := mount(t, root)
	name := names(t, m.path("Unread", "cur"))[0]
	content := hashFile(t, m.path("Unread", "cur", name))
	m.unmount()
	os.Setenv("VMFS_TEST_CRASH", "after-rename")
	m.start()
	os.Unsetenv("VMFS_TEST_CRASH")
	nm, _ := maildir.ParseName(name)
	nm.Flags = maildir.SetFlags(nm.Flags, "S", "")
	err := os.Rename(m.path("Unread", "cur", name), m.path("Unread", "cur", nm.String()))
	if err == nil {
		t.Fatal("the crash point was not reached")
	}
	<-m.exited
	m.exited <- nil
	exec.Command("fusermount3", "-u", m.mnt).Run()
	exec.Command("umount", "-l", m.mnt).Run()
	// The backend did the rename; nothing else changed.
	found := 0
	for _, b := range backend(t, root) {
		if hashFile(t, b.Path) == content {
			found++
			if !strings.Contains(b.Flags, "S") {
				t.Errorf("backend file %s lacks the S flag", b.Path)
			}
		}
	}
	if found != 1 {
		t.Fatalf("the message is in the backend %d times", found)
	}
	m.start()
	// Still listed (lingering, seen) under the same virtual base name.
	eventually(t, 5*time.Second, func() string {
		for _, n := range names(t, m.path("Unread", "cur")) {
			if maildir.BaseOf(n) == maildir.BaseOf(name) {
				if got, _ := maildir.ParseName(n); !maildir.HasFlag(got.Flags, 'S') {
					return "listed without its new flag: " + n
				}
				return ""
			}
		}
		return "the message lost its place in Unread after the crash"
	})
}

// TestDamagedStateDir: garbage in the index files makes vmfs log once,
// rebuild from the backend, and touch no backend file.
func TestDamagedStateDir(t *testing.T) {
	root := genBackend(t, 80)
	m := mount(t, root)
	want := len(names(t, m.path("Unread", "cur"))) + len(names(t, m.path("Unread", "new")))
	m.unmount()
	before := map[string]string{}
	for _, b := range backend(t, root) {
		before[b.Path] = hashFile(t, b.Path)
	}
	files, _ := filepath.Glob(filepath.Join(m.state, "*", "index", "*"))
	if len(files) == 0 {
		t.Fatal("no index files")
	}
	for i, f := range files {
		switch i % 3 {
		case 0:
			os.WriteFile(f, []byte("random bytes \x00\xff"), 0o600)
		case 1:
			os.Truncate(f, 7)
		default:
			os.Remove(f)
		}
	}
	snaps, _ := filepath.Glob(filepath.Join(m.state, "*", "index.snapshot"))
	for _, s := range snaps {
		os.WriteFile(s, []byte("vmfs-snapshot\x00\x00\x00\x01garbage"), 0o600)
	}
	m.start()
	got := len(names(t, m.path("Unread", "cur"))) + len(names(t, m.path("Unread", "new")))
	if got != want {
		t.Fatalf("after the rebuild Unread has %d, want %d", got, want)
	}
	if n := strings.Count(m.stderr.String(), "level=ERROR"); n != 1 {
		t.Errorf("the damage was logged %d times:\n%s", n, m.stderr)
	}
	after := backend(t, root)
	if len(after) != len(before) {
		t.Fatalf("backend %d -> %d messages", len(before), len(after))
	}
	for _, b := range after {
		if before[b.Path] != hashFile(t, b.Path) {
			t.Fatalf("backend file %s changed", b.Path)
		}
	}
}

// TestKill9DuringColdIndex: vmfs is killed while it builds the index of
// 50,000 messages — while it reads the backend, or while it streams the
// finished index into its store (that store is then damaged, and rebuilt);
// started again, it finishes the index and Unread is exact.
func TestKill9DuringColdIndex(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: 50000, Mailboxes: 20, Seed: 13, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	requireFUSE(t)
	for _, when := range []string{"reading", "mid-stream"} {
		t.Run(when, func(t *testing.T) { kill9DuringColdIndex(t, root, when) })
	}
}

func kill9DuringColdIndex(t *testing.T, root, when string) {
	m := &mounted{t: t, mnt: t.TempDir(), state: t.TempDir(), backend: root, xdg: t.TempDir()}
	m.stderr, m.exited = &syncBuffer{}, make(chan error, 1)
	m.cmd = exec.Command(vmfsBin, "mount", "--state", m.state, root, m.mnt)
	m.cmd.Stderr = m.stderr
	m.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+m.xdg)
	if when != "reading" {
		m.cmd.Env = append(m.cmd.Env, "VMFS_TEST_CRASH="+when)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, done := m.cmd, make(chan struct{})
	go func() { m.exited <- first.Wait(); close(done) }()
	// Whatever ends the test, this first daemon is gone and its mount
	// with it (a restarted one has m.unmount).
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			first.Process.Signal(syscall.SIGKILL)
			<-done
		}
		if m.cmd == first && isMounted(m.mnt) {
			exec.Command("fusermount3", "-u", m.mnt).Run()
		}
	})
	if when == "reading" {
		// Kill it once the index is under way.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(m.stderr.String(), "msg=indexing") && !isMounted(m.mnt) {
			if time.Now().After(deadline) {
				t.Fatalf("no progress:\n%s", m.stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
		m.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-m.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the crash point was not reached:\n%s", m.stderr) // the cleanup kills it
	}
	if isMounted(m.mnt) {
		exec.Command("fusermount3", "-u", m.mnt).Run()
	}
	if when == "mid-stream" {
		if !strings.Contains(m.stderr.String(), "test crash point reached") {
			t.Fatalf("it did not stop at the crash point:\n%s", m.stderr)
		}
		if bulk := bulkMarkers(m.state); len(bulk) != 1 {
			t.Fatalf("markers of a stream cut short: %v", bulk)
		}
	}
	t.Cleanup(m.unmount)
	m.start()
	if when == "mid-stream" {
		if !strings.Contains(m.stderr.String(), "rebuilding from the backend") {
			t.Errorf("a store whose stream was cut short was not rebuilt:\n%s", m.stderr)
		}
	}
	check := func() {
		want := unreadTruth(t, root)
		got := 0
		seen := map[string]bool{}
		for _, sub := range []string{"new", "cur"} {
			for _, n := range names(t, m.path("Unread", sub)) {
				b := maildir.BaseOf(n)
				if seen[b] {
					t.Fatalf("%s listed twice", b)
				}
				seen[b] = true
				got++
			}
		}
		if got != len(want) {
			t.Fatalf("after the crash and restart Unread has %d, the backend %d unseen", got, len(want))
		}
		flagged := 0
		for _, b := range backend(t, root) {
			if b.Mailbox != "Trash" && b.Mailbox != "Junk" && strings.Contains(b.Flags, "F") {
				flagged++
			}
		}
		if n := len(names(t, m.path("Flagged", "cur"))) + len(names(t, m.path("Flagged", "new"))); n != flagged {
			t.Fatalf("Flagged has %d, the backend %d flagged", n, flagged)
		}

	}
	check()
	if when == "mid-stream" {
		// The rebuilt index was streamed whole: a clean restart finds
		// nothing to repair.
		m.remount()
		if strings.Contains(m.stderr.String(), "rebuilding") || len(bulkMarkers(m.state)) > 0 {
			t.Errorf("after a clean stop: markers %v\n%s", bulkMarkers(m.state), m.stderr)
		}
		check()
	}
}

// bulkMarkers returns the marker files of cold indexes being streamed
// into stores under a state directory.
func bulkMarkers(state string) []string {
	var found []string
	filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".bulk") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestFullStateDir: a client fills the state directory's file system
// with a control file through the mount. vmfs keeps serving: flag changes
// reach the backend, new control files get ENOSPC, nothing dies of
// SIGBUS; once space returns the held index changes are written, and
// they survive a kill -9.
func TestFullStateDir(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	root := genBackend(t, 60)
	m := mount(t, root)
	m.state = state
	m.remount()
	// Fill it: dd through the mount until the file system is full.
	big := m.path("Unread", "big")
	out, err := exec.Command("dd", "if=/dev/zero", "of="+big, "bs=1M", "count=400").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left") {
		t.Fatalf("dd: %v %s", err, out)
	}
	// Flag changes still reach the backend; the message lingers in Unread.
	name := names(t, m.path("Unread", "cur"))[0]
	nm, _ := maildir.ParseName(name)
	nm.Flags = maildir.SetFlags(nm.Flags, "S", "")
	if err := os.Rename(m.path("Unread", "cur", name), m.path("Unread", "cur", nm.String())); err != nil {
		t.Fatalf("flag change with the state full: %v", err)
	}
	if b := findBackend(t, root, m.path("Unread", "cur", nm.String())); !strings.Contains(b.Flags, "S") {
		t.Fatalf("the backend file did not get S: %+v", b)
	}
	if err := os.WriteFile(m.path("Unread", "dovecot-uidlist.new"), []byte("x"), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("new control file with the state full: %v, want ENOSPC", err)
	}
	// Many more changes while full (each one a commit on the old code,
	// writing into Badger's mapped memtable): F on, F off, on every
	// other message of All.
	for round := 0; round < 4; round++ {
		for _, n := range names(t, m.path("Flagged", "cur")) {
			vn, _ := maildir.ParseName(n)
			vn.Flags = maildir.SetFlags(vn.Flags, "", "F")
			os.Rename(m.path("Flagged", "cur", n), m.path("Flagged", "cur", vn.String()))
		}
		for i, n := range names(t, m.path("Unread", "cur")) {
			if n == nm.String() || i%2 == 1 {
				continue
			}
			vn, _ := maildir.ParseName(n)
			vn.Flags = maildir.SetFlags(vn.Flags, "F", "")
			if err := os.Rename(m.path("Unread", "cur", n), m.path("Unread", "cur", vn.String())); err != nil {
				t.Fatalf("round %d: flag change with the state full: %v\n%s", round, err, m.stderr)
			}
		}
	}
	time.Sleep(1500 * time.Millisecond) // a tick or two while full
	select {
	case err := <-m.exited:
		m.exited <- err
		t.Fatalf("vmfs died with the state full: %v\n%s", err, m.stderr)
	default:
	}
	if !strings.Contains(m.stderr.String(), "held in memory") {
		t.Errorf("no word of the full state directory:\n%s", m.stderr)
	}
	// Space returns: the held changes are written within a tick or two.
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if !strings.Contains(m.stderr.String(), "space is back") {
			return "the held changes were never written"
		}
		return ""
	})
	m.cmd.Process.Kill()
	<-m.exited
	m.exited <- nil
	exec.Command("umount", "-l", m.mnt).Run()
	m.start()
	eventually(t, 5*time.Second, func() string {
		for _, n := range names(t, m.path("Unread", "cur")) {
			if vn, _ := maildir.ParseName(n); vn.Base == nm.Base && strings.Contains(vn.Flags, "S") {
				return ""
			}
		}
		return fmt.Sprintf("after kill -9 the message read while the state was full (%s) is gone from Unread: %q\n%s",
			nm.Base, names(t, m.path("Unread", "cur")), m.stderr)
	})
}
