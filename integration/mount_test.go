package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

func genBackend(t *testing.T, n int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: n, Mailboxes: 10, Seed: 5, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return root
}

func unreadTruth(t *testing.T, root string) map[string]backendMsg {
	out := map[string]backendMsg{}
	for _, m := range backend(t, root) {
		if m.Mailbox != "Trash" && m.Mailbox != "Junk" && m.Mailbox != "Spam" && !strings.Contains(m.Flags, "S") {
			out[m.Path] = m
		}
	}
	return out
}

// TestListingsAndBytes: the mount lists exactly the engine's membership,
// with the backend's bytes, sizes, mtimes, flags and a stable inode.
func TestListingsAndBytes(t *testing.T) {
	root := genBackend(t, 300)
	m := mount(t, root)
	if got := ls(t, m.mnt); strings.Join(got, ",") != "Flagged,Recent,Unread,dovecot-acl" {
		t.Fatalf("root = %q", got)
	}
	// dovecot-keywords: the folder's keyword letters (SPEC §5), written at
	// the first sync since messages of the corpus carry keywords.
	if got := ls(t, m.path("Unread")); strings.Join(got, ",") != "cur,dovecot-acl,dovecot-keywords,new,tmp" {
		t.Fatalf("Unread = %q", got)
	}
	truth := unreadTruth(t, root)
	want := map[string]int{} // content hash → count
	for p := range truth {
		want[hashFile(t, p)]++
	}
	got := map[string]int{}
	n := 0
	for _, sub := range []string{"cur", "new"} {
		for _, name := range ls(t, m.path("Unread", sub)) {
			p := m.path("Unread", sub, name)
			got[hashFile(t, p)]++
			n++
			var st, fst syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			syscall.Fstat(int(f.Fd()), &fst)
			f.Close()
			if st.Ino != fst.Ino || st.Ino == 0 {
				t.Errorf("%s: st_ino %d, fstat %d", name, st.Ino, fst.Ino)
			}
			nm, err := maildir.ParseName(name)
			if err != nil || strings.Contains(nm.Flags, "S") || (sub == "new") != !nm.HasInfo {
				t.Errorf("bad virtual name %s/%s", sub, name)
			}
		}
	}
	if n != len(truth) {
		t.Fatalf("Unread lists %d messages, the backend has %d unseen", n, len(truth))
	}
	for h, c := range want {
		if got[h] != c {
			t.Fatalf("content %s: %d through the mount, %d in the backend", h[:8], got[h], c)
		}
	}
	// sizes and mtimes are the backend's
	for _, name := range ls(t, m.path("Unread", "cur"))[:5] {
		fi, _ := os.Stat(m.path("Unread", "cur", name))
		found := false
		for p := range truth {
			bfi, _ := os.Stat(p)
			if bfi.Size() == fi.Size() && bfi.ModTime().Equal(fi.ModTime()) && hashFile(t, p) == hashFile(t, m.path("Unread", "cur", name)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: size/mtime not the backend's", name)
		}
	}
}

// findBackend returns the backend message whose bytes equal a mount file.
func findBackend(t *testing.T, root, mountFile string) backendMsg {
	t.Helper()
	h := hashFile(t, mountFile)
	for _, b := range backend(t, root) {
		if hashFile(t, b.Path) == h {
			return b
		}
	}
	t.Fatalf("no backend file for %s", mountFile)
	return backendMsg{}
}

func TestFlagRenamesDeleteAndEXDEV(t *testing.T) {
	root := genBackend(t, 200)
	m := mount(t, root)
	total := len(backend(t, root))
	cur := ls(t, m.path("Unread", "cur"))
	// mv cur/X:2,… cur/X:2,…S renames the backend file.
	name := cur[0]
	b := findBackend(t, root, m.path("Unread", "cur", name))
	n, _ := maildir.ParseName(name)
	n.Flags = maildir.SetFlags(n.Flags, "S", "")
	if err := os.Rename(m.path("Unread", "cur", name), m.path("Unread", "cur", n.String())); err != nil {
		t.Fatal(err)
	}
	bn, _ := maildir.ParseName(b.Name)
	want := filepath.Join(filepath.Dir(b.Path), maildir.Name{Base: bn.Base, Flags: maildir.SetFlags(bn.Flags, "S", ""), Extra: bn.Extra, HasInfo: true}.String())
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("backend not renamed to %s: %v", want, err)
	}
	if _, err := os.Stat(b.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("old backend name still there")
	}
	// The message read through the folder stays, with its new name.
	if _, err := os.Stat(m.path("Unread", "cur", n.String())); err != nil {
		t.Fatalf("renamed message not listed: %v", err)
	}
	// mv new/X cur/X:2,S moves it from new/ to cur/.
	news := ls(t, m.path("Unread", "new"))
	if len(news) == 0 {
		t.Fatal("no message in new/")
	}
	bnew := findBackend(t, root, m.path("Unread", "new", news[0]))
	if err := os.Rename(m.path("Unread", "new", news[0]), m.path("Unread", "cur", news[0]+":2,S")); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(filepath.Dir(filepath.Dir(bnew.Path)), "cur", maildir.BaseOf(bnew.Name)+":2,S")
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("new->cur not carried out: %v", err)
	}
	if got := len(backend(t, root)); got != total {
		t.Fatalf("backend has %d messages after renames, had %d", got, total)
	}
	// rm deletes exactly that backend file.
	victim := ls(t, m.path("Unread", "cur"))[3]
	bv := findBackend(t, root, m.path("Unread", "cur", victim))
	if err := os.Remove(m.path("Unread", "cur", victim)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bv.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("backend file not deleted")
	}
	if got := len(backend(t, root)); got != total-1 {
		t.Fatalf("backend has %d messages after one delete, had %d", got, total)
	}
	// ln and a cross-folder rename get EXDEV.
	some := m.path("Unread", "cur", ls(t, m.path("Unread", "cur"))[0])
	if err := os.Link(some, m.path("Unread", "cur", "x")); errnoOf(err) != syscall.EXDEV {
		t.Errorf("link: %v", err)
	}
	if err := os.Rename(some, m.path("Flagged", "cur", filepath.Base(some))); errnoOf(err) != syscall.EXDEV {
		t.Errorf("cross-folder rename: %v", err)
	}
	if err := os.Rename(some, m.path("Unread", "cur", "1.other.host:2,S")); errnoOf(err) != syscall.EXDEV {
		t.Errorf("rename to another base: %v", err)
	}
	// Messages are immutable: writing is refused, at write(2) (the mount
	// runs in FUSE's no-open mode: open(2) never reaches vmfs), and the
	// backend file stays as it was.
	before, err := os.ReadFile(some)
	if err != nil {
		t.Fatal(err)
	}
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR | os.O_APPEND} {
		f, err := os.OpenFile(some, flags, 0)
		if err != nil {
			if errnoOf(err) != syscall.EACCES {
				t.Errorf("open for writing: %v", err)
			}
			continue
		}
		_, err = f.Write([]byte("overwritten"))
		f.Close()
		if errnoOf(err) != syscall.EACCES {
			t.Errorf("write: %v, want EACCES", err)
		}
	}
	if after, err := os.ReadFile(some); err != nil || string(after) != string(before) {
		t.Errorf("message changed by a refused write: %v", err)
	}
	if err := os.Truncate(some, 0); errnoOf(err) != syscall.EACCES {
		t.Errorf("truncate: %v", err)
	}
	if err := os.Chmod(some, 0o777); errnoOf(err) != syscall.EACCES {
		t.Errorf("chmod: %v", err)
	}
	if err := os.Mkdir(m.path("NewFolder"), 0o755); errnoOf(err) != syscall.EINVAL {
		t.Errorf("mkdir at the root of a name that is no search query: %v, want EINVAL", err)
	}
	if got := len(backend(t, root)); got != total-1 {
		t.Fatalf("backend changed by refused operations: %d", got)
	}
}

