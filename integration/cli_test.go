package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vmfs/internal/maildir"
)

// TestLsAndExpunge: `vmfs ls` counts the folders of a running vmfs and of
// a stopped one; `vmfs expunge` drops a lingering message at once.
func TestLsAndExpunge(t *testing.T) {
	root := genBackend(t, 100)
	cfg := configFile(t, "[folder.Unread]\nmailboxes = [\"*\", \"-Trash\", \"-Junk\", \"-Spam\"]\nquery = \"UNSEEN\"\n")
	m := mount(t, root, "--config", cfg)
	before := backend(t, root)
	vmfs := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(vmfsBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("vmfs %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	n := len(names(t, m.path("Unread", "cur"))) + len(names(t, m.path("Unread", "new")))
	name := names(t, m.path("Unread", "cur"))[0]
	nm, _ := maildir.ParseName(name)
	nm.Flags = maildir.SetFlags(nm.Flags, "S", "")
	if err := os.Rename(m.path("Unread", "cur", name), m.path("Unread", "cur", nm.String())); err != nil {
		t.Fatal(err)
	}
	out := vmfs("ls", "--config", cfg, "--state", m.state, root)
	if !strings.Contains(out, "Unread") || !strings.Contains(out, " 1\n") {
		t.Fatalf("ls while mounted:\n%s", out)
	}
	if fields := strings.Fields(strings.Split(out, "\n")[1]); fields[1] != itoa(n) || fields[2] != "1" {
		t.Fatalf("ls: %q, want %d messages, 1 lingering", fields, n)
	}
	vmfs("expunge", "--config", cfg, "--state", m.state, "--maildir", root, "Unread")
	for _, l := range names(t, m.path("Unread", "cur")) {
		if l == nm.String() {
			t.Fatalf("expunged message still listed: %s", l)
		}
	}
	// The kernel may still have the name for a while (fs.msgEntryTimeout),
	// but nothing acts through it: the backend message stays.
	if err := os.Remove(m.path("Unread", "cur", nm.String())); !os.IsNotExist(err) {
		t.Fatalf("rm of the expunged message's name: %v, want ENOENT", err)
	}
	if got := len(backend(t, root)); got != len(before) {
		t.Fatalf("backend has %d messages after expunge, had %d", got, len(before))
	}
	if got := len(names(t, m.path("Unread", "cur"))) + len(names(t, m.path("Unread", "new"))); got != n-1 {
		t.Fatalf("after expunge %d, want %d", got, n-1)
	}
	m.unmount()
	out = vmfs("ls", "--config", cfg, "--state", m.state, root)
	if fields := strings.Fields(strings.Split(out, "\n")[1]); fields[1] != itoa(n-1) {
		t.Fatalf("ls from a stopped vmfs's index: %q", fields)
	}
	// An unknown folder is an error.
	if err := exec.Command(vmfsBin, "expunge", "--config", cfg, "--state", m.state, "--maildir", root, "Nope").Run(); err == nil {
		t.Error("expunge of an unknown folder succeeded")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestColdIndexProgress: a cold index of a few thousand messages reports
// its progress (log lines when stderr is not a terminal).
func TestColdIndexProgress(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail")
	if out, err := exec.Command(vmfsBin, "demo", "-n", "2500", root).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v %s", err, out)
	}
	m := mount(t, root)
	if log := m.stderr.String(); !strings.Contains(log, "msg=indexing") || !strings.Contains(log, "total=2500") || !strings.Contains(log, "done=2500") {
		t.Fatalf("no progress in the log:\n%s", log)
	}
}

// TestReadOnlyMount: -o ro shows the folders and refuses every change.
func TestReadOnlyMount(t *testing.T) {
	root := genBackend(t, 30)
	before := len(backend(t, root))
	m := mount(t, root, "-o", "ro")
	cur := names(t, m.path("Unread", "cur"))
	if len(cur) == 0 {
		t.Fatal("empty Unread")
	}
	p := m.path("Unread", "cur", cur[0])
	if _, err := os.ReadFile(p); err != nil {
		t.Fatalf("read on a read-only mount: %v", err)
	}
	if err := os.Rename(p, p+"S"); err == nil {
		t.Error("rename succeeded on a read-only mount")
	}
	if err := os.Remove(p); err == nil {
		t.Error("unlink succeeded on a read-only mount")
	}
	if err := os.WriteFile(m.path("Unread", "tmp", "x"), []byte("x"), 0o600); err == nil {
		t.Error("create succeeded on a read-only mount")
	}
	if after := len(backend(t, root)); after != before {
		t.Fatalf("backend changed: %d -> %d", before, after)
	}
}

// TestReadOnlyCommandsChangeNothing: `vmfs ls` with another configuration
// (or without the --virtual-dir a mount used), run while no vmfs is
// mounted, leaves the index's folders as they were: the next ls with the
// mount's configuration, and the next mount, show the same messages under
// the same names.
func TestReadOnlyCommandsChangeNothing(t *testing.T) {
	root := genBackend(t, 80)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.toml")
	os.WriteFile(full, []byte("[folder.Unread]\nmailboxes = [\"*\"]\nquery = \"UNSEEN\"\n[folder.All]\nmailboxes = [\"*\"]\nquery = \"ALL\"\n"), 0o644)
	other := filepath.Join(dir, "other.toml")
	os.WriteFile(other, []byte("[folder.Unread]\nmailboxes = [\"*\"]\nquery = \"UNSEEN\"\n"), 0o644)
	vdir := filepath.Join(dir, "virtual")
	os.MkdirAll(filepath.Join(vdir, "Flagged"), 0o755)
	os.WriteFile(filepath.Join(vdir, "Flagged", "dovecot-virtual"), []byte("*\n  FLAGGED\n"), 0o644)

	m := mount(t, root, "--config", full, "--virtual-dir", vdir)
	before := map[string][]string{}
	for _, f := range []string{"Unread", "All", "Flagged"} {
		before[f] = names(t, m.path(f, "cur"), m.path(f, "new"))
		if len(before[f]) == 0 {
			t.Fatalf("%s is empty", f)
		}
	}
	m.unmount()
	vmfs := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(vmfsBin, append(args, "--state", m.state, root)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vmfs %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	want := vmfs("ls", "--config", full, "--virtual-dir", vdir)
	for _, f := range []string{"All ", "Flagged ", "Unread "} {
		if !strings.Contains(want, f) {
			t.Fatalf("ls lacks %s:\n%s", f, want)
		}
	}
	vmfs("ls", "--config", other)
	vmfs("ls", "--config", full)
	if got := vmfs("ls", "--config", full, "--virtual-dir", vdir); got != want {
		t.Fatalf("after ls with other configurations:\n%s\nwant\n%s", got, want)
	}
	m.start()
	for f, names0 := range before {
		if got := names(t, m.path(f, "cur"), m.path(f, "new")); strings.Join(got, ",") != strings.Join(names0, ",") {
			t.Errorf("%s after remount: %d names, want the same %d", f, len(got), len(names0))
		}
	}
}
