package integration

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

var quickN atomic.Int64

// quickDeliver delivers like a fast delivery agent: tmp/, then rename into
// new/, without fsync (the tests need bursts, not durability).
func quickDeliver(t *testing.T, box, body string) string {
	name := fmt.Sprintf("%d.Q%dP%d.test", time.Now().Unix(), quickN.Add(1), os.Getpid())
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(box, "new", name)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join("new", name)
}

func emptyBackend(t *testing.T, boxes ...string) string {
	root := filepath.Join(t.TempDir(), "mail")
	for _, b := range append([]string{""}, boxes...) {
		for _, s := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(root, b, s), 0o755)
		}
	}
	return root
}

// unreadNames lists Unread's cur/ and new/ through the mount.
func names(t *testing.T, dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatalf("readdir %s: %v", d, err)
		}
		for _, e := range ents {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestLiveRenameLingerAndNewMailbox(t *testing.T) {
	root := emptyBackend(t, ".Lists.go")
	cfg := configFile(t, `
[folder.Unread]
query = "UNSEEN"
[folder.Lists]
mailboxes = ["Lists/*"]
query = "ALL"
`)
	m := mount(t, root, "--config", cfg)
	// A delivery into the backend appears within a second.
	rel, _ := maildir.Deliver(root, strings.NewReader("Subject: one\n\nbody\n"), "", false)
	start := time.Now()
	eventually(t, time.Second, func() string {
		if len(names(t, m.path("Unread", "new"))) != 1 {
			return "delivery not visible within 1 s"
		}
		return ""
	})
	t.Logf("delivery visible after %v", time.Since(start))
	// mutt-like new -> cur with S, in the backend: the virtual name
	// changes, the message lingers in Unread (it stopped matching).
	vname := names(t, m.path("Unread", "new"))[0]
	base := filepath.Base(rel)
	os.Rename(filepath.Join(root, rel), filepath.Join(root, "cur", base+":2,S"))
	eventually(t, time.Second, func() string {
		cur := names(t, m.path("Unread", "cur"))
		if len(cur) != 1 || cur[0] != vname+":2,S" || len(names(t, m.path("Unread", "new"))) != 0 {
			return fmt.Sprintf("rename not visible: cur=%q", cur)
		}
		return ""
	})
	// A new mailbox matching Lists/* joins, with its mail.
	nb := filepath.Join(root, ".Lists.rust")
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(nb, s), 0o755)
	}
	time.Sleep(50 * time.Millisecond)
	maildir.Deliver(nb, strings.NewReader("Subject: rust\n\nbody\n"), "", false)
	eventually(t, 2*time.Second, func() string {
		if len(names(t, m.path("Lists", "new"))) != 1 {
			return "message in a new mailbox not visible"
		}
		return ""
	})
	// A backend delete disappears at once, lingering or not.
	os.Remove(filepath.Join(root, "cur", base+":2,S"))
	eventually(t, time.Second, func() string {
		if n := len(names(t, m.path("Unread", "cur"))); n != 0 {
			return "deleted message still listed"
		}
		return ""
	})
}

// TestBurstNoDuplicates: 5,000 deliveries while a reader lists the folder
// in a loop: no listing shows a name twice, and the final one is exact.
func TestBurstNoDuplicates(t *testing.T) {
	root := emptyBackend(t)
	m := mount(t, root)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var dupErr atomic.Value
	listings := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			// One directory's listing is one snapshot; as on a disk, a
			// message moving new/ → cur/ between two readdirs may show
			// in both, so each directory is checked on its own.
			for _, d := range []string{m.path("Unread", "new"), m.path("Unread", "cur")} {
				seen := map[string]bool{}
				for _, n := range names(t, d) {
					b := maildir.BaseOf(n)
					if seen[b] {
						dupErr.Store(fmt.Sprintf("listing of %s shows %s twice", d, b))
					}
					seen[b] = true
				}
			}
			listings++
		}
	}()
	const n = 5000
	for i := 0; i < n; i++ {
		rel := quickDeliver(t, root, "Subject: m"+strconv.Itoa(i)+"\n\nbody\n")
		if i%3 == 0 { // some move on to cur/ as a client would
			os.Rename(filepath.Join(root, rel), filepath.Join(root, "cur", filepath.Base(rel)+":2,F"))
		}
	}
	eventually(t, 10*time.Second, func() string {
		if got := len(names(t, m.path("Unread", "new"), m.path("Unread", "cur"))); got != n {
			return fmt.Sprintf("final listing has %d, want %d", got, n)
		}
		return ""
	})
	stop.Store(true)
	wg.Wait()
	if e := dupErr.Load(); e != nil {
		t.Fatal(e)
	}
	t.Logf("%d listings during the burst", listings)
}