func TestDeliveryThroughTmp(t *testing.T) {
	root := genBackend(t, 50)
	cfg := configFile(t, `
[folder.Unread]
mailboxes = ["*", "-Trash"]
query = "UNSEEN"

[folder."Lists/Go"]
mailboxes = ["Lists/*"]
query = 'HEADER List-Id golang'
save = "Lists/golang"
`)
	m := mount(t, root, "--config", cfg)
	if got := ls(t, m.path("Lists")); strings.Join(got, ",") != "Go,dovecot-acl" {
		t.Fatalf("Lists = %q (a parent-only directory holds its folders and its rights file, no cur/)", got)
	}
	before := len(backend(t, root))
	// Without a save mailbox: EACCES, nothing written anywhere.
	os.WriteFile(m.path("Unread", "tmp", "1.a.host"), []byte("Subject: x\n\nbody\n"), 0o600)
	err := os.Rename(m.path("Unread", "tmp", "1.a.host"), m.path("Unread", "new", "1.a.host"))
	if errnoOf(err) != syscall.EACCES {
		t.Fatalf("delivery without save: %v", err)
	}
	if len(backend(t, root)) != before {
		t.Fatal("a refused delivery wrote into the backend")
	}
	// With one: delivered into Lists/golang, shown under the client's name.
	msg := "From: someone@example.org\nSubject: appended\n\nhello\n"
	tmp := m.path("Lists", "Go", "tmp", "1700000000.M1P2.client")
	if err := os.WriteFile(tmp, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, m.path("Lists", "Go", "cur", "1700000000.M1P2.client:2,S")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(m.path("Lists", "Go", "cur", "1700000000.M1P2.client:2,S"))
	if err != nil || string(b) != msg {
		t.Fatalf("delivered message through the mount: %q %v", b, err)
	}
	var found []backendMsg
	for _, bm := range backend(t, root) {
		if bm.Mailbox == "Lists/golang" {
			found = append(found, bm)
		}
	}
	if len(found) != 1 || found[0].Flags != "S" || hashFile(t, found[0].Path) != hashFile(t, m.path("Lists", "Go", "cur", "1700000000.M1P2.client:2,S")) {
		t.Fatalf("backend Lists/golang = %+v", found)
	}
	if ents, _ := os.ReadDir(m.path("Lists", "Go", "tmp")); len(ents) != 0 {
		t.Error("tmp/ not empty after delivery")
	}
}

func TestControlFiles(t *testing.T) {
	root := genBackend(t, 20)
	m := mount(t, root)
	dir := m.path("Unread")
	p := filepath.Join(dir, "dovecot-uidlist")
	if err := os.WriteFile(p, []byte("3 V1 N1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// O_EXCL on an existing file fails.
	if _, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL: %v", err)
	}
	// Write a new version in tmp/, fsync, rename over (Courier's way) and
	// in the root (Dovecot's lock-file way).
	f, err := os.Create(filepath.Join(dir, "tmp", "uidlist.new"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("3 V1 N2\nline two\n")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(filepath.Join(dir, "tmp", "uidlist.new"), p); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "dovecot-uidlist.lock")
	os.WriteFile(lock, []byte("v3"), 0o600)
	if err := os.Rename(lock, p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "v3" {
		t.Fatalf("after rename over: %q %v", b, err)
	}
	if err := os.Truncate(p, 1); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 1 {
		t.Errorf("truncate: size %d", fi.Size())
	}
	if err := os.Mkdir(filepath.Join(dir, "courierimapkeywords"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "courierimapkeywords", ":list"), []byte("x"), 0o600)
	names := ls(t, dir)
	sort.Strings(names)
	if strings.Join(names, ",") != "courierimapkeywords,cur,dovecot-acl,dovecot-keywords,dovecot-uidlist,new,tmp" {
		t.Errorf("folder root = %q", names)
	}
	// touch of the folder and its directories is accepted.
	now := time.Now()
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "cur"), filepath.Join(dir, "new")} {
		if err := os.Chtimes(d, now, now); err != nil {
			t.Errorf("utime %s: %v", d, err)
		}
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	// Control files survive a remount, and are not in the backend.
	for _, bm := range backend(t, root) {
		if strings.Contains(bm.Path, "uidlist") {
			t.Fatal("a control file reached the backend")
		}
	}
	if out, err := exec.Command("grep", "-r", "courierimapkeywords", root).CombinedOutput(); err == nil {
		t.Fatalf("control data in the backend: %s", out)
	}
}

func TestBackendChangesVisible(t *testing.T) {
	root := genBackend(t, 50)
	m := mount(t, root)
	before := len(ls(t, m.path("Unread", "new")))
	// A delivery into the backend shows in Unread/new.
	if _, err := maildir.Deliver(root, strings.NewReader("Subject: fresh\n\nnew mail\n"), "", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if n := len(ls(t, m.path("Unread", "new"))); n != before+1 {
			return "delivery not visible"
		}
		return ""
	})
	// The directory mtime moves with the listing.
	fi1, _ := os.Stat(m.path("Unread", "new"))
	maildir.Deliver(root, strings.NewReader("Subject: fresh2\n\nnew mail\n"), "", false)
	eventually(t, 10*time.Second, func() string {
		fi2, _ := os.Stat(m.path("Unread", "new"))
		if !fi2.ModTime().After(fi1.ModTime()) {
			return "new/ mtime did not move"
		}
		return ""
	})
	// A backend delete disappears.
	b := backend(t, root)
	var victim backendMsg
	for _, x := range b {
		if x.Mailbox == "INBOX" && !strings.Contains(x.Flags, "S") && !x.New {
			victim = x
			break
		}
	}
	h := hashFile(t, victim.Path)
	os.Remove(victim.Path)
	eventually(t, 10*time.Second, func() string {
		for _, name := range ls(t, m.path("Unread", "cur")) {
			if data, err := os.ReadFile(m.path("Unread", "cur", name)); err == nil && hashOf(data) == h {
				return "deleted backend message still listed"
			}
		}
		return ""
	})
}

func TestRefusesOverlapAndSecondMount(t *testing.T) {
	requireFUSE(t)
	root := genBackend(t, 10)
	inside := filepath.Join(root, "sub")
	os.Mkdir(inside, 0o755)
	out, err := exec.Command(vmfsBin, "mount", "--state", t.TempDir(), root, inside).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "inside the backend") {
		t.Errorf("mount inside the backend: %v %s", err, out)
	}
	// /mail2 is not inside /mail.
	sibling := root + "2"
	os.Mkdir(sibling, 0o755)
	m := mount(t, root)
	st := m.state
	out, err = exec.Command(vmfsBin, "mount", "--state", st, root, sibling).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already serving") {
		t.Errorf("second mount on the same state: %v %s", err, out)
	}
	if isMounted(sibling) {
		exec.Command("fusermount3", "-u", sibling).Run()
		t.Error("second mount mounted")
	}
}

