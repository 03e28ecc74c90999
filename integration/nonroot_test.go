package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// asNobody runs a command as uid/gid 65534.
func asNobody(name string, args ...string) *exec.Cmd {
	all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", name}, args...)
	return exec.Command("setpriv", all...)
}

// TestNonRootMount: an ordinary user mounts through fuse3's fusermount3,
// reads and renames through the mount, root (another user) is refused
// without allow_other, and the user unmounts with fusermount3 -u.
func TestNonRootMount(t *testing.T) {
	if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() == 0 {
		t.Fatal("fusermount3 missing: .ci/run installs fuse3")
	}
	root := filepath.Join(t.TempDir(), "mail")
	if out, err := exec.Command(vmfsBin, "demo", "-n", "60", root).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v %s", err, out)
	}
	nm := nobodyMount(t, root, nil)
	mnt, stderr, exited := nm.mnt, nm.stderr, nm.exited
	out, err := asNobody("ls", filepath.Join(mnt, "Unread", "cur")).Output()
	if err != nil {
		t.Fatalf("ls as the owner: %v\n%s", err, stderr.String())
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		t.Fatal("empty Unread/cur")
	}
	src := filepath.Join(mnt, "Unread", "cur", names[0])
	content, err := asNobody("cat", src).Output()
	if err != nil || len(content) == 0 {
		t.Fatalf("read as the owner: %v", err)
	}
	dst := src[:strings.LastIndex(src, ":2,")] + ":2,S"
	if out, err := asNobody("mv", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("flag rename as the owner: %v %s", err, out)
	}
	// Another user (root here) without allow_other: EACCES.
	if _, err := os.ReadDir(filepath.Join(mnt, "Unread")); errnoOf(err) != syscall.EACCES {
		t.Errorf("another user: %v, want EACCES", err)
	}
	if out, err := asNobody("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v %s", err, out)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("vmfs exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vmfs did not exit after fusermount3 -u")
	}
	// The rename reached the backend.
	for _, b := range backend(t, root) {
		if data, _ := os.ReadFile(b.Path); bytes.Equal(data, content) {
			if !strings.Contains(b.Flags, "S") {
				t.Errorf("backend file %s did not get the S flag", b.Path)
			}
			return
		}
	}
	t.Error("the renamed message is gone from the backend")
}

// TestAccessOptions: allow_other always comes with default_permissions:
// the kernel applies the backend's owner and modes, so another user is
// refused, with either option set. The state directory is 0700.
func TestAccessOptions(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as a second user")
	}
	top, _ := os.MkdirTemp("", "vmfs-access")
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	root := filepath.Join(top, "mail")
	if out, err := exec.Command(vmfsBin, "demo", "-n", "30", root).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v %s", err, out)
	}
	for _, tc := range []struct {
		opts string
		ok   bool
	}{
		{"allow_other", false},
		{"allow_other,default_permissions", false},
	} {
		m := mount(t, root, "-o", tc.opts)
		os.Chmod(filepath.Dir(m.mnt), 0o755)
		err := asNobody("ls", m.path("Unread", "cur")).Run()
		if (err == nil) != tc.ok {
			t.Errorf("-o %s: another user's ls: %v, want allowed=%v", tc.opts, err, tc.ok)
		}
		m.unmount()
		var st syscall.Stat_t
		dirs, _ := filepath.Glob(filepath.Join(m.state, "*"))
		for _, d := range append(dirs, filepath.Join(dirs[0], "folders")) {
			if err := syscall.Stat(d, &st); err != nil || st.Mode&0o077 != 0 {
				t.Errorf("%s: mode %o, want no access for others", d, st.Mode&0o777)
			}
		}
	}
}

// asUser runs a command as uid/gid.
func asUser(uid int, name string, args ...string) *exec.Cmd {
	all := append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "--", name}, args...)
	return exec.Command("setpriv", all...)
}

// TestOwnerGetsInOthersDoNot: vmfs as root over another user's Maildir,
// mounted with allow_other: the mount shows the backend's owners and
// modes and the kernel enforces them. The backend's owner reads, re-flags,
// deletes, delivers and writes control files; any other user gets EACCES;
// every file and directory vmfs creates in the backend belongs to the
// owner, never root.
func TestOwnerGetsInOthersDoNot(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as two other users")
	}
	const owner, other = 65533, 65534
	top, _ := os.MkdirTemp("", "vmfs-owner")
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	root := filepath.Join(top, "mail")
	if out, err := exec.Command(vmfsBin, "demo", "-n", "40", root).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v %s", err, out)
	}
	ownBy(t, root, owner)
	cfg := filepath.Join(top, "config.toml")
	os.WriteFile(cfg, []byte("[folder.Unread]\nmailboxes = [\"*\"]\nquery = \"UNSEEN\"\nsave = \"Saved/new-box\"\n"), 0o644)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	os.Chmod(filepath.Dir(m.mnt), 0o755)
	msgs := names(t, m.path("Unread", "cur"))
	if len(msgs) == 0 {
		t.Fatal("Unread/cur is empty")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(m.path("Unread", "cur", msgs[0]), &st); err != nil || st.Uid != owner {
		t.Fatalf("a message shows uid %d (%v), want the backend's %d", st.Uid, err, owner)
	}
	run := func(uid int, script string) error {
		out, err := asUser(uid, "sh", "-c", script).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	msg := m.path("Unread", "cur", msgs[0])
	for _, script := range []string{
		"ls " + m.path("Unread", "cur"),
		"cat " + msg + " >/dev/null",
		"mv " + msg + " " + msg + "F",
		"echo x > " + m.path("Unread", "dovecot-uidlist"),
		"printf 'Subject: from the owner\\n\\nhi\\n' > " + m.path("Unread", "tmp", "1.owner.host") +
			" && mv " + m.path("Unread", "tmp", "1.owner.host") + " " + m.path("Unread", "new", "1.owner.host"),
	} {
		if err := run(other, script); err == nil {
			t.Errorf("another user could: %s", script)
		}
		if err := run(owner, script); err != nil {
			t.Errorf("the owner could not: %s: %v", script, err)
		}
	}
	if err := run(owner, "rm "+m.path("Unread", "cur", msgs[1])); err != nil {
		t.Errorf("the owner could not delete: %v", err)
	}
	// Everything vmfs made in the backend is the owner's.
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Sys().(*syscall.Stat_t).Uid != owner {
			t.Errorf("%s belongs to uid %d, not the backend's owner", p, fi.Sys().(*syscall.Stat_t).Uid)
		}
		return nil
	})
	saved := 0
	for _, b := range backend(t, root) {
		if b.Mailbox == "Saved/new-box" {
			saved++
		}
	}
	if saved != 1 {
		t.Fatalf("the owner's delivery: %d messages in Saved/new-box", saved)
	}
}

