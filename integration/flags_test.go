package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"

	"vmfs/internal/maildir"
)

const allFolderConfig = `
[folder.All]
mailboxes = ["*"]
query = "ALL"
`

// oneMessage mounts a backend of one message in new/ with the folder All
// over it, and returns the backend, the mount and the message's name.
func oneMessage(t *testing.T) (string, *mounted, string) {
	t.Helper()
	root := emptyBackend(t)
	quickDeliver(t, root, "Subject: one\n\nbody\n")
	cfg := configFile(t, allFolderConfig)
	m := mount(t, root, "--config", cfg)
	news := names(t, m.path("All", "new"))
	if len(news) != 1 {
		t.Fatalf("new/ = %q", news)
	}
	return root, m, news[0]
}

// backendFlags returns the flags of the backend file whose base name is
// base, failing unless there is exactly one.
func backendFlags(t *testing.T, root, base string) (flags string, inNew bool) {
	t.Helper()
	found := backendFiles(t, root, base)
	if len(found) != 1 {
		t.Fatalf("%d backend files of base %s: %+v", len(found), base, found)
	}
	return found[0].Flags, found[0].New
}

// backendFiles returns the backend files of a base name. It lists new/ and
// then cur/ of each mailbox: a message moved between them meanwhile is
// seen twice or not at all, so a caller racing a client polls.
func backendFiles(t *testing.T, root, base string) []backendMsg {
	t.Helper()
	var found []backendMsg
	for _, b := range backend(t, root) {
		if maildir.BaseOf(b.Name) == base {
			found = append(found, b)
		}
	}
	return found
}

// TestSetThenClearFlags: mark read then unread, flag then unflag, trash
// then undelete, in one mount session, through rename(2) and mv; every
// step reaches the backend file, and the name the client chose is the
// name that exists afterwards.
func TestSetThenClearFlags(t *testing.T) {
	root, m, newName := oneMessage(t)
	vbase := maildir.BaseOf(newName)
	var backendBase string
	for _, b := range backend(t, root) {
		backendBase = maildir.BaseOf(b.Name)
	}
	cur := func(info string) string { return m.path("All", "cur", vbase+info) }
	// new/ → cur/, as mutt does when it opens the folder.
	if err := os.Rename(m.path("All", "new", newName), cur(":2,")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		info, want string
		mv         bool
	}{
		{":2,S", "S", false}, {":2,", "", false}, // read, unread
		{":2,FS", "FS", false}, {":2,S", "S", false}, // flag, unflag
		{":2,ST", "ST", true}, {":2,S", "S", true}, // trash, undelete (mv)
		{":2,", "", true}, {":2,S", "S", false},
	}
	prev := ":2,"
	for i, st := range steps {
		if st.mv {
			if out, err := exec.Command("mv", cur(prev), cur(st.info)).CombinedOutput(); err != nil {
				t.Fatalf("step %d: mv %s %s: %v %s", i, prev, st.info, err, out)
			}
		} else if err := os.Rename(cur(prev), cur(st.info)); err != nil {
			t.Fatalf("step %d: rename %s -> %s: %v", i, prev, st.info, err)
		}
		if flags, inNew := backendFlags(t, root, backendBase); flags != st.want || inNew {
			t.Fatalf("step %d (%s -> %s): backend flags %q new=%v, want %q in cur/", i, prev, st.info, flags, inNew, st.want)
		}
		if got := names(t, m.path("All", "cur")); len(got) != 1 || got[0] != vbase+st.info {
			t.Fatalf("step %d: cur/ = %q, want %q", i, got, vbase+st.info)
		}
		if _, err := os.Stat(cur(st.info)); err != nil {
			t.Fatalf("step %d: the name the client chose: %v", i, err)
		}
		prev = st.info
	}
	// A name the message no longer has is gone, as on a disk (Dovecot
	// stat()s it to tell whether a flag change is still to be made):
	// renaming or deleting through it answers ENOENT and changes nothing.
	stale := cur(":2,")
	if _, err := os.Stat(stale); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat of the previous name: %v, want ENOENT", err)
	}
	if err := os.Rename(stale, cur(":2,F")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("rename from the previous name: %v, want ENOENT", err)
	}
	if err := os.Remove(stale); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unlink of the previous name: %v, want ENOENT", err)
	}
	if flags, _ := backendFlags(t, root, backendBase); flags != "S" {
		t.Fatalf("backend flags %q after refused operations, want S", flags)
	}
}