func TestSignalUnmountsCleanly(t *testing.T) {
	root := genBackend(t, 10)
	m := mount(t, root)
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.exited:
		m.exited <- nil // for cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, m.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if isMounted(m.mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
}

// TestSignalWhileBusy: SIGTERM while a shell sits in the mount and a file
// is open there: vmfs retries, detaches lazily, flushes the index and
// exits 0 within a bounded time; the next mount lists the same names.
func TestSignalWhileBusy(t *testing.T) {
	root := genBackend(t, 40)
	m := mount(t, root)
	before := names(t, m.path("Unread", "cur"), m.path("Unread", "new"))
	if len(before) == 0 {
		t.Fatal("Unread is empty")
	}
	busy := exec.Command("sh", "-c", "exec 3< \"$1\"; cd \"$2\" && exec sleep 60", "sh",
		m.path("Unread", "new", names(t, m.path("Unread", "new"))[0]), m.path("Unread", "cur"))
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	time.Sleep(200 * time.Millisecond) // the shell is in the mount
	t0 := time.Now()
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.exited:
		m.exited <- nil
		if err != nil {
			t.Fatalf("exit after SIGTERM while busy: %v\n%s", err, m.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20 s after SIGTERM while busy\n%s", m.stderr)
	}
	t.Logf("busy SIGTERM: exited after %v", time.Since(t0).Round(time.Millisecond))
	if isMounted(m.mnt) {
		t.Fatal("still mounted")
	}
	if !strings.Contains(m.stderr.String(), "detaching it lazily") {
		t.Errorf("no word of the lazy unmount:\n%s", m.stderr)
	}
	busy.Process.Kill()
	busy.Wait()
	m.start()
	if after := names(t, m.path("Unread", "cur"), m.path("Unread", "new")); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("after the busy shutdown: %d names, want the same %d", len(after), len(before))
	}
}