// nobodyMounted is a vmfs running as uid 65534.
type nobodyMounted struct {
	mnt    string
	stderr *syncBuffer
	exited chan error // the daemon's exit; put the value back after a receive
}

// nobodyMount runs vmfs as uid 65534 over root (which it chowns to that
// user) through fusermount3, with env added to its environment, until the
// test ends.
func nobodyMount(t *testing.T, root string, env []string, args ...string) *nobodyMounted {
	t.Helper()
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run vmfs as another user")
	}
	var st syscall.Stat_t
	syscall.Stat("/dev/fuse", &st)
	if st.Mode&0o006 != 0o006 { // 0600 on these machines, 0666 on a desktop
		os.Chmod("/dev/fuse", 0o666)
		t.Cleanup(func() { os.Chmod("/dev/fuse", os.FileMode(st.Mode&0o777)) })
	}
	top, _ := os.MkdirTemp("", "vmfs-nobody")
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	bin, mnt, home := filepath.Join(top, "vmfs"), filepath.Join(top, "mnt"), filepath.Join(top, "home")
	if b, err := os.ReadFile(vmfsBin); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatal("copy binary")
	}
	os.Mkdir(mnt, 0o755)
	os.Mkdir(home, 0o700)
	for _, p := range []string{filepath.Dir(filepath.Dir(root)), filepath.Dir(root), root, mnt, home} {
		os.Chmod(p, 0o755)
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", root, mnt, home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	all := append(append([]string{"HOME=" + home, "XDG_CONFIG_HOME=" + home}, env...), bin, "mount", "--state", filepath.Join(home, "state"))
	all = append(all, args...)
	cmd := asNobody("env", append(all, root, mnt)...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if isMounted(mnt) {
			asNobody("fusermount3", "-u", mnt).Run()
			exec.Command("umount", "-l", mnt).Run()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	for deadline := time.Now().Add(20 * time.Second); !isMounted(mnt); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not mounted:\n%s", stderr)
		}
	}
	return &nobodyMounted{mnt: mnt, stderr: stderr, exited: exited}
}

// TestUnreadableFileRetried: a message the daemon cannot read when it
// indexes (mode 000 for a vmfs running as an ordinary user) is skipped
// with a log line and shows up once it becomes readable, without any
// other change to its mailbox — also when no inotify event tells (here:
// out of inotify watches, so the directories are polled).
func TestUnreadableFileRetried(t *testing.T) {
	root := emptyBackend(t)
	quickDeliver(t, root, "From: golang@x\nSubject: readable\n\nx\n")
	locked := filepath.Join(root, quickDeliver(t, root, "From: golang@x\nSubject: locked\n\nx\n"))
	os.Chmod(locked, 0)
	// Directories last changed long ago: a scan of them is trusted later.
	old := time.Now().Add(-time.Hour)
	for _, sub := range []string{"cur", "new"} {
		os.Chtimes(filepath.Join(root, sub), old, old)
	}
	cfg := filepath.Join(filepath.Dir(root), "config.toml")
	os.WriteFile(cfg, []byte("[folder.Go]\nmailboxes = [\"*\"]\nquery = \"FROM golang\"\n"), 0o644)
	nm := nobodyMount(t, root, []string{"VMFS_TEST_MAX_WATCHES=1"}, "--config", cfg, "--poll", "1s")
	mnt, stderr := nm.mnt, nm.stderr
	count := func() int {
		out, err := asNobody("ls", filepath.Join(mnt, "Go", "new")).Output()
		if err != nil {
			t.Fatalf("ls: %v\n%s", err, stderr)
		}
		return len(strings.Fields(string(out)))
	}
	if n := count(); n != 1 {
		t.Fatalf("Go/new lists %d, want the 1 readable message", n)
	}
	if !strings.Contains(stderr.String(), "skipped message") {
		t.Errorf("no log line for the unreadable message:\n%s", stderr)
	}
	os.Chmod(locked, 0o600)
	deadline := time.Now().Add(10 * time.Second)
	for count() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the message never showed after it became readable\n%s", stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
