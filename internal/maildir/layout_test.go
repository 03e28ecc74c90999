package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func mkMaildir(t testing.TB, dir string) {
	t.Helper()
	for _, s := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUTF7(t *testing.T) {
	for _, tc := range []struct{ enc, dec string }{
		{"Re&AOc-us", "Reçus"},
		{"&-", "&"},
		{"Entw&APw-rfe", "Entwürfe"},
		{"&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", "Отправленные"},
		{"plain", "plain"},
	} {
		got, err := DecodeUTF7(tc.enc)
		if err != nil || got != tc.dec {
			t.Errorf("DecodeUTF7(%q) = %q, %v", tc.enc, got, err)
		}
		if enc := EncodeUTF7(tc.dec); enc != tc.enc {
			t.Errorf("EncodeUTF7(%q) = %q", tc.dec, enc)
		}
	}
	for _, bad := range []string{"&AOc", "&A-", "&AGE-"} {
		if _, err := DecodeUTF7(bad); err == nil {
			t.Errorf("DecodeUTF7(%q) accepted", bad)
		}
	}
}

func TestDiscoverMixed(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)                                   // INBOX
	mkMaildir(t, filepath.Join(root, ".Sent"))           // Maildir++
	mkMaildir(t, filepath.Join(root, ".Lists.Go"))       // Maildir++ nested
	mkMaildir(t, filepath.Join(root, ".Re&AOc-us"))      // modified UTF-7
	mkMaildir(t, filepath.Join(root, "Work"))            // nested layout
	mkMaildir(t, filepath.Join(root, "Work", "Project")) // nested child
	mkMaildir(t, filepath.Join(root, "Archive", "2024")) // parent without cur/
	os.MkdirAll(filepath.Join(root, ".notmuch", "xapian"), 0o755)
	os.MkdirAll(filepath.Join(root, "Work", ".hidden", "cur"), 0o755)
	os.Symlink(t.TempDir(), filepath.Join(root, "Link"))
	tr, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range tr.Mailboxes {
		names = append(names, m.Name)
	}
	want := []string{"Archive/2024", "INBOX", "Lists/Go", "Reçus", "Sent", "Work", "Work/Project"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("mailboxes = %q, want %q", names, want)
	}
	if tr.Mailboxes[1].Path != root {
		t.Errorf("INBOX path %q", tr.Mailboxes[1].Path)
	}
	wantDirs := map[string]bool{root: true, filepath.Join(root, "Work"): true, filepath.Join(root, "Archive"): true}
	for _, d := range tr.Dirs {
		delete(wantDirs, d)
	}
	if len(wantDirs) != 0 {
		t.Errorf("Dirs %q miss %v", tr.Dirs, wantDirs)
	}
}

func TestDiscoverNestedRootNotMaildir(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, filepath.Join(root, "INBOX"))
	mkMaildir(t, filepath.Join(root, "inbox2"))
	tr, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Mailboxes) != 2 || tr.Mailboxes[0].Name != "INBOX" {
		t.Errorf("got %+v", tr.Mailboxes)
	}
}

func TestDiscoverCollision(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, filepath.Join(root, ".A"))
	mkMaildir(t, filepath.Join(root, "A"))
	tr, err := Discover(root)
	if err == nil || len(tr.Mailboxes) != 1 {
		t.Errorf("collision: %+v, %v", tr.Mailboxes, err)
	}
}

func TestListNeverTmp(t *testing.T) {
	dir := t.TempDir()
	mkMaildir(t, dir)
	for _, p := range []string{"cur/1.a:2,S", "new/2.b", "tmp/3.c", "cur/.hidden", "cur/bad:1,x"} {
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, "cur", "subdir"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(dir, "cur", "4.link:2,"))
	before := snapshot(t, dir)
	ents, err := List(dir)
	if err == nil {
		t.Error("bad name not reported")
	}
	got := map[Entry]bool{}
	for _, e := range ents {
		got[e] = true
	}
	want := map[Entry]bool{{Name: "1.a:2,S"}: true, {New: true, Name: "2.b"}: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %+v", ents)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("List modified the Maildir: %v -> %v", before, after)
	}
	// A vanished mailbox: the engine takes ErrNotExist for "gone".
	for _, list := range []func(string) ([]Entry, error){List, listShared} {
		if _, err := list(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("listing a directory without cur/ and new/: %v, want ErrNotExist", err)
		}
	}
}