// TestLostStderr: Ctrl-C on "vmfs mount … | tee log" kills tee too; vmfs
// must not die of SIGPIPE writing its log: it unmounts and exits 0.
func TestLostStderr(t *testing.T) {
	requireFUSE(t)
	root := genBackend(t, 10)
	mnt := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vmfsBin, "mount", "--state", t.TempDir(), "-v", root, mnt)
	cmd.Stderr = w
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if isMounted(mnt) {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	for deadline := time.Now().Add(20 * time.Second); !isMounted(mnt); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("not mounted")
		}
	}
	r.Close() // tee is gone
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("vmfs with a closed stderr, after SIGINT: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no exit after SIGINT")
	}
	if isMounted(mnt) {
		t.Fatal("left mounted")
	}
}

// TestRefusesBadMountpoints: a mount point that is not empty, already a
// mount, or a Maildir (arguments swapped), and a bad -o option, are
// refused with a clear message before anything is indexed.
func TestRefusesBadMountpoints(t *testing.T) {
	requireFUSE(t)
	root := genBackend(t, 10)
	m := mount(t, root)
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "notes.txt"), []byte("mine"), 0o600)
	other := genBackend(t, 5)
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"non-empty", "is not empty", []string{other, nonEmpty}},
		{"already a mount", "already a mount point", []string{other, m.mnt}},
		{"swapped arguments", "is a Maildir", []string{t.TempDir(), other}},
		{"bad -o", "unsupported mount option", []string{"-o", "allow_other,nosuid_please", other, t.TempDir()}},
	} {
		state := t.TempDir()
		out, err := exec.Command(vmfsBin, append([]string{"mount", "--state", state}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v, %q; want an error saying %q", tc.name, err, out, tc.want)
		}
		if ents, _ := os.ReadDir(state); len(ents) != 0 {
			t.Errorf("%s: the state directory was written before the check: %v", tc.name, ents)
		}
	}
	if got := len(backend(t, other)); got != 5 {
		t.Fatalf("the backend changed: %d messages", got)
	}
	if data, _ := os.ReadFile(filepath.Join(nonEmpty, "notes.txt")); string(data) != "mine" {
		t.Fatal("the non-empty mount point was hidden or changed")
	}
	if !isMounted(m.mnt) {
		t.Fatal("the first mount went away")
	}
}

