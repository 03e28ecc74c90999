// Package integration runs the real vmfs binary: it mounts real FUSE
// filesystems over generated Maildirs in temporary directories, drives them
// with ordinary file operations and real clients, checks the backend
// files, and always unmounts in cleanup.
package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

var vmfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmfs-bin")
	if err != nil {
		panic(err)
	}
	vmfsBin = filepath.Join(dir, "vmfs")
	// The daemon is built with the race detector, so that a data race in
	// any test makes vmfs exit with status 66 and the test fail; not for
	// measurements (benchmarks, the comparison, the soak).
	flag.Parse()
	args := []string{"build", "-race", "-o", vmfsBin, "../cmd/vmfs"}
	if f := flag.Lookup("test.bench"); (f != nil && f.Value.String() != "") || os.Getenv("VMFS_COMPARE") != "" || os.Getenv("VMFS_SOAK") != "" || os.Getenv("VMFS_VIEWSPEED") != "" {
		args = []string{"build", "-o", vmfsBin, "../cmd/vmfs"}
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build vmfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("not root and no fusermount3")
		}
	}
}

// mounted is a running vmfs.
type mounted struct {
	t       testing.TB
	mnt     string
	state   string
	backend string
	args    []string
	xdg     string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan error
}

// syncBuffer is a bytes.Buffer that the daemon's stderr writes to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func (s *syncBuffer) Reset() { s.mu.Lock(); defer s.mu.Unlock(); s.b.Reset() }

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// configFile writes a configuration file in a temp dir and returns its
// path.
func configFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mount starts `vmfs mount` and waits until the folders are visible; the
// mount is always taken down in cleanup, also when the test fails.
func mount(t *testing.T, backend string, args ...string) *mounted {
	return mountTB(t, backend, args...)
}

func mountB(b *testing.B, backend string, args ...string) *mounted {
	return mountTB(b, backend, args...)
}

func mountTB(t testing.TB, backend string, args ...string) *mounted {
	t.Helper()
	requireFUSE(t)
	m := &mounted{t: t, mnt: t.TempDir(), state: t.TempDir(), backend: backend, args: args,
		xdg: t.TempDir()}
	m.start()
	t.Cleanup(m.unmount)
	return m
}

// start runs vmfs on the mount's backend, state and mount point, and
// waits until it is mounted.
func (m *mounted) start() {
	t := m.t
	t.Helper()
	m.stderr, m.exited = &syncBuffer{}, make(chan error, 1)
	all := append([]string{"mount", "--state", m.state, "--poll", "1h"}, m.args...)
	if os.Getenv("VMFS_TEST_LOG") == "fuse" { // and every FUSE request
		all = append(all, "-v")
	}
	all = append(all, m.backend, m.mnt)
	m.cmd = exec.Command(vmfsBin, all...)
	m.cmd.Stderr = m.stderr
	if os.Getenv("VMFS_TEST_LOG") != "" { // for debugging: the daemon's log as it happens
		m.cmd.Stderr = io.MultiWriter(m.stderr, os.Stderr)
	}
	m.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+m.xdg, "VMFS_FUSE_DEBUG="+os.Getenv("VMFS_TEST_LOG"))
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.exited <- m.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	// Mounted, and the daemon done mounting: a test that unmounts at once
	// must not pull the mount point from under go-fuse's own first checks.
	for !isMounted(m.mnt) || !strings.Contains(m.stderr.String(), "msg=mounted") {
		select {
		case err := <-m.exited:
			m.exited <- err
			t.Fatalf("vmfs exited before mounting: %v\n%s", err, m.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 30 s\n%s", m.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remount stops vmfs and starts it again on the same state and mount point.
func (m *mounted) remount() {
	m.unmount()
	m.start()
}

func isMounted(dir string) bool {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == dir && strings.HasPrefix(fields[2], "fuse") {
			return true
		}
	}
	return false
}

func (m *mounted) unmount() {
	if isMounted(m.mnt) {
		if out, err := exec.Command("fusermount3", "-u", m.mnt).CombinedOutput(); err != nil {
			if out2, err2 := exec.Command("umount", "-l", m.mnt).CombinedOutput(); err2 != nil {
				m.t.Errorf("unmount %s: %v %s / %v %s", m.mnt, err, out, err2, out2)
			}
		}
	}
	select {
	case err := <-m.exited:
		m.exited <- nil // a second unmount finds it exited
		if err != nil {
			m.t.Errorf("vmfs exited with %v\n%s", err, m.stderr)
		}
	case <-time.After(15 * time.Second):
		m.cmd.Process.Kill()
		m.t.Errorf("vmfs did not exit after unmount\n%s", m.stderr)
	}
	if isMounted(m.mnt) {
		m.t.Errorf("%s still mounted", m.mnt)
	}
}

func (m *mounted) path(p ...string) string { return filepath.Join(append([]string{m.mnt}, p...)...) }

// ls lists a directory of the mount, sorted.
func ls(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ls %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// backendMsg is one message file of the backend.
type backendMsg struct {
	Mailbox, Path, Name, Flags string
	New                        bool
}

func backend(t *testing.T, root string) []backendMsg {
	t.Helper()
	tr, err := maildir.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []backendMsg
	for _, mb := range tr.Mailboxes {
		ents, _ := maildir.List(mb.Path)
		for _, e := range ents {
			n, _ := maildir.ParseName(e.Name)
			sub := map[bool]string{true: "new", false: "cur"}[e.New]
			out = append(out, backendMsg{Mailbox: mb.Name, Path: filepath.Join(mb.Path, sub, e.Name), Name: e.Name, Flags: n.Flags, New: e.New})
		}
	}
	return out
}

func hashFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s[:])
}

// eventually retries f until it returns "" or the deadline passes.
func eventually(t *testing.T, d time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func errnoOf(err error) syscall.Errno {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return 0
		}
		err = u.Unwrap()
	}
	return 0
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s[:])
}

func mkdirT(dir string) error { return os.Mkdir(dir, 0o700) }