// TestForcedOverflow: with a tiny inotify queue, a burst overflows it; the
// mount ends fully consistent.
func TestForcedOverflow(t *testing.T) {
	const knob = "/proc/sys/fs/inotify/max_queued_events"
	old, err := os.ReadFile(knob)
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root to shrink the inotify queue")
	}
	root := emptyBackend(t, ".A", ".B")
	if err := os.WriteFile(knob, []byte("64"), 0o644); err != nil {
		t.Skip("cannot shrink the inotify queue")
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
	m := mount(t, root)                // its watcher is created with the small queue
	time.Sleep(300 * time.Millisecond) // the watcher starts just after the mount
	os.WriteFile(knob, old, 0o644)
	// Stop the daemon so that nothing reads the queue while it fills.
	m.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			m.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	want := 0
	for i := 0; i < 3000; i++ {
		box := []string{root, filepath.Join(root, ".A"), filepath.Join(root, ".B")}[i%3]
		quickDeliver(t, box, "Subject: x\n\nbody\n")
		want++
	}
	m.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	eventually(t, 10*time.Second, func() string {
		if got := len(names(t, m.path("Unread", "new"))); got != want {
			return fmt.Sprintf("after the overflow Unread has %d, want %d", got, want)
		}
		return ""
	})
	if !strings.Contains(m.stderr.String(), "events lost") {
		t.Errorf("the queue did not overflow; the test did not test recovery:\n%s", m.stderr.String())
	}
}

