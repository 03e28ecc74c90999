package integration

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLiveConfig: edits of the configuration apply while mounted — a
// folder added appears, a changed query rebuilds the membership with the
// names of the messages that still match, a removed folder goes — and a
// broken edit keeps the running folders and is logged once, with its
// position; SIGHUP reads the file again too. No backend file changes.
func TestLiveConfig(t *testing.T) {
	root, alice, bob := searchBackend(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	write := func(text string) {
		t.Helper()
		// As editors do: a new file renamed over the old one.
		tmp := cfg + ".new"
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	const unread = "[folder.Unread]\nmailboxes = [\"*\", \"-Trash\"]\nquery = \"UNSEEN\"\n"
	write(unread)
	m := mount(t, root, "--config", cfg)
	want := snapshotBackend(t, root)
	exists := func(name string) bool {
		_, err := os.Stat(m.path(name, "cur"))
		return err == nil
	}
	// Added.
	write(unread + "[folder.People]\nmailboxes = [\"*\", \"-Trash\"]\nquery = \"FROM alice\"\n")
	eventually(t, 3*time.Second, func() string {
		if !exists("People") {
			return "People did not appear"
		}
		if got := listedIn(t, m.path("People")); got != alice {
			return "People lists " + itoa(got) + ", want " + itoa(alice)
		}
		return ""
	})
	aliceNames := names(t, m.path("People", "cur"), m.path("People", "new"))
	// Changed: the messages that still match keep their names.
	write(unread + "[folder.People]\nmailboxes = [\"*\", \"-Trash\"]\nquery = \"OR FROM alice FROM bob\"\n")
	eventually(t, 3*time.Second, func() string {
		if got := listedIn(t, m.path("People")); got != alice+bob {
			return "changed People lists " + itoa(got) + ", want " + itoa(alice+bob)
		}
		return ""
	})
	now := names(t, m.path("People", "cur"), m.path("People", "new"))
	for _, n := range aliceNames {
		if i := sort.SearchStrings(now, n); i == len(now) || now[i] != n {
			t.Fatalf("%s lost its name when the query changed: %q", n, now)
		}
	}
	// A broken edit: nothing changes, one log line with the position.
	write(unread + "[folder.People]\nmailboxes = [\"*\"]\nquery = \"FROM\"\n")
	time.Sleep(time.Second)
	if got := listedIn(t, m.path("People")); got != alice+bob {
		t.Fatalf("a broken edit changed People: %d", got)
	}
	if n := strings.Count(m.stderr.String(), "configuration not applied"); n != 1 {
		t.Fatalf("%d log lines for the broken edit, want 1:\n%s", n, m.stderr)
	}
	if !strings.Contains(m.stderr.String(), filepath.Base(cfg)+":6:14:") {
		t.Errorf("the log does not say where the configuration is broken:\n%s", m.stderr)
	}
	// SIGHUP reads it again: still broken, not logged twice.
	m.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(m.stderr.String(), "configuration not applied"); n != 1 {
		t.Fatalf("the same error logged %d times", n)
	}
	// Removed (the fix removes People).
	write(unread)
	eventually(t, 4*time.Second, func() string {
		if _, err := os.Stat(m.path("People")); !errors.Is(err, os.ErrNotExist) {
			return "People still there: " + errString(err)
		}
		return ""
	})
	if !exists("Unread") {
		t.Fatal("Unread gone")
	}
	sameBackend(t, root, want, "after configuration edits")
	// A remount starts from the edited file.
	m.remount()
	if _, err := os.Stat(m.path("People")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("People back after a remount: %v", err)
	}
}

// TestLiveVirtualDir: a dovecot-virtual file added, edited or removed
// under --virtual-dir applies while mounted.
func TestLiveVirtualDir(t *testing.T) {
	root, alice, bob := searchBackend(t)
	vdir := t.TempDir()
	os.Mkdir(filepath.Join(vdir, "All"), 0o755)
	os.WriteFile(filepath.Join(vdir, "All", "dovecot-virtual"), []byte("*\n  ALL\n"), 0o644)
	m := mount(t, root, "--virtual-dir", vdir)
	os.Mkdir(filepath.Join(vdir, "Bob"), 0o755)
	file := filepath.Join(vdir, "Bob", "dovecot-virtual")
	os.WriteFile(file, []byte("*\n-Trash\n  FROM bob\n"), 0o644)
	eventually(t, 3*time.Second, func() string {
		if _, err := os.Stat(m.path("Bob", "cur")); err != nil {
			return "Bob did not appear: " + err.Error()
		}
		if got := listedIn(t, m.path("Bob")); got != bob {
			return "Bob lists " + itoa(got)
		}
		return ""
	})
	os.WriteFile(file, []byte("*\n-Trash\n  FROM alice\n"), 0o644)
	eventually(t, 3*time.Second, func() string {
		if got := listedIn(t, m.path("Bob")); got != alice {
			return "edited Bob lists " + itoa(got) + ", want " + itoa(alice)
		}
		return ""
	})
	os.RemoveAll(filepath.Join(vdir, "Bob"))
	eventually(t, 4*time.Second, func() string {
		if _, err := os.Stat(m.path("Bob")); !errors.Is(err, os.ErrNotExist) {
			return "Bob still there"
		}
		return ""
	})
}
