package vsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"vmfs/index"
	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	t     *testing.T
	root  string
	state string
	clk   *clock
	e     *Engine
}

func newFixture(t *testing.T, n int) *fixture {
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "mail"), state: filepath.Join(t.TempDir(), "state"), clk: &clock{t: time.Now()}}
	if n > 0 {
		if _, err := corpus.Generate(f.root, corpus.Options{Messages: n, Mailboxes: 10, Seed: 11, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) open(folders []Folder) *Engine {
	f.t.Helper()
	e, err := Open(f.state, Config{Root: f.root, Folders: folders, Now: f.clk.now})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := e.Sync(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.e = e
	f.t.Cleanup(func() { e.Close() })
	return e
}

func (f *fixture) list(folder string) []Entry {
	f.t.Helper()
	l, err := f.e.List(folder)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// truth computes, from the backend files alone, the backend paths of the
// messages a flag folder must hold.
func truth(t *testing.T, root string, want func(mailbox, flags string) bool) []string {
	tr, _ := maildir.Discover(root)
	var out []string
	for _, mb := range tr.Mailboxes {
		ents, _ := maildir.List(mb.Path)
		for _, e := range ents {
			n, _ := maildir.ParseName(e.Name)
			if want(mb.Name, n.Flags) {
				sub := map[bool]string{true: "new", false: "cur"}[e.New]
				out = append(out, filepath.Join(mb.Path, sub, e.Name))
			}
		}
	}
	sort.Strings(out)
	return out
}

func paths(l []Entry) []string {
	var out []string
	for _, e := range l {
		out = append(out, e.Path)
	}
	sort.Strings(out)
	return out
}

func notTrash(mb string) bool { return mb != "Trash" && mb != "Junk" && mb != "Spam" }

func TestColdSyncDefaultFolders(t *testing.T) {
	f := newFixture(t, 600)
	f.open(DefaultFolders())
	want := truth(t, f.root, func(mb, fl string) bool { return notTrash(mb) && !strings.Contains(fl, "S") })
	got := f.list("Unread")
	if strings.Join(paths(got), "\n") != strings.Join(want, "\n") || len(want) < 50 {
		t.Fatalf("Unread has %d, truth %d", len(got), len(want))
	}
	names := map[string]bool{}
	for i, e := range got {
		if i > 0 && e.UID <= got[i-1].UID {
			t.Fatal("UIDs not ascending")
		}
		base := maildir.BaseOf(e.Name)
		if _, _, ok := parseVirtualBase(base); names[base] || !ok || !strings.HasPrefix(base, timePrefix(filepath.Base(e.Path))) {
			t.Fatalf("bad or duplicate name %q", e.Name)
		}
		names[base] = true
		fi, err := os.Stat(e.Path)
		if err != nil || fi.Size() != e.Size || !fi.ModTime().Equal(e.MTime) {
			t.Fatalf("entry %+v does not describe its backend file", e)
		}
	}
	// UIDs follow received dates.
	for i := 1; i < len(got); i++ {
		if got[i].MTime.Before(got[i-1].MTime) {
			t.Fatalf("UID %d received before UID %d", got[i].UID, got[i-1].UID)
		}
	}
	flagged := truth(t, f.root, func(mb, fl string) bool { return notTrash(mb) && strings.Contains(fl, "F") })
	if g := paths(f.list("Flagged")); strings.Join(g, "\n") != strings.Join(flagged, "\n") {
		t.Errorf("Flagged has %d, truth %d", len(g), len(flagged))
	}
}

func TestLingerExpungeAndDelete(t *testing.T) {
	f := newFixture(t, 300)
	e := f.open(DefaultFolders())
	l := f.list("Unread")
	victim, other := l[0], l[1]
	// Mark the first one seen in the backend, as mutt would.
	n, _ := maildir.ParseName(filepath.Base(victim.Path))
	n.Flags = maildir.SetFlags(n.Flags, "S", "")
	n.HasInfo = true
	newPath := filepath.Join(filepath.Dir(filepath.Dir(victim.Path)), "cur", n.String())
	if err := os.Rename(victim.Path, newPath); err != nil {
		t.Fatal(err)
	}
	mbName := mailboxOf(t, f.root, victim.Path)
	if err := e.MailboxChanged(context.Background(), mbName); err != nil {
		t.Fatal(err)
	}
	after := f.list("Unread")
	found := false
	for _, x := range after {
		if x.UID == victim.UID {
			found = true
			if maildir.BaseOf(x.Name) != maildir.BaseOf(victim.Name) || !strings.HasSuffix(x.Name, "S") || x.Path != newPath {
				t.Errorf("lingering entry %+v", x)
			}
		}
	}
	if !found || len(after) != len(l) {
		t.Fatalf("seen message left at once (%d -> %d)", len(l), len(after))
	}
	// Back to unseen within the linger: listed once, same UID.
	os.Rename(newPath, victim.Path)
	e.MailboxChanged(context.Background(), mbName)
	if again := f.list("Unread"); len(again) != len(l) || again[0].UID != victim.UID {
		t.Fatalf("re-matching message: %d entries, first UID %d", len(again), again[0].UID)
	}
	os.Rename(victim.Path, newPath)
	e.MailboxChanged(context.Background(), mbName)
	f.clk.add(11 * time.Minute)
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	if got := f.list("Unread"); len(got) != len(l)-1 {
		t.Fatalf("linger did not end: %d", len(got))
	}
	// Expunge drops lingering messages at once.
	p2 := other.Path
	n2, _ := maildir.ParseName(filepath.Base(p2))
	n2.Flags, n2.HasInfo = maildir.SetFlags(n2.Flags, "S", ""), true
	os.Rename(p2, filepath.Join(filepath.Dir(filepath.Dir(p2)), "cur", n2.String()))
	e.MailboxChanged(context.Background(), mailboxOf(t, f.root, p2))
	if got := f.list("Unread"); len(got) != len(l)-1 {
		t.Fatal("second message left before expunge")
	}
	var notified []string
	e.cfg.OnChange = func(fs []string) { notified = append(notified, fs...) }
	if err := e.Expunge("Unread"); err != nil {
		t.Fatal(err)
	}
	if got := f.list("Unread"); len(got) != len(l)-2 || len(notified) != 1 {
		t.Fatalf("expunge: %d entries, notified %v", len(got), notified)
	}
	// A backend deletion leaves at once.
	third := f.list("Unread")[0]
	os.Remove(third.Path)
	e.MailboxChanged(context.Background(), mailboxOf(t, f.root, third.Path))
	for _, x := range f.list("Unread") {
		if x.UID == third.UID {
			t.Fatal("deleted message still listed")
		}
	}
}

func mailboxOf(t *testing.T, root, path string) string {
	tr, _ := maildir.Discover(root)
	dir := filepath.Dir(filepath.Dir(path))
	for _, mb := range tr.Mailboxes {
		if mb.Path == dir {
			return mb.Name
		}
	}
	t.Fatalf("no mailbox for %s", path)
	return ""
}

func TestRestartKeepsNamesAndUIDs(t *testing.T) {
	f := newFixture(t, 400)
	e := f.open(DefaultFolders())
	before := f.list("Unread")
	v := e.UIDValidity("Unread")
	e.Close()
	e2 := f.open(DefaultFolders())
	after := f.list("Unread")
	if len(before) != len(after) || e2.UIDValidity("Unread") != v {
		t.Fatalf("restart: %d -> %d entries", len(before), len(after))
	}
	for i := range before {
		if before[i].UID != after[i].UID || before[i].Name != after[i].Name {
			t.Fatalf("entry %d changed: %+v -> %+v", i, before[i], after[i])
		}
	}
	// Rebuilding from nothing gives the same names.
	e2.Close()
	os.RemoveAll(f.state)
	f.open(DefaultFolders())
	rebuilt := f.list("Unread")
	for i := range before {
		if before[i].Name != rebuilt[i].Name {
			t.Fatalf("name not stable across a rebuild: %q -> %q", before[i].Name, rebuilt[i].Name)
		}
	}
}

func TestDamagedStateRebuilt(t *testing.T) {
	f := newFixture(t, 200)
	e := f.open(DefaultFolders())
	want := paths(f.list("Unread"))
	e.Close()
	ents, _ := os.ReadDir(f.state)
	for _, en := range ents {
		os.WriteFile(filepath.Join(f.state, en.Name()), []byte("\x00garbage"), 0o600)
	}
	before := snapshotTree(t, f.root)
	f.open(DefaultFolders())
	if got := paths(f.list("Unread")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after rebuild %d entries, want %d", len(got), len(want))
	}
	if after := snapshotTree(t, f.root); after != before {
		t.Fatal("rebuilding touched the backend")
	}
}

func snapshotTree(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

func TestDefinitionChangeAndNewMailbox(t *testing.T) {
	f := newFixture(t, 300)
	e := f.open([]Folder{{Name: "Lists", Mailboxes: []string{"Lists/*"}, Query: "ALL"}})
	n1 := len(f.list("Lists"))
	if n1 == 0 {
		t.Fatal("no list messages")
	}
	// A new mailbox matching the pattern joins on the next sync.
	dir := filepath.Join(f.root, ".Lists.new-list")
	initMaildir(t, dir)
	os.WriteFile(filepath.Join(dir, "new", "1.x.host"), []byte("Subject: hi\n\nbody\n"), 0o644)
	if err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := f.list("Lists")
	if len(l) != n1+1 {
		t.Fatalf("new mailbox: %d -> %d", n1, len(l))
	}
	names := map[string]uint32{}
	for _, x := range l {
		names[maildir.BaseOf(x.Name)] = x.UID
	}
	e.Close()
	// Narrow the query: the remaining messages keep their names and UIDs.
	f.open([]Folder{{Name: "Lists", Mailboxes: []string{"Lists/*"}, Query: "SEEN"}})
	l2 := f.list("Lists")
	if len(l2) == 0 || len(l2) >= len(l) {
		t.Fatalf("changed definition: %d entries", len(l2))
	}
	for _, x := range l2 {
		if uid, ok := names[maildir.BaseOf(x.Name)]; !ok || uid != x.UID {
			t.Fatalf("%q lost its name or UID", x.Name)
		}
	}
}

func TestWarmSyncSkipsUnchanged(t *testing.T) {
	f := newFixture(t, 300)
	e := f.open(DefaultFolders())
	e.Close()
	// Make every directory look old enough to be trusted, then reopen.
	old := time.Now().Add(-time.Hour)
	filepath.Walk(f.root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	e = f.open(DefaultFolders()) // rescans (mtimes changed), records settled state
	e.Close()
	// Hide a message behind an unchanged directory mtime: a trusted,
	// settled mailbox is not listed again, so it stays unseen by vmfs.
	cur := filepath.Join(f.root, "cur")
	os.WriteFile(filepath.Join(cur, "999.hidden.host:2,"), []byte("Subject: x\n\nx\n"), 0o644)
	os.Chtimes(cur, old, old)
	f.open(DefaultFolders())
	for _, x := range f.list("Unread") {
		if strings.Contains(x.Path, "999.hidden") {
			t.Fatal("warm sync listed an unchanged mailbox")
		}
	}
}

func TestFilesChanged(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	writeMsg(t, filepath.Join(f.root, "cur", "1.a:2,"), "Subject: a\n\nx\n")
	writeMsg(t, filepath.Join(f.root, "cur", "2.b:2,"), "Subject: b\n\nx\n")
	e := f.open(DefaultFolders())
	if len(f.list("Unread")) != 2 {
		t.Fatal("setup")
	}
	// A delivery, a flag rename and a delete, told file by file.
	writeMsg(t, filepath.Join(f.root, "new", "3.c"), "Subject: c\n\nx\n")
	os.Rename(filepath.Join(f.root, "cur", "1.a:2,"), filepath.Join(f.root, "cur", "1.a:2,F"))
	os.Remove(filepath.Join(f.root, "cur", "2.b:2,"))
	err := e.FilesChanged(context.Background(), map[string][]string{f.root: {"new/3.c", "cur/1.a:2,", "cur/1.a:2,F", "cur/2.b:2,", "cur/ignored-missing:2,"}})
	if err != nil {
		t.Fatal(err)
	}
	l := f.list("Unread")
	if len(l) != 2 {
		t.Fatalf("Unread = %+v", l)
	}
	got := paths(l)
	want := truth(t, f.root, func(mb, fl string) bool { return !strings.Contains(fl, "S") })
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Unread %q, truth %q", got, want)
	}
	// An unknown directory falls back to a full sync.
	nb := filepath.Join(f.root, ".New")
	initMaildir(t, nb)
	writeMsg(t, filepath.Join(nb, "new", "4.d"), "Subject: d\n\nx\n")
	if err := e.FilesChanged(context.Background(), map[string][]string{nb: {"new/4.d"}}); err != nil {
		t.Fatal(err)
	}
	if len(f.list("Unread")) != 3 {
		t.Fatal("new mailbox not synced")
	}
}

// agedMessage delivers a message to the backend root's cur/ that was
// received age ago by the fixture's clock.
func (f *fixture) agedMessage(name string, age time.Duration) {
	f.t.Helper()
	initMaildir(f.t, f.root)
	p := filepath.Join(f.root, "cur", name)
	writeMsg(f.t, p, "Subject: a\n\nx\n")
	at := f.clk.now().Add(-age)
	if err := os.Chtimes(p, at, at); err != nil {
		f.t.Fatal(err)
	}
}

func TestTimeMovesFolders(t *testing.T) {
	f := newFixture(t, 0)
	f.agedMessage("1.a:2,S", 3500*time.Second)
	e := f.open([]Folder{
		{Name: "Young", Mailboxes: []string{"*"}, Query: "YOUNGER 3600"},
		{Name: "Old", Mailboxes: []string{"*"}, Query: "OLDER 3600"},
	})
	e.Tick() // the first tick evaluates everything
	if len(f.list("Young")) != 1 || len(f.list("Old")) != 0 {
		t.Fatalf("at 3500 s: Young %d, Old %d", len(f.list("Young")), len(f.list("Old")))
	}
	f.clk.add(200 * time.Second) // the message is now 3700 s old
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	if len(f.list("Old")) != 1 {
		t.Fatal("OLDER did not take the message as time passed")
	}
	f.clk.add(11 * time.Minute) // past the linger
	e.Tick()
	if len(f.list("Young")) != 0 {
		t.Fatal("YOUNGER kept the message after its linger")
	}
}

// A sync that evaluates every message of a time-based folder (its first,
// a cold index) counts as a tick: the next tick looks only at messages
// whose age crossed an interval since (it went through all of them again,
// 33 MB of candidates at 1,000,000 messages), and the time is kept over a
// restart. Messages that cross after it still move.
func TestFullEvaluationIsATick(t *testing.T) {
	f := newFixture(t, 0)
	f.agedMessage("1.a:2,S", 3500*time.Second)
	folders := []Folder{
		{Name: "Young", Mailboxes: []string{"*"}, Query: "YOUNGER 3600"},
		{Name: "Old", Mailboxes: []string{"*"}, Query: "OLDER 3600"},
		{Name: "Seen", Mailboxes: []string{"*"}, Query: "SEEN"},
	}
	synced := f.clk.now()
	e := f.open(folders)
	for _, name := range []string{"Young", "Old"} {
		if fo := e.folders[name]; !fo.lastTick.Equal(synced) || fo.state.Ticked != synced.UnixNano() {
			t.Errorf("%s: last tick %v (kept %d) after the first sync at %v", name, fo.lastTick, fo.state.Ticked, synced)
		}
	}
	if !e.folders["Seen"].lastTick.IsZero() {
		t.Error("a folder without intervals has a last tick")
	}
	e.Close()
	f.clk.add(200 * time.Second) // the message is now 3700 s old
	e = f.open(folders)
	if fo := e.folders["Old"]; !fo.lastTick.Equal(synced) {
		t.Fatalf("after a restart the last tick is %v, want the first sync's %v", fo.lastTick, synced)
	}
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	if len(f.list("Old")) != 1 {
		t.Fatal("OLDER did not take the message that crossed after the first sync")
	}
}

// Time passes while vmfs is stopped: the first tick after the restart
// looks only at messages whose age crossed an interval since the last
// tick before the stop (FolderState.Ticked), and those that crossed while
// it was stopped move. Several restarts in a row, with and without a tick
// that changed something in between.
func TestTimeMovesFoldersWhileStopped(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	folders := []Folder{
		{Name: "Young", Mailboxes: []string{"*"}, Query: "YOUNGER 3600"},
		{Name: "Old", Mailboxes: []string{"*"}, Query: "OLDER 3600"},
	}
	for i, age := range []time.Duration{3500, 3300, 100} {
		p := filepath.Join(f.root, "cur", fmt.Sprintf("%d.m%d:2,S", i, i))
		writeMsg(t, p, "Subject: a\n\nx\n")
		at := f.clk.now().Add(-age * time.Second)
		os.Chtimes(p, at, at)
	}
	e := f.open(folders)
	e.Tick()
	if len(f.list("Young")) != 3 || len(f.list("Old")) != 0 {
		t.Fatalf("at the start: Young %d, Old %d", len(f.list("Young")), len(f.list("Old")))
	}
	for _, step := range []struct {
		wait       time.Duration
		young, old int // after the first tick of the restart, lingering included
	}{
		{200 * time.Second, 3, 1}, // the first one crosses while stopped (it lingers in Young)
		{time.Second, 3, 1},       // nothing crosses
		{400 * time.Second, 3, 2}, // the second one
		{2 * time.Hour, 1, 3},     // the last one; the lingers of the others ended
	} {
		e.Close()
		f.clk.add(step.wait)
		e = f.open(folders)
		if e.folders["Old"].lastTick.IsZero() {
			t.Fatal("the last tick before the stop was not kept")
		}
		if err := e.Tick(); err != nil {
			t.Fatal(err)
		}
		if y, o := len(f.list("Young")), len(f.list("Old")); y != step.young || o != step.old {
			t.Fatalf("after %v stopped: Young %d, Old %d; want %d, %d", step.wait, y, o, step.young, step.old)
		}
	}
	f.clk.add(11 * time.Minute) // past every linger
	e.Tick()
	if y := len(f.list("Young")); y != 0 {
		t.Fatalf("Young keeps %d messages older than its interval", y)
	}
}

func TestDefinitionChangeSurvivesCloseWithoutSync(t *testing.T) {
	f := newFixture(t, 200)
	e := f.open([]Folder{{Name: "X", Mailboxes: []string{"*"}, Query: "SEEN"}})
	seen := len(f.list("X"))
	e.Close()
	// Opened with a new definition and closed again without a sync (as
	// `vmfs ls` does): the next start must still rebuild the folder.
	e2, err := Open(f.state, Config{Root: f.root, Folders: []Folder{{Name: "X", Mailboxes: []string{"*"}, Query: "UNSEEN"}}, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e2.Close()
	f.open([]Folder{{Name: "X", Mailboxes: []string{"*"}, Query: "UNSEEN"}})
	want := truth(t, f.root, func(mb, fl string) bool { return !strings.Contains(fl, "S") })
	if got := paths(f.list("X")); strings.Join(got, ",") != strings.Join(want, ",") || len(got) == seen {
		t.Fatalf("X has %d, truth %d (SEEN had %d)", len(got), len(want), seen)
	}
}

func TestMailboxVanishingDuringScan(t *testing.T) {
	f := newFixture(t, 0)
	initMaildir(t, f.root)
	initMaildir(t, filepath.Join(f.root, ".Gone"))
	writeMsg(t, filepath.Join(f.root, ".Gone", "cur", "1.a:2,"), "Subject: a\n\nx\n")
	writeMsg(t, filepath.Join(f.root, "cur", "2.b:2,"), "Subject: b\n\nx\n")
	e := f.open(DefaultFolders())
	if len(f.list("Unread")) != 2 {
		t.Fatal("setup")
	}
	// The mailbox loses its new/ (half deleted) and is told as changed:
	// it is treated as empty, without an error, and the rest stays.
	os.RemoveAll(filepath.Join(f.root, ".Gone", "new"))
	if err := e.MailboxChanged(context.Background(), "Gone"); err != nil {
		t.Fatalf("a vanishing mailbox made the sync fail: %v", err)
	}
	if l := f.list("Unread"); len(l) != 1 || !strings.HasSuffix(l[0].Path, "2.b:2,") {
		t.Fatalf("Unread = %+v", l)
	}
	// Gone entirely, then a full sync.
	os.RemoveAll(filepath.Join(f.root, ".Gone"))
	if err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.list("Unread")) != 1 {
		t.Fatal("full sync after the mailbox vanished")
	}
}

func TestInterruptedBigBatchReevaluates(t *testing.T) {
	f := newFixture(t, 300)
	e := f.open(DefaultFolders())
	want := paths(f.list("Unread"))
	e.Close()
	// Simulate a crash in the middle of a big batch: the members were not
	// written, the marker was.
	st, err := index.Open(f.state)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Load()
	b := st.NewBatch()
	for _, m := range snap.Members["Unread"] {
		b.DeleteMember("Unread", m)
	}
	b.Commit()
	st.SetIncomplete(true)
	st.Close()
	f.open(DefaultFolders())
	if got := paths(f.list("Unread")); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after an interrupted batch Unread has %d, want %d", len(got), len(want))
	}
	if f.e.store.Incomplete() {
		t.Error("the marker was not cleared after the re-evaluation")
	}
}

// pendingStat is how many messages e has not stat()ed yet.
func pendingStat(e *Engine) int {
	e.lockOpAny()
	defer e.op.Unlock()
	n := 0
	for _, ms := range e.msgs {
		for m := range ms.All() {
			if unstatted(m) {
				n++
			}
		}
	}
	return n
}

// A big cold sync without header queries stat()s only the messages that
// flag folders take; folders with size or date conditions fill in once
// Fill has stat()ed the rest, also after a restart in between.
func TestDeferredStat(t *testing.T) {
	f := newFixture(t, 1500)
	folders := []Folder{
		{Name: "Unread", Mailboxes: []string{"*"}, Query: "UNSEEN"},
		{Name: "Big", Mailboxes: []string{"*"}, Query: "LARGER 1500"},
		{Name: "Young", Mailboxes: []string{"*"}, Query: "YOUNGER 864000"},
	}
	e := f.open(folders)
	pending := func() int { return pendingStat(e) }
	unread := truth(t, f.root, func(mb, fl string) bool { return !strings.Contains(fl, "S") })
	if p := pending(); p == 0 || p > 1500-len(unread) {
		t.Fatalf("%d messages not stat()ed, want some and at most %d", p, 1500-len(unread))
	}
	checkEntries := func(folder string, want []string) {
		t.Helper()
		got := f.list(folder)
		if strings.Join(paths(got), "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s has %d, truth %d", folder, len(got), len(want))
		}
		for _, en := range got {
			fi, err := os.Stat(en.Path)
			if err != nil || fi.Size() != en.Size || !fi.ModTime().Equal(en.MTime) {
				t.Fatalf("%s: entry %+v does not describe its backend file", folder, en)
			}
		}
	}
	checkEntries("Unread", unread)
	var big, young []string
	isBig := map[string]bool{}
	now := f.clk.now()
	for _, p := range truth(t, f.root, func(string, string) bool { return true }) {
		fi, _ := os.Stat(p)
		if fi.Size() > 1500 {
			big = append(big, p)
			isBig[p] = true
		}
		if now.Sub(fi.ModTime()) < 864000*time.Second {
			young = append(young, p)
		}
	}
	if len(big) == 0 || len(young) == 0 || len(young) == 1500 {
		t.Fatalf("corpus: %d big, %d young of 1500; the test needs both kinds", len(big), len(young))
	}
	if got := f.list("Big"); len(got) == len(big) {
		t.Fatal("Big is complete before Fill: nothing was deferred")
	} else {
		for _, en := range got {
			if !isBig[en.Path] {
				t.Fatalf("Big took %s (%d bytes)", en.Path, en.Size)
			}
		}
	}

	// Seen big messages not yet stat()ed become unseen (reported per file,
	// then per mailbox): each joins Unread, and Big at once, with its real
	// size and date.
	var seen []string
	e.lockOpAny()
	for name, ms := range e.msgs {
		for m := range ms.All() {
			if p := e.pathOf(name, m); unstatted(m) && !m.New && isBig[p] && len(seen) < 2 {
				seen = append(seen, p)
			}
		}
	}
	e.op.Unlock()
	if len(seen) < 2 {
		t.Fatal("the corpus has too few big seen messages")
	}
	renamed := map[string]string{}
	for i, old := range seen {
		j := strings.LastIndex(old, ":2,")
		nw := old[:j] + ":2," + strings.ReplaceAll(old[j+3:], "S", "")
		if err := os.Rename(old, nw); err != nil {
			t.Fatal(err)
		}
		renamed[old] = nw
		mbDir := filepath.Dir(filepath.Dir(nw))
		var err error
		if i == 0 {
			err = e.FilesChanged(context.Background(), map[string][]string{mbDir: {"cur/" + filepath.Base(old), "cur/" + filepath.Base(nw)}})
		} else {
			err = e.MailboxChanged(context.Background(), mailboxOf(t, f.root, nw))
		}
		if err != nil {
			t.Fatal(err)
		}
		unread = truth(t, f.root, func(mb, fl string) bool { return !strings.Contains(fl, "S") })
		checkEntries("Unread", unread)
		inBig := false
		for _, en := range f.list("Big") {
			inBig = inBig || en.Path == nw
		}
		if !inBig {
			t.Fatalf("%s joined Unread but not Big", nw)
		}
	}
	for _, l := range [][]string{big, young} {
		for i := range l {
			if nw, ok := renamed[l[i]]; ok {
				l[i] = nw
			}
		}
		sort.Strings(l)
	}

	// Every folder against the backend, entries' sizes and dates too.
	checkAll := func() {
		t.Helper()
		checkEntries("Big", big)
		checkEntries("Young", young)
		checkEntries("Unread", unread)
	}

	// A restart before Fill keeps what is pending; Fill completes it.
	e.Close()
	e = f.open(folders)
	if pending() == 0 {
		t.Fatal("the restart lost which messages were not stat()ed")
	}
	if err := e.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := pending(); p != 0 {
		t.Fatalf("%d messages still not stat()ed after Fill", p)
	}
	checkAll()

	// What Fill read is written to the store only for the messages that
	// joined a folder; the rest is in the snapshot written at stop.
	e.Close()
	st, err := index.Open(f.state)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := st.Load() // key by key, not the snapshot
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	unsaved := 0
	for _, ms := range snap.Messages {
		for m := range ms.All() {
			if m.Size < 0 {
				unsaved++
			}
		}
	}
	for folder, mems := range snap.Members {
		for _, mem := range mems {
			if m := snap.Messages[mem.Mailbox].Get(mem.Base); m == nil || m.Size < 0 {
				t.Fatalf("%s's member %s/%s has no size in the store: %+v", folder, mem.Mailbox, mem.Base, m)
			}
		}
	}
	if unsaved == 0 {
		t.Error("Fill wrote every message it stat()ed to the store")
	}
	// A clean stop: the next start has every size from the snapshot.
	e = f.open(folders)
	if p := pending(); p != 0 {
		t.Fatalf("after a clean stop %d messages are not stat()ed", p)
	}
	checkAll()
	// A crash (no snapshot written): the folders are the same, Fill reads
	// again what the store lacks.
	e.Close()
	if err := os.Remove(e.store.SnapshotFile()); err != nil {
		t.Fatal(err)
	}
	e = f.open(folders)
	if p := pending(); p != unsaved {
		t.Fatalf("after a crash %d messages are not stat()ed, want %d", p, unsaved)
	}
	checkAll()
	if err := e.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkAll()
	e.Close()
	e = f.open(folders)
	if p := pending(); p != 0 {
		t.Fatalf("Fill after a crash: %d messages are not stat()ed after a clean stop", p)
	}
}

// Fill that makes no message join a folder commits nothing, and what it
// read still reaches the snapshot written at stop (the store's generation
// did not move, so a snapshot of it was "current").
func TestFillWithoutJoinsIsSaved(t *testing.T) {
	f := newFixture(t, 1500)
	folders := []Folder{
		{Name: "Unread", Mailboxes: []string{"*"}, Query: "UNSEEN"},
		{Name: "Ancient", Mailboxes: []string{"*"}, Query: "OLDER 3153600000"}, // 100 years
	}
	pending := pendingStat
	// Mailboxes unchanged for an hour: a restart lists none of them
	// again and commits nothing.
	tr, _ := maildir.Discover(f.root)
	hour := time.Now().Add(-time.Hour)
	for _, mb := range tr.Mailboxes {
		for _, sub := range []string{"cur", "new"} {
			if err := os.Chtimes(filepath.Join(mb.Path, sub), hour, hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := f.open(folders)
	before := pending(e)
	if before == 0 {
		t.Fatal("nothing was deferred")
	}
	e.Close() // before Fill: the snapshot has them unstatted
	e = f.open(folders)
	if p := pending(e); p != before {
		t.Fatalf("restart: %d pending, want %d", p, before)
	}
	if err := e.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.list("Ancient")); n != 0 {
		t.Fatalf("Ancient has %d members", n)
	}
	e.Close()
	e = f.open(folders)
	if p := pending(e); p != 0 {
		t.Fatalf("after Fill and a clean stop, %d messages are not stat()ed", p)
	}
}

// TestAddAndRemoveFolder: a folder added while running (mkdir of a
// search) lists its members at once, also with a header query the index
// did not hold; removed, it leaves the index and no backend file changes.
func TestAddAndRemoveFolder(t *testing.T) {
	f := newFixture(t, 300)
	e := f.open(DefaultFolders())
	before := truth(t, f.root, func(string, string) bool { return true })
	// A header query: the default folders index no From. The truth is
	// the same folder configured from the start, on a fresh index.
	d := Folder{Name: "FROM smith", Mailboxes: []string{"*", "-Trash", "-Junk", "-Spam"}, Query: "FROM smith"}
	fresh, err := Open(filepath.Join(t.TempDir(), "fresh"), Config{Root: f.root, Folders: []Folder{d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, _ := fresh.List(d.Name)
	want := len(l)
	fresh.Close()
	// A search cut short (its context ends: an interrupted mkdir) leaves
	// no folder behind, and adding it again works.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.AddFolder(ctx, Folder{Name: "BODY x", Mailboxes: []string{"*"}, Query: "BODY x"}); err == nil {
		t.Fatal("a search whose context had ended was added")
	}
	if slices.Contains(e.Folders(), "BODY x") {
		t.Fatal("a search cut short left its folder")
	}
	if err := e.AddFolder(context.Background(), Folder{Name: "BODY x", Mailboxes: []string{"*"}, Query: "BODY x"}); err != nil {
		t.Fatalf("adding it again: %v", err)
	}
	if err := e.RemoveFolder("BODY x"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFolder(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := len(f.list("FROM smith")); got != want || want == 0 {
		t.Fatalf("added folder lists %d, truth %d", got, want)
	}
	if err := e.AddFolder(context.Background(), d); !errors.Is(err, maildir.ErrExist) {
		t.Fatalf("adding it twice: %v", err)
	}
	if err := e.AddFolder(context.Background(), Folder{Name: "bad", Query: "FROM"}); err == nil {
		t.Fatal("a bad query was added")
	}
	if err := e.RemoveFolder("FROM smith"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.List("FROM smith"); err == nil {
		t.Fatal("removed folder still lists")
	}
	for _, name := range e.Folders() {
		if name == "FROM smith" {
			t.Fatal("removed folder still in Folders")
		}
	}
	if after := truth(t, f.root, func(string, string) bool { return true }); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("backend changed")
	}
	e.Close()
	// Gone from the index: reopened with it again, it starts afresh.
	e = f.open(append(DefaultFolders(), d))
	if got := len(f.list("FROM smith")); got != want {
		t.Fatalf("re-added after reopen lists %d, want %d", got, want)
	}
	e.Close()
}

// TestRedefineFolder: an edited definition rebuilds the membership while
// running; messages that still match keep their names and UIDs.
func TestRedefineFolder(t *testing.T) {
	f := newFixture(t, 300)
	mb := []string{"*", "-Trash", "-Junk", "-Spam"}
	e := f.open([]Folder{{Name: "X", Mailboxes: mb, Query: "UNSEEN"}})
	before := map[string]Entry{}
	for _, x := range f.list("X") {
		before[x.Path] = x
	}
	if err := e.RedefineFolder(context.Background(), Folder{Name: "X", Mailboxes: mb, Query: "UNSEEN FLAGGED"}); err != nil {
		t.Fatal(err)
	}
	want := truth(t, f.root, func(mb, fl string) bool {
		return notTrash(mb) && !strings.Contains(fl, "S") && strings.Contains(fl, "F")
	})
	after := f.list("X")
	if strings.Join(paths(after), "\n") != strings.Join(want, "\n") || len(want) == 0 || len(want) == len(before) {
		t.Fatalf("redefined X has %d, truth %d (had %d)", len(after), len(want), len(before))
	}
	for _, x := range after {
		if b, ok := before[x.Path]; !ok || b.UID != x.UID || b.Name != x.Name {
			t.Fatalf("%s: UID %d name %s, had %+v", x.Path, x.UID, x.Name, b)
		}
	}
	if err := e.RedefineFolder(context.Background(), Folder{Name: "nope", Query: "ALL"}); err == nil {
		t.Fatal("redefining an unknown folder succeeded")
	}
	if err := e.RedefineFolder(context.Background(), Folder{Name: "X", Query: "FROM"}); err == nil {
		t.Fatal("a bad query was accepted")
	}
	e.Close()
}

// A restart after the backend changed while vmfs was stopped: the folders
// are built from the saved members and messages, except the changed ones,
// which must show as they are now (renamed, gone, new).
func TestRestartAfterChangesWhileStopped(t *testing.T) {
	f := newFixture(t, 400)
	e := f.open(DefaultFolders())
	unread := f.list("Unread")
	e.Close()
	if len(unread) < 40 {
		t.Fatalf("only %d unread", len(unread))
	}
	rename := func(p, flags string) {
		n, err := maildir.ParseName(filepath.Base(p))
		if err != nil {
			t.Fatal(err)
		}
		n.Flags, n.HasInfo = maildir.NormFlags(flags), true
		dir := filepath.Join(filepath.Dir(filepath.Dir(p)), "cur")
		if err := os.Rename(p, filepath.Join(dir, n.String())); err != nil {
			t.Fatal(err)
		}
	}
	for i, x := range unread[:40] {
		switch i % 4 {
		case 0: // read elsewhere: leaves Unread
			rename(x.Path, "S")
		case 1: // flagged, still unread: renamed, stays
			rename(x.Path, "F")
		case 2: // deleted
			if err := os.Remove(x.Path); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 5 {
		p := filepath.Join(f.root, "new", fmt.Sprintf("%d.restart%d.host", time.Now().Unix(), i))
		if err := os.WriteFile(p, []byte("Subject: new\n\nbody\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Mark a read message unread: it joins.
	read := truth(t, f.root, func(mb, flags string) bool { return notTrash(mb) && strings.Contains(flags, "S") })
	rename(read[0], "")

	e = f.open(DefaultFolders())
	check := func(when string, exact bool) {
		t.Helper()
		for _, tc := range []struct {
			folder string
			want   func(mb, flags string) bool
		}{
			{"Unread", func(mb, flags string) bool { return notTrash(mb) && !strings.Contains(flags, "S") }},
			{"Flagged", func(mb, flags string) bool { return notTrash(mb) && strings.Contains(flags, "F") }},
		} {
			got := f.list(tc.folder)
			g, w := paths(got), truth(t, f.root, tc.want)
			if exact && !slices.Equal(g, w) {
				t.Errorf("%s %s: %d entries, want %d", tc.folder, when, len(g), len(w))
			}
			for _, p := range w {
				if _, ok := slices.BinarySearch(g, p); !ok {
					t.Errorf("%s %s: %s not listed", tc.folder, when, p)
				}
			}
			for _, x := range got {
				if _, err := os.Stat(x.Path); err != nil {
					t.Errorf("%s %s: listed %q: %v", tc.folder, when, x.Name, err)
				}
				ent, err := f.e.Lookup(tc.folder, x.Name, x.New)
				if err != nil || ent.Path != x.Path || ent.UID != x.UID {
					t.Errorf("%s %s: Lookup(%q) = %+v, %v; listed %+v", tc.folder, when, x.Name, ent, err, x)
				}
				n, _ := maildir.ParseName(x.Name)
				b, _ := maildir.ParseName(filepath.Base(x.Path))
				if n.Flags != b.Flags {
					t.Errorf("%s %s: %q shows flags %q, the file has %q", tc.folder, when, x.Name, n.Flags, b.Flags)
				}
			}
		}
	}
	check("after the restart", false) // those that stopped matching linger
	f.clk.add(time.Hour)
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	check("after their linger", true)
	// Those that stayed keep their UIDs and names.
	after := map[uint32]Entry{}
	for _, x := range f.list("Unread") {
		after[x.UID] = x
	}
	for _, x := range unread[40:] {
		if a, ok := after[x.UID]; !ok || a.Name != x.Name || a.Path != x.Path {
			t.Errorf("UID %d: %+v before, %+v after", x.UID, x, a)
		}
	}
}

// The first tick after a restart evaluates every message of a time-based
// folder; when nothing crossed its interval, its listing is not changed:
// a new generation makes every client list it again, and its header was
// written to the index, which set off a compaction at every start.
func TestFirstTickAfterRestartChangesNothing(t *testing.T) {
	f := newFixture(t, 2500)
	e := f.open(DefaultFolders())
	if err := e.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	before := f.list("Recent")
	e.Close()
	e = f.open(DefaultFolders())
	gens := map[string]uint64{}
	for _, name := range e.Folders() {
		gens[name] = e.Gen(name)
	}
	if err := e.Tick(); err != nil {
		t.Fatal(err)
	}
	for name, gen := range gens {
		if e.Gen(name) != gen {
			t.Errorf("the first tick changed %s's generation", name)
		}
	}
	if after := f.list("Recent"); len(after) != len(before) || len(before) == 0 {
		t.Errorf("Recent: %d entries before the restart, %d after", len(before), len(after))
	}
}

// The entries built all at once (a cold index, a restart) carry the names
// shownName gives one by one, in every case: keyword letters, flags not in
// order, no info part, extra info fields.
func TestBulkNamesAreShownNames(t *testing.T) {
	f := newFixture(t, 300)
	for i, name := range []string{"1.k.host:2,Sa", "2.k.host:2,FS", "3.k.host:2,SF", "4.k.host", "5.k.host:2,S,X=1", "6.k.host:2,ab"} {
		writeMsg(t, filepath.Join(f.root, "cur", name), fmt.Sprintf("Subject: %d\n\nx\n", i))
	}
	os.WriteFile(filepath.Join(f.root, "dovecot-keywords"), []byte("0 $Junk\n1 work\n"), 0o644)
	folders := []Folder{{Name: "All", Mailboxes: []string{"*"}, Query: "ALL"}}
	check := func(when string) {
		t.Helper()
		e := f.e
		e.lockOpAny()
		defer e.op.Unlock()
		fo := e.folders["All"]
		n := 0
		fo.t.ascend(func(v *vent) bool {
			mem := fo.members.Get(v.mb.name, maildir.BaseOf(v.file))
			m := e.msgs[v.mb.name].Get(maildir.BaseOf(v.file))
			if want := e.shownName(fo, mem, m, virtualKey(mem.Mailbox, mem.Base)); v.name != want || v.vbase() != maildir.BaseOf(want) {
				t.Errorf("%s: %q listed as %q, shownName gives %q", when, v.file, v.name, want)
			}
			n++
			return true
		})
		if n < 300 {
			t.Errorf("%s: %d entries", when, n)
		}
	}
	e := f.open(folders)
	check("cold")
	e.Close()
	f.open(folders)
	check("after a restart")
}