// A remount with nothing changed shows nothing new: the first tick after
// it evaluates every message of the time-based folder (Recent) again and
// must not move that folder's directory mtime, which Dovecot and mutt take
// for a change (they list it again), nor write to the index (a write set
// off a Badger compaction at every start).
func TestRemountQuietAfterFirstTick(t *testing.T) {
	root := genBackend(t, 3000)
	// Directories last changed long ago: the first scan is trusted by the
	// next start (one changed within its last 2 s is listed again, and
	// its scan state written).
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	m := mount(t, root)
	// The cold index leaves sizes and dates to read after mounting;
	// Recent fills in from them.
	eventually(t, 30*time.Second, func() string {
		if !strings.Contains(m.stderr.String(), "sizes and dates read") {
			return "sizes and dates never read"
		}
		return ""
	})
	before := ls(t, m.path("Recent", "cur"))
	m.remount()
	stat := func() time.Time {
		fi, err := os.Stat(m.path("Recent", "cur"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	t0 := stat() // the first tick comes a second after mounting
	time.Sleep(2500 * time.Millisecond)
	if t1 := stat(); !t1.Equal(t0) {
		t.Errorf("Recent/cur's mtime moved from %v to %v with nothing changed", t0, t1)
	}
	if after := ls(t, m.path("Recent", "cur")); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("Recent/cur listed %d names before the remount, %d after", len(before), len(after))
	}
	// The snapshot is written at unmount only if the index changed since
	// it was read.
	snap, _ := filepath.Glob(filepath.Join(m.state, "*", "index.snapshot"))
	if len(snap) != 1 {
		t.Fatalf("snapshots: %q", snap)
	}
	fi0, err := os.Stat(snap[0])
	if err != nil {
		t.Fatal(err)
	}
	m.remount()
	if fi, err := os.Stat(snap[0]); err != nil || !fi.ModTime().Equal(fi0.ModTime()) {
		t.Errorf("the index was written with nothing changed (snapshot %v → %v, %v)", fi0.ModTime(), fi.ModTime(), err)
	}
}