// TestOpenFileAfterDelete: an open message file keeps working after its
// message is deleted through the mount: fstat answers with st_nlink 0, as
// on a disk (Dovecot fstat()s files it keeps open and aborts on ENOENT),
// and reads go on; st_ino is the same through stat and fstat.
func TestOpenFileAfterDelete(t *testing.T) {
	root, m, newName := oneMessage(t)
	p := m.path("All", "new", newName)
	// st_ino is the message's, through stat and fstat.
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ffi, _ := f.Stat()
	if fi.Sys().(*syscall.Stat_t).Ino != ffi.Sys().(*syscall.Stat_t).Ino {
		t.Fatal("st_ino differs between stat and fstat")
	}
	// An open file keeps working after its message is deleted: fstat
	// answers with st_nlink 0, reads go on.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if n := len(backend(t, root)); n != 0 {
		t.Fatalf("backend has %d after delete", n)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 {
		t.Fatalf("fstat after delete: nlink %d, %v; want 0, nil", st.Nlink, err)
	}
	buf := make([]byte, 64)
	if n, err := f.ReadAt(buf, 0); n == 0 || !strings.Contains(string(buf[:n]), "Subject") {
		t.Fatalf("read after delete: %d %v", n, err)
	}
}

// TestDovecotSetThenClear: STORE +FLAGS then -FLAGS through Dovecot serving
// the mount, for \Seen, \Flagged and \Deleted, each reaching the backend;
// then two IMAP sessions change the same message's flags one after the
// other, and each change lands.
func TestDovecotSetThenClear(t *testing.T) {
	root := emptyBackend(t)
	quickDeliver(t, root, "Subject: one\n\nbody\n")
	cfg := configFile(t, allFolderConfig)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	var base string
	for _, b := range backend(t, root) {
		base = maildir.BaseOf(b.Name)
	}
	dir := t.TempDir()
	d := startDovecot(t, m.mnt, dir, false)
	if _, err := d.c.Select("All", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(c *dovecot, op imap.StoreFlagsOp, f imap.Flag) {
		t.Helper()
		if err := c.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: []imap.Flag{f}, Silent: true}, nil).Close(); err != nil {
			t.Fatalf("STORE %v %s: %v", op, f, err)
		}
		c.c.Noop().Wait()
	}
	for _, st := range []struct {
		op   imap.StoreFlagsOp
		flag imap.Flag
		want string
	}{
		{imap.StoreFlagsAdd, imap.FlagSeen, "S"}, {imap.StoreFlagsDel, imap.FlagSeen, ""},
		{imap.StoreFlagsAdd, imap.FlagFlagged, "F"}, {imap.StoreFlagsDel, imap.FlagFlagged, ""},
		{imap.StoreFlagsAdd, imap.FlagDeleted, "T"}, {imap.StoreFlagsDel, imap.FlagDeleted, ""},
		{imap.StoreFlagsAdd, imap.FlagSeen, "S"}, {imap.StoreFlagsDel, imap.FlagSeen, ""},
	} {
		store(d, st.op, st.flag)
		if flags, _ := backendFlags(t, root, base); flags != st.want {
			t.Fatalf("STORE %v %s: backend flags %q, want %q", st.op, st.flag, flags, st.want)
		}
	}
	// A second session on the same folder; the two take turns.
	d2 := startDovecot(t, m.mnt, dir, false)
	if _, err := d2.c.Select("All", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store(d, imap.StoreFlagsAdd, imap.FlagSeen)
	store(d2, imap.StoreFlagsAdd, imap.FlagFlagged)
	store(d, imap.StoreFlagsDel, imap.FlagSeen)
	store(d2, imap.StoreFlagsAdd, imap.FlagAnswered)
	store(d, imap.StoreFlagsDel, imap.FlagFlagged)
	if flags, _ := backendFlags(t, root, base); flags != "R" {
		t.Fatalf("after two sessions' changes: backend flags %q, want R", flags)
	}
}