func snapshot(t *testing.T, dir string) map[string]int64 {
	m := map[string]int64{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			m[p] = fi.ModTime().UnixNano()
		}
		return nil
	})
	return m
}

func TestReadKeywords(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, KeywordsFile), []byte("0 $Label1\n1 Work\nbad line\n30 x\n"), 0o644)
	m, err := ReadKeywords(dir)
	if err != nil || m['a'] != "$Label1" || m['b'] != "Work" || len(m) != 2 {
		t.Errorf("ReadKeywords = %v, %v", m, err)
	}
	m, err = ReadKeywords(t.TempDir())
	if err != nil || len(m) != 0 {
		t.Errorf("missing file: %v %v", m, err)
	}
}

func FuzzDecodeUTF7(f *testing.F) {
	for _, s := range []string{"Re&AOc-us", "&-", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", "&AOc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := DecodeUTF7(s)
		if err != nil {
			return
		}
		if again, err := DecodeUTF7(EncodeUTF7(dec)); err != nil || again != dec {
			t.Fatalf("%q -> %q -> %q -> %q, %v", s, dec, EncodeUTF7(dec), again, err)
		}
	})
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		p, n string
		ok   bool
	}{
		{"*", "INBOX", true},
		{"*", "Lists/Go", true},
		{"%", "Lists/Go", false},
		{"%", "Lists", true},
		{"Lists/*", "Lists/Go", true},
		{"Lists/*", "Lists/Go/Nuts", true},
		{"Lists/%", "Lists/Go/Nuts", false},
		{"Lists/%", "Lists/Go", true},
		{"Lists/*", "Lists", false},
		{"inbox", "INBOX", true},
		{"INBOX/*", "inbox/sub", true},
		{"Trash", "trash", false},
		{"T*h", "Trash", true},
		{"%/%", "a/b", true},
		{"%/%", "a/b/c", false},
		{"Inboxes", "Inboxes", true},
		{"inbox*", "INBOX", true},
		{"inbo%", "INBOX", true},
		{"Inbox/%", "INBOX/Sent", true},
		{"i*", "INBOX", true},
		{"inbox*", "INBOX/sub", true},
		{"inbox/SUB", "INBOX/sub", false}, // only the INBOX part ignores case
		{"inboxes", "Inboxes", false},
		{"lists/*", "Lists/Go", false},
		{"", "", true},
	} {
		if got := MatchPattern(tc.p, tc.n); got != tc.ok {
			t.Errorf("MatchPattern(%q, %q) = %v", tc.p, tc.n, got)
		}
	}
}