// TestRenamesDuringListings: 10,000 backend flag renames while a reader
// lists the folder: no listing shows a message twice, and the final
// listing has every message once with its final flags.
func TestRenamesDuringListings(t *testing.T) {
	root := genBackend(t, 200)
	cfg := configFile(t, "[folder.All]\nquery = \"ALL\"\n")
	m := mount(t, root, "--config", cfg)
	total := len(backend(t, root))
	var stop atomic.Bool
	var dup atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, d := range []string{m.path("All", "cur"), m.path("All", "new")} {
				seen := map[string]bool{}
				for _, n := range names(t, d) {
					b := maildir.BaseOf(n)
					if seen[b] {
						dup.Store("listing of " + d + " shows " + b + " twice")
					}
					seen[b] = true
				}
			}
		}
	}()
	r := rand.New(rand.NewSource(3))
	msgs := backend(t, root)
	cur := map[int]string{} // index → current path
	for i, b := range msgs {
		cur[i] = b.Path
	}
	for k := 0; k < 10000; k++ {
		i := r.Intn(len(msgs))
		p := cur[i]
		n, _ := maildir.ParseName(filepath.Base(p))
		flag := string("FRST"[r.Intn(4)])
		if strings.Contains(n.Flags, flag) {
			n.Flags = maildir.SetFlags(n.Flags, "", flag)
		} else {
			n.Flags = maildir.SetFlags(n.Flags, flag, "")
		}
		n.HasInfo = true
		np := filepath.Join(filepath.Dir(filepath.Dir(p)), "cur", n.String())
		if err := os.Rename(p, np); err != nil {
			t.Fatal(err)
		}
		cur[i] = np
	}
	eventually(t, 10*time.Second, func() string {
		all := append(names(t, m.path("All", "cur")), names(t, m.path("All", "new"))...)
		if len(all) != total {
			return fmt.Sprintf("All lists %d, want %d", len(all), total)
		}
		if got := len(names(t, m.path("All", "new"))); got != 0 {
			return fmt.Sprintf("%d messages still in new/", got)
		}
		return ""
	})
	stop.Store(true)
	wg.Wait()
	if d := dup.Load(); d != nil {
		t.Fatal(d)
	}
	// Every backend file's flags are what the mount shows: the same
	// standard flags, and keyword letters that name the same keywords in
	// the folder's map as in the backend mailbox's.
	flagsByContent := map[string]string{}
	for _, p := range cur {
		n, _ := maildir.ParseName(filepath.Base(p))
		kw, _ := maildir.ReadKeywords(filepath.Dir(filepath.Dir(p)))
		flagsByContent[hashFile(t, p)] = keywordNames(n.Flags, kw)
	}
	folderKw, err := maildir.ReadKeywordsFile(m.path("All", maildir.KeywordsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names(t, m.path("All", "cur")) {
		vn, _ := maildir.ParseName(n)
		if f, shown := flagsByContent[hashFile(t, m.path("All", "cur", n))], keywordNames(vn.Flags, folderKw); f != shown {
			t.Fatalf("%s shows flags %q, the backend has %q", n, shown, f)
		}
	}
}

// keywordNames spells out flags with each keyword letter replaced by its
// name in kw: "FS Important Work".
func keywordNames(flags string, kw map[byte]string) string {
	var std []byte
	var names []string
	for i := 0; i < len(flags); i++ {
		if l := flags[i]; l >= 'a' && l <= 'z' && kw[l] != "" {
			names = append(names, kw[l])
		} else {
			std = append(std, l)
		}
	}
	sort.Strings(names)
	return strings.Join(append([]string{string(std)}, names...), " ")
}

// TestOutOfWatches: when inotify watches run out, vmfs says so loudly and
// polls the rest; changes there still show.
func TestOutOfWatches(t *testing.T) {
	root := genBackend(t, 100)
	os.Setenv("VMFS_TEST_MAX_WATCHES", "4")
	m := mount(t, root)
	os.Unsetenv("VMFS_TEST_MAX_WATCHES")
	eventually(t, 5*time.Second, func() string {
		if !strings.Contains(m.stderr.String(), "out of inotify watches") {
			return "no loud log line about the watch limit"
		}
		return ""
	})
	// Deliver into every mailbox: the watched and the polled ones.
	before := len(names(t, m.path("Unread", "new")))
	n := 0
	deliveredTo := map[string]bool{}
	for _, b := range backend(t, root) {
		dir := filepath.Dir(filepath.Dir(b.Path))
		if b.Mailbox == "Trash" || b.Mailbox == "Junk" {
			continue
		}
		if deliveredTo[dir] {
			continue
		}
		deliveredTo[dir] = true
		quickDeliver(t, dir, "Subject: polled\n\nx\n")
		n++
	}
	eventually(t, 10*time.Second, func() string {
		if got := len(names(t, m.path("Unread", "new"))); got != before+n {
			return fmt.Sprintf("Unread/new has %d, want %d", got, before+n)
		}
		return ""
	})
}

// TestMailboxDeletedAndRecreated: a mailbox removed from the backend leaves
// every folder; created again with other mail, it is watched again.
func TestMailboxDeletedAndRecreated(t *testing.T) {
	root := emptyBackend(t, ".Work")
	m := mount(t, root)
	work := filepath.Join(root, ".Work")
	for i := 0; i < 5; i++ {
		quickDeliver(t, work, fmt.Sprintf("Subject: w%d\n\nx\n", i))
	}
	eventually(t, 2*time.Second, func() string {
		if n := len(names(t, m.path("Unread", "new"))); n != 5 {
			return fmt.Sprintf("Unread has %d, want 5", n)
		}
		return ""
	})
	os.RemoveAll(work)
	eventually(t, 2*time.Second, func() string {
		if n := len(names(t, m.path("Unread", "new"))); n != 0 {
			return fmt.Sprintf("after removing the mailbox Unread has %d", n)
		}
		return ""
	})
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(work, s), 0o755)
	}
	time.Sleep(100 * time.Millisecond)
	quickDeliver(t, work, "Subject: again\n\nx\n")
	eventually(t, 3*time.Second, func() string {
		if n := len(names(t, m.path("Unread", "new"))); n != 1 {
			return fmt.Sprintf("the recreated mailbox: Unread has %d, want 1", n)
		}
		return ""
	})
	// And it is watched: one more delivery shows at once.
	quickDeliver(t, work, "Subject: more\n\nx\n")
	eventually(t, time.Second, func() string {
		if n := len(names(t, m.path("Unread", "new"))); n != 2 {
			return fmt.Sprintf("Unread has %d, want 2", n)
		}
		return ""
	})
}