// TestKeywordsRoundTrip: two backend mailboxes give the same keywords
// different letters; Dovecot serving the mount (its control files in the
// mount, the README's recipe) shows keyword names, never unknown-N; a
// keyword stored through the mount lands in the backend file under that
// mailbox's own letter, added to its dovecot-keywords, and SEARCH KEYWORD
// finds it; clearing it works too.
func TestKeywordsRoundTrip(t *testing.T) {
	root := emptyBackend(t, ".A", ".B")
	os.WriteFile(filepath.Join(root, ".A", "dovecot-keywords"), []byte("0 Important\n1 Work\n"), 0o600)
	os.WriteFile(filepath.Join(root, ".B", "dovecot-keywords"), []byte("0 Work\n1 Important\n"), 0o600)
	write := func(box, name, subject string) {
		os.WriteFile(filepath.Join(root, box, "cur", name), []byte("Subject: "+subject+"\n\nx\n"), 0o600)
	}
	write(".A", "1.a.host:2,a", "A important")
	write(".B", "2.b.host:2,b", "B important")
	write(".B", "3.b.host:2,a", "B work")
	cfg := configFile(t, allFolderConfig+`
[folder.Important]
mailboxes = ["*"]
query = "KEYWORD Important"
`)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	if n := len(names(t, m.path("Important", "cur"))); n != 2 {
		t.Fatalf("Important lists %d, want the 2 messages carrying it under either letter", n)
	}
	d := startDovecot(t, m.mnt, t.TempDir(), true)
	if _, err := d.c.Select("All", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fetchFlags := func() map[string][]imap.Flag {
		t.Helper()
		msgs, err := d.c.Fetch(seqAll(3), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
		if err != nil || len(msgs) != 3 {
			t.Fatalf("FETCH: %d, %v", len(msgs), err)
		}
		out := map[string][]imap.Flag{}
		for _, msg := range msgs {
			out[msg.Envelope.Subject] = msg.Flags
		}
		return out
	}
	has := func(fl []imap.Flag, k string) bool {
		for _, f := range fl {
			if strings.EqualFold(string(f), k) {
				return true
			}
		}
		return false
	}
	for subject, fl := range fetchFlags() {
		for _, f := range fl {
			if strings.HasPrefix(string(f), "unknown-") {
				t.Errorf("%s: Dovecot shows %s", subject, f)
			}
		}
		want := "Important"
		if subject == "B work" {
			want = "Work"
		}
		if !has(fl, want) {
			t.Errorf("%s: flags %v, want %s", subject, fl, want)
		}
	}
	// Find the sequence number of "B work" and store a new keyword on it.
	msgs, _ := d.c.Fetch(seqAll(3), &imap.FetchOptions{Envelope: true}).Collect()
	var seq uint32
	for _, msg := range msgs {
		if msg.Envelope.Subject == "B work" {
			seq = msg.SeqNum
		}
	}
	store := func(op imap.StoreFlagsOp, f imap.Flag) {
		t.Helper()
		if err := d.c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: op, Flags: []imap.Flag{f}, Silent: true}, nil).Close(); err != nil {
			t.Fatalf("STORE %v %s: %v", op, f, err)
		}
		d.c.Noop().Wait()
	}
	store(imap.StoreFlagsAdd, "Urgent")
	kw, err := maildir.ReadKeywords(filepath.Join(root, ".B"))
	if err != nil {
		t.Fatal(err)
	}
	l := maildir.LetterOf(kw, "Urgent")
	if l == 0 {
		t.Fatalf("Urgent was not added to B's dovecot-keywords: %v (backend %+v)", kw, backend(t, root))
	}
	flags, _ := backendFlags(t, root, "3.b.host")
	if flags != maildir.NormFlags("a"+string(l)) {
		t.Fatalf("B's file has flags %q, want Work (a) and Urgent (%c)", flags, l)
	}
	found, err := d.c.Search(&imap.SearchCriteria{Flag: []imap.Flag{"Urgent"}}, nil).Wait()
	if err != nil || len(found.AllSeqNums()) != 1 {
		t.Fatalf("SEARCH KEYWORD Urgent: %v, %v", found, err)
	}
	store(imap.StoreFlagsAdd, "Important")
	if flags, _ := backendFlags(t, root, "3.b.host"); flags != maildir.NormFlags("ab"+string(l)) {
		t.Fatalf("after +Important B's file has %q, want a, b and %c", flags, l)
	}
	store(imap.StoreFlagsDel, "Urgent")
	store(imap.StoreFlagsDel, "Work")
	if flags, _ := backendFlags(t, root, "3.b.host"); flags != "b" {
		t.Fatalf("after -Urgent -Work B's file has %q, want b (Important)", flags)
	}
	if !has(fetchFlags()["B work"], "Important") {
		t.Fatal("Dovecot does not show Important after the round trip")
	}
}

// TestDovecotOpenFileAfterExpunge: one Dovecot session reads a message
// (and keeps its file open), another expunges it, the first reads on:
// fstat() on its open file answers as on a disk (st_nlink 0), and Dovecot
// logs no error or panic.
func TestDovecotOpenFileAfterExpunge(t *testing.T) {
	root := emptyBackend(t)
	big := "Subject: big\n\n" + strings.Repeat("line of text\n", 20000)
	quickDeliver(t, root, big)
	quickDeliver(t, root, "Subject: small\n\nx\n")
	cfg := configFile(t, allFolderConfig)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	dir := t.TempDir()
	d1 := startDovecot(t, m.mnt, dir, false)
	d2 := startDovecot(t, m.mnt, dir, false)
	for _, d := range []*dovecot{d1, d2} {
		if _, err := d.c.Select("All", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	part := func(d *dovecot, off uint32) {
		t.Helper()
		_, err := d.c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Offset: int64(off), Size: 100}}}}).Collect()
		if err != nil {
			t.Fatalf("FETCH <%d.100>: %v", off, err)
		}
	}
	part(d1, 0)
	if err := d2.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := d2.c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	part(d1, 100000) // read on from the file d1 keeps open
	d1.c.Noop().Wait()
	part(d1, 0)
	// d1's and d2's close check their logs for errors and panics.
}