func TestDeliverAndRename(t *testing.T) {
	dir := t.TempDir()
	if err := Init(filepath.Join(dir, "box"), nil); err != nil {
		t.Fatal(err)
	}
	box := filepath.Join(dir, "box")
	rel, err := Deliver(box, strings.NewReader("Subject: x\n\nbody\n"), "SF", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rel, "cur/") || !strings.HasSuffix(rel, ",S=17:2,FS") {
		t.Errorf("delivered as %q", rel)
	}
	if ents, _ := os.ReadDir(filepath.Join(box, "tmp")); len(ents) != 0 {
		t.Error("tmp/ not empty after delivery")
	}
	rel2, _ := Deliver(box, strings.NewReader("x"), "", false)
	if !strings.HasPrefix(rel2, "new/") || strings.Contains(rel2, ":2,") {
		t.Errorf("new delivery %q", rel2)
	}
	// Rename never replaces.
	a, b := filepath.Join(box, rel), filepath.Join(box, rel2)
	if err := Rename(a, b); !errors.Is(err, ErrExist) {
		t.Errorf("rename over an existing file: %v", err)
	}
	base := BaseOf(filepath.Base(a))
	moved := filepath.Join(box, "cur", base+":2,S")
	if err := Rename(a, moved); err != nil {
		t.Fatal(err)
	}
	// A chosen base name that exists: ErrExist, nothing written.
	if _, err := DeliverAs(box, base, strings.NewReader("other"), "S", true, time.Time{}, nil); !errors.Is(err, ErrExist) {
		t.Errorf("DeliverAs onto an existing name: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(box, "tmp")); len(ents) != 0 {
		t.Error("tmp/ not empty after a refused delivery")
	}
}

func TestAddKeyword(t *testing.T) {
	p := filepath.Join(t.TempDir(), KeywordsFile)
	os.WriteFile(p, []byte("0 Work\n2 Later\n"), 0o600)
	for _, tc := range []struct {
		name string
		want byte
	}{
		{"work", 'a'}, // IMAP keywords compare case-insensitively
		{"Urgent", 'b'}, {"Later", 'c'}, {"Next", 'd'},
	} {
		l, kw, err := AddKeyword(p, tc.name, nil)
		if err != nil || l != tc.want || !strings.EqualFold(kw[l], tc.name) {
			t.Errorf("AddKeyword(%q) = %c, %v, %v; want %c", tc.name, l, kw, err, tc.want)
		}
	}
	kw, err := ReadKeywordsFile(p)
	if err != nil || len(kw) != 4 || kw['b'] != "Urgent" || kw['d'] != "Next" {
		t.Fatalf("file now maps %v, %v", kw, err)
	}
	if _, err := os.Stat(p + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock file left: %v", err)
	}
	if _, _, err := AddKeyword(p, "two words", nil); err == nil {
		t.Fatal("a keyword with a space was added")
	}
}

// listShared is ListWith keeping the names end to end in one buffer, as
// vsync keeps a first listing's in shared blocks.
func listShared(dir string) ([]Entry, error) {
	buf := make([]byte, 0, 1<<20)
	return ListWith(dir, func(b []byte) string {
		if len(b) == 0 || len(buf)+len(b) > cap(buf) {
			return string(b)
		}
		start := len(buf)
		buf = append(buf, b...)
		return unsafe.String(&buf[start], len(b))
	})
}

// ListWith lists what List lists, over several getdents buffers (4,000
// names), and the names it hands out to be kept stay intact after the
// listing, collections and another listing.
func TestListWithIsList(t *testing.T) {
	dir := t.TempDir()
	mkMaildir(t, dir)
	for i := range 4000 {
		sub, info := "cur", fmt.Sprintf(":2,%s", []string{"", "S", "FS", "RS"}[i%4])
		if i%5 == 0 {
			sub, info = "new", ""
		}
		name := fmt.Sprintf("%d.M%dP%d.host,S=%d%s", 1700000000+i, i*7, i%300, 1000+i, info)
		if err := os.WriteFile(filepath.Join(dir, sub, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "cur", "bad:1,x"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "cur", "subdir"), 0o755)
	plain, errPlain := List(dir)
	packed, errPacked := listShared(dir)
	if errPlain == nil || errPacked == nil || errPlain.Error() != errPacked.Error() {
		t.Errorf("errors: List %v, ListWith %v", errPlain, errPacked)
	}
	runtime.GC()
	List(dir) // reuses freed memory, if a name were a view of it
	runtime.GC()
	if len(plain) != 4000 || !reflect.DeepEqual(plain, packed) {
		t.Fatalf("List has %d entries, ListWith %d, or they differ", len(plain), len(packed))
	}
	for _, e := range packed {
		if _, err := os.Stat(filepath.Join(dir, map[bool]string{true: "new", false: "cur"}[e.New], e.Name)); err != nil {
			t.Fatalf("listed %+v: %v", e, err)
		}
	}
}

// BenchmarkList lists a mailbox of 20,000 messages (page cache warm), with
// a name allocated for each and with names in shared blocks (a cold
// index's): the time is getdents(2)'s; they differ in allocations.
func BenchmarkList(b *testing.B) {
	dir := b.TempDir()
	mkMaildir(b, dir)
	for i := range 20000 {
		name := fmt.Sprintf("%d.M%dP%d.vmfsgen,S=%d:2,S", 1700000000+i, i*7, i%300, 1000+i)
		if err := os.WriteFile(filepath.Join(dir, "cur", name), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		list func(string) ([]Entry, error)
	}{
		{"List", List},
		{"ListWith", listShared},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ents, err := bc.list(dir); err != nil || len(ents) != 20000 {
					b.Fatal(len(ents), err)
				}
			}
		})
	}
}
