package index

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	msg := &Message{Name: "1.a,U=5:2,Sa", Size: 42, MTime: 1e18, NeedsHash: 7,
		Meta: &Meta{Sent: 1700000000, SentOffset: -18000, HasSent: true, ID: "x@y", References: []string{"a@b", "c@d"},
			Headers: map[string][]string{"from": {"Jürgen <j@x>"}, "subject": {"", "two"}}}}
	b := s.NewBatch()
	b.PutMessage("Lists/Go", msg)
	b.PutMessage("INBOX", &Message{Name: "2.b", New: true})
	b.PutMessage("Lists/Go", &Message{Name: "3.c:2,"}) // mailboxes interleaved
	b.PutMailbox("Lists/Go", &MailboxState{CurMTime: 5, NewMTime: 6, Settled: true, NeedsHash: 7, Count: 1})
	b.PutFolder("Unread", &FolderState{DefHash: 99, UIDValidity: 1234, NextUID: 3, Ticked: -5})
	b.PutMember("Unread", &Member{UID: 2, Mailbox: "INBOX", Base: "2.b"})
	b.PutMember("Unread", &Member{UID: 1, Mailbox: "Lists/Go", Base: "1.a,U=5", Linger: 77, Written: true})
	b.PutMember("Un", &Member{UID: 1, Mailbox: "x", Base: "y"}) // a folder whose name prefixes another
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Messages["Lists/Go"].Get("1.a,U=5"); !reflect.DeepEqual(got, msg) {
		t.Errorf("message = %+v", got)
	}
	if snap.Messages["Lists/Go"].Len() != 2 || snap.Messages["INBOX"].Get("2.b") == nil {
		t.Errorf("messages of interleaved mailboxes: %d in Lists/Go, INBOX's 2.b %v",
			snap.Messages["Lists/Go"].Len(), snap.Messages["INBOX"].Get("2.b"))
	}
	if got := snap.Members["Unread"]; len(got) != 2 || got[0].UID != 1 || got[1].UID != 2 || got[0].Linger != 77 || !got[0].Written {
		t.Errorf("members = %+v", got)
	}
	if len(snap.Members["Un"]) != 1 || *snap.Folders["Unread"] != (FolderState{DefHash: 99, UIDValidity: 1234, NextUID: 3, Ticked: -5}) || !snap.Mailboxes["Lists/Go"].Settled {
		t.Errorf("snapshot = %+v", snap)
	}
	b = s.NewBatch()
	b.DeleteMember("Unread", got0(snap))
	b.DeleteMessage("INBOX", "2.b")
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	snap, _ = s.Load()
	if len(snap.Members["Unread"]) != 1 || snap.Messages["INBOX"] != nil {
		t.Errorf("after delete: %+v", snap)
	}
}

func got0(s *Snapshot) *Member { return s.Members["Unread"][0] }

func TestSecondOpenerLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open: %v", err)
	}
}

func TestBigBatchSplits(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.streamMin = 1 << 30 // in transactions, as into a store that holds something
	bigBatch(s).Commit()
	checkBigBatch(t, s)
	if s.Incomplete() {
		t.Error("a completed split commit left its marker")
	}
}

// bigBatch is a batch too big for one transaction, with sets, single
// records and deletes of both kinds among them.
func bigBatch(s *Store) *Batch {
	b := s.NewBatch()
	for i := 0; i < 200000; i++ {
		b.PutMessage("INBOX", &Message{Name: strings.Repeat("x", 40) + string(rune('a'+i%26)) + itoa(i) + ":2,"})
	}
	// A set of 150,000 (split across parts too), between two single
	// changes of its mailbox.
	b.PutMessage("Lists", &Message{Name: "first:2,", Size: 1})
	set := NewMessageSet(150000)
	for i := 0; i < 150000; i++ {
		set.Put(&Message{Name: "set" + itoa(i) + strings.Repeat("y", 40) + ":2,S", Size: int64(i)})
	}
	set.Put(&Message{Name: "first:2,S", Size: 2})
	b.PutMessages("Lists", set)
	b.DeleteMessage("Lists", "set7"+strings.Repeat("y", 40))
	mems := NewMemberSet(100000)
	for i := 0; i < 100000; i++ {
		mems.Put(&Member{UID: uint32(i + 1), Mailbox: "Lists", Base: "set" + itoa(i) + strings.Repeat("y", 40)})
	}
	b.PutMembers("All", mems)
	b.DeleteMember("All", &Member{UID: 5})
	b.PutMember("A", &Member{UID: 3, Mailbox: "INBOX", Base: "b"}) // a folder whose name prefixes another
	b.PutMailbox("Lists", &MailboxState{CurMTime: 5, Settled: true})
	b.PutFolder("All", &FolderState{DefHash: 9, NextUID: 100001})
	return b
}

func checkBigBatch(t *testing.T, s *Store) {
	t.Helper()
	snap, err := s.Load()
	if err != nil || snap.Messages["INBOX"].Len() != 200000 {
		t.Fatalf("loaded %d, %v", snap.Messages["INBOX"].Len(), err)
	}
	lists := snap.Messages["Lists"]
	if lists.Len() != 150000 || lists.Get("first").Size != 2 || lists.Get("set7"+strings.Repeat("y", 40)) != nil ||
		lists.Get("set149999"+strings.Repeat("y", 40)).Size != 149999 {
		t.Fatalf("the set's mailbox read back with %d messages", lists.Len())
	}
	if all := snap.Members["All"]; len(all) != 99999 || all[3].UID != 4 || all[4].UID != 6 || all[99998].Base != "set99999"+strings.Repeat("y", 40) {
		t.Fatalf("the member set read back with %d members", len(all))
	}
	if a := snap.Members["A"]; len(a) != 1 || a[0].UID != 3 || a[0].Base != "b" {
		t.Errorf("folder A: %+v", a)
	}
	if !snap.Mailboxes["Lists"].Settled || snap.Folders["All"].NextUID != 100001 {
		t.Errorf("mailbox state %+v, folder %+v", snap.Mailboxes["Lists"], snap.Folders["All"])
	}
}

// The first big batch into an empty store is streamed (bulk.go): it reads
// back as the same batch written in transactions does, the store takes
// ordinary commits after it, and a restart finds its version and
// generation.
func TestColdBatchStreamed(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := bigBatch(s).Commit(); err != nil {
		t.Fatal(err)
	}
	if s.streamed != 1 {
		t.Fatalf("streamed %d batches, want 1", s.streamed)
	}
	checkBigBatch(t, s)
	if _, err := os.Stat(bulkMarker(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker after the stream: %v", err)
	}
	b := s.NewBatch()
	b.PutMessage("INBOX", &Message{Name: "after:2,F", Size: 7})
	b.DeleteMessage("Lists", "first")
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	gen := s.gen
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.gen != gen || s.empty {
		t.Errorf("reopened: generation %d (want %d), empty %v", s.gen, gen, s.empty)
	}
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if m := snap.Messages["INBOX"].Get("after"); m == nil || m.Size != 7 || snap.Messages["Lists"].Get("first") != nil ||
		snap.Messages["INBOX"].Len() != 200001 {
		t.Errorf("a commit after the stream: %+v, INBOX %d", m, snap.Messages["INBOX"].Len())
	}
	// Streaming is for an empty store only: another big batch goes
	// through transactions.
	if err := bigBatch(s).Commit(); err != nil {
		t.Fatal(err)
	}
	if s.streamed != 0 {
		t.Errorf("a big batch into a store that holds records was streamed")
	}
}

// A store whose stream was cut short (its marker still there) is damaged:
// a mount rebuilds it, and the rebuilt store has no marker.
func TestColdBatchInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := writeMarker(bulkMarker(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open with the marker: %v", err)
	}
	s, err = Rebuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(bulkMarker(dir)); !errors.Is(err, os.ErrNotExist) || !s.empty {
		t.Errorf("after Rebuild: marker %v, empty %v", err, s.empty)
	}
}

func itoa(i int) string {
	var b []byte
	for ; i > 0 || len(b) == 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestDamaged(t *testing.T) {
	for name, damage := range map[string]func(dir string){
		"garbage files": func(dir string) {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				os.WriteFile(filepath.Join(dir, e.Name()), []byte("garbage garbage garbage"), 0o600)
			}
		},
		"truncated": func(dir string) {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				os.Truncate(filepath.Join(dir, e.Name()), 3)
			}
		},
		"no MANIFEST": func(dir string) { os.Remove(filepath.Join(dir, "MANIFEST")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			b := s.NewBatch()
			b.PutFolder("Unread", &FolderState{UIDValidity: 5})
			b.Commit()
			s.Close()
			damage(dir)
			s, err = Open(dir)
			if err == nil {
				_, err = s.Load()
				if err == nil {
					snap, _ := s.Load()
					if snap.Folders["Unread"] == nil {
						err = ErrDamaged // lost data silently: treat as detected below
					}
				}
				s.Close()
			}
			if err != nil && !errors.Is(err, ErrDamaged) {
				t.Fatalf("damage not reported as ErrDamaged: %v", err)
			}
			s, err = Rebuild(dir)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			defer s.Close()
			if snap, err := s.Load(); err != nil || len(snap.Folders) != 0 {
				t.Errorf("rebuilt store: %+v %v", snap, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Message{Name: "x", Meta: &Meta{Headers: map[string][]string{"a": {"b"}}, References: []string{"r"}}}).encode())
	f.Add((&Member{Mailbox: "m", Base: "b", Linger: 3}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.decode(b) == nil {
			if got := m.encode(); string(got) != string(b) && (m.Meta == nil || len(m.Meta.Headers) < 2) {
				var m2 Message
				if err := m2.decode(got); err != nil || !reflect.DeepEqual(m, m2) {
					t.Fatalf("re-encode differs")
				}
			}
		}
		var mb Member
		_ = mb.decode(b)
		var st MailboxState
		_ = st.decode(b)
	})
}

func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.PutMessage("INBOX", &Message{Name: "1.a:2,S", Meta: &Meta{Headers: map[string][]string{"from": {"x"}}}})
	b.PutFolder("Unread", &FolderState{UIDValidity: 9, NextUID: 2})
	b.PutMember("Unread", &Member{UID: 1, Mailbox: "INBOX", Base: "1.a"})
	b.PutMailbox("INBOX", &MailboxState{Count: 1, Settled: true})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	want, _ := s.Load()
	// A message whose record in memory is ahead of the store's (Fill's
	// sizes) stays marked so in the snapshot.
	want.Messages["INBOX"].Put(&Message{Name: "2.b:2,", Size: 5, MTime: 6, Unsaved: true})
	if err := s.SaveSnapshot(want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = Open(dir)
	fast, err := s.readSnapshot()
	if err != nil {
		t.Fatalf("current snapshot not used: %v", err)
	}
	if mm := fast.MemberMessages["Unread"]; len(mm) != 1 || mm[0] != fast.Messages["INBOX"].Get("1.a") {
		t.Fatalf("member's message not found while reading: %v", mm)
	}
	if mk := fast.MemberKeys["Unread"]; len(mk) != KeyLen || string(mk) != string(zeroKey[:]) {
		t.Fatalf("member keys = %q, want one unknown", mk)
	}
	for name, ms := range fast.Members {
		set := fast.MemberSets[name]
		if set.Len() != len(ms) {
			t.Fatalf("folder %s: %d members, %d in its set", name, len(ms), set.Len())
		}
		for _, m := range ms {
			if set.Get(m.Mailbox, m.Base) != m {
				t.Fatalf("folder %s: member %+v not in its set", name, m)
			}
		}
	}
	fast.MemberMessages, fast.MemberKeys, fast.MemberSets = nil, nil, nil
	want.MemberMessages = nil
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("snapshot %+v != store %+v", fast, want)
	}
	// A snapshot cut short anywhere is not used.
	whole, err := os.ReadFile(s.SnapshotFile())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(whole); n++ {
		os.WriteFile(s.SnapshotFile(), whole[:n], 0o600)
		if snap, err := s.readSnapshot(); err == nil {
			t.Fatalf("a snapshot cut at %d of %d bytes was read: %+v", n, len(whole), snap)
		}
	}
	os.WriteFile(s.SnapshotFile(), whole, 0o600)
	// Any commit makes the snapshot stale; OpenLoaded then reads the keys.
	b = s.NewBatch()
	b.DeleteMessage("INBOX", "1.a")
	b.Commit()
	if _, err := s.readSnapshot(); err == nil {
		t.Fatal("a stale snapshot was accepted")
	}
	s.Close()
	s, snap, err := OpenLoaded(dir)
	if err != nil || snap.Messages["INBOX"].Len() != 0 || len(snap.Members["Unread"]) != 1 {
		t.Fatalf("OpenLoaded after a commit: %+v %v", snap, err)
	}
	s.Close()
	// A garbage snapshot is ignored.
	os.WriteFile(s.SnapshotFile(), []byte("vmfs-snapshot garbage"), 0o600)
	s, snap, err = OpenLoaded(dir)
	if err != nil || len(snap.Members["Unread"]) != 1 {
		t.Fatalf("OpenLoaded with a garbage snapshot: %+v %v", snap, err)
	}
	s.Close()
	// A current one is used.
	s, _ = Open(dir)
	s.SaveSnapshot(snap)
	s.Close()
	s, snap, err = OpenLoaded(dir)
	if err != nil || snap.MemberMessages == nil {
		t.Fatalf("OpenLoaded did not use a current snapshot: %+v %v", snap, err)
	}
	// Saved again with no commit since it was read, it is left as it is;
	// after one, it is written.
	before, _ := os.ReadFile(s.SnapshotFile())
	if err := s.SaveSnapshot(&Snapshot{}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(s.SnapshotFile()); !bytes.Equal(before, after) {
		t.Error("a current snapshot was written again")
	}
	b = s.NewBatch()
	b.PutMailbox("INBOX", &MailboxState{Count: 2})
	b.Commit()
	if err := s.SaveSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if _, err := s.readSnapshot(); err != nil {
		t.Errorf("the snapshot after a commit: %v", err)
	}
	s.Close()
}

// TestSnapshotStringsShared: a snapshot read back keeps each string once
// (copied into an arena, the file's bytes dropped): a message's base name
// is a part of its name, a member's mailbox and base name are its
// message's; a name without info part, a client's name, a member's cached
// virtual key and headers come back too.
func TestSnapshotStringsShared(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := &Message{Name: "1.a.host:2,S", Size: 3, MTime: 4,
		Meta: &Meta{ID: "<id@x>", Headers: map[string][]string{"from": {"Alice"}}}}
	plain := &Message{Name: "2.b.host", Size: 1} // no info part
	vk := [26]byte([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
	var lists []*Message // several mailboxes, one empty: members refer across them
	for i := range 50 {
		lists = append(lists, &Message{Name: fmt.Sprintf("%d.l.host:2,", i)})
	}
	want := &Snapshot{
		Messages: map[string]*MessageSet{"INBOX": setOf(m, plain), "Lists": setOf(lists...), "Empty": setOf(),
			"Sent": setOf(&Message{Name: "9.s.host:2,S"})},
		Mailboxes: map[string]*MailboxState{"INBOX": {CurMTime: 1}},
		Folders:   map[string]*FolderState{"Unread": {DefHash: 1, UIDValidity: 2, NextUID: 3}},
		Members: map[string][]*Member{"Unread": {{UID: 1, Mailbox: "INBOX", Base: "1.a.host"},
			{UID: 2, Mailbox: "INBOX", Base: "2.b.host", Name: "client"},
			{UID: 3, Mailbox: "Gone", Base: "3.c.host", Linger: 77, Written: true}, // no message
			{UID: 4, Mailbox: "Lists", Base: "17.l.host"},
			{UID: 5, Mailbox: "Sent", Base: "9.s.host"}}},
		MemberKeys: map[string][]byte{"Unread": append(vk[:], make([]byte, 4*KeyLen)...)},
	}
	if err := s.SaveSnapshot(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.readSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	gm := got.Messages["INBOX"].Get("1.a.host")
	if gm == nil || gm.Name != m.Name || gm.Meta == nil || gm.Meta.Headers["from"][0] != "Alice" {
		t.Fatalf("message = %+v", gm)
	}
	if g := got.Messages["INBOX"].Get("2.b.host"); g == nil || g.Base() != "2.b.host" || g.Name != "2.b.host" {
		t.Errorf("message without info = %+v", g)
	}
	mems := got.Members["Unread"]
	if len(mems) != 5 || mems[1].Name != "client" || string(got.MemberKeys["Unread"]) != string(want.MemberKeys["Unread"]) {
		t.Fatalf("members = %+v", mems)
	}
	for i, mem := range mems {
		w := want.Members["Unread"][i]
		if mem.Mailbox != w.Mailbox || mem.Base != w.Base || mem.Linger != w.Linger || mem.Written != w.Written || mem.UID != w.UID {
			t.Errorf("member %d = %+v, want %+v", i, mem, w)
		}
		if msg := got.MemberMessages["Unread"][i]; msg != got.Messages[w.Mailbox].Get(w.Base) {
			t.Errorf("member %d's message = %+v", i, msg)
		}
	}
	if unsafe.StringData(mems[0].Base) != unsafe.StringData(gm.Name) || unsafe.StringData(mems[0].Mailbox) != unsafe.StringData(mems[1].Mailbox) {
		t.Error("a member's mailbox and base name are not its message's")
	}
}

// TestRecordSizes: a Message is kept for every backend message (a million
// of them is a target, SPEC §10); it must stay in the 64-byte size class.
func TestRecordSizes(t *testing.T) {
	if n := unsafe.Sizeof(Message{}); n > 64 {
		t.Errorf("Message is %d bytes, want ≤ 64", n)
	}
	if n := unsafe.Sizeof(Member{}); n > 96 {
		t.Errorf("Member is %d bytes, want ≤ 96", n)
	}
}

func setOf(ms ...*Message) *MessageSet {
	s := &MessageSet{}
	for _, m := range ms {
		s.Put(m)
	}
	return s
}

// A folder header written before FolderState.Ticked existed decodes with
// Ticked 0; one with bytes after it is refused.
func TestFolderStateWithoutTicked(t *testing.T) {
	old := enc(nil).uvarint(99).uvarint(1234).uvarint(3)
	var st FolderState
	if err := st.decode(old); err != nil || st != (FolderState{DefHash: 99, UIDValidity: 1234, NextUID: 3}) {
		t.Fatalf("old header: %+v, %v", st, err)
	}
	if err := st.decode(append(old.varint(7), 1)); err == nil {
		t.Fatalf("a header with trailing bytes decoded: %+v", st)
	}
}

// readSnapshot reads the store's snapshot if it is current.
func (s *Store) readSnapshot() (*Snapshot, error) {
	g, err := s.generation()
	if err != nil {
		return nil, err
	}
	snap, sg, err := readSnapshotFile(s.SnapshotFile())
	if err != nil {
		return nil, err
	}
	if sg != g {
		return nil, errors.New("snapshot is stale")
	}
	return snap, nil
}

// TestSnapshotManyChunks: mailboxes and folders bigger than a decoder's
// chunk (their records are decoded in parallel) read back whole, each
// member with its own message, key and place in its folder's set; a file
// cut short in the middle of a chunk is refused.
func TestSnapshotManyChunks(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := &Snapshot{Messages: map[string]*MessageSet{}, Mailboxes: map[string]*MailboxState{},
		Folders: map[string]*FolderState{}, Members: map[string][]*Member{}, MemberKeys: map[string][]byte{}}
	type key struct{ mailbox, base string }
	var all []key
	for _, mb := range []struct {
		name string
		n    int
	}{{"INBOX", 2*chunkRecords + 17}, {"One", 1}, {"Lists/go", chunkRecords}} {
		var ms []*Message
		for i := range mb.n {
			m := &Message{Name: fmt.Sprintf("%d.%s%d.host:2,S", i, strings.ReplaceAll(mb.name, "/", "_"), i), Size: int64(i), MTime: int64(i) * 7}
			if i%3 == 0 {
				m.Meta = &Meta{ID: fmt.Sprintf("<%d@x>", i), Headers: map[string][]string{"from": {mb.name}}}
			}
			m.Unsaved = i%5 == 1
			ms = append(ms, m)
			all = append(all, key{mb.name, m.Base()})
		}
		want.Messages[mb.name] = setOf(ms...)
	}
	want.Messages["INBOX"].Get(all[9].base).Size = -1 // not stat()ed yet
	for f, n := range map[string]int{"Unread": 3*chunkRecords + 5, "Flagged": 3} {
		want.Folders[f] = &FolderState{UIDValidity: 1, NextUID: uint32(n + 1)}
		keys := make([]byte, n*KeyLen)
		for i := range n {
			k := all[(i*7919)%len(all)]
			m := &Member{UID: uint32(i + 1), Mailbox: k.mailbox, Base: k.base, Linger: int64(i % 2)}
			if i%100 == 99 {
				m.Mailbox, m.Base = "Gone", fmt.Sprintf("%d.gone", i) // no message
			}
			want.Members[f] = append(want.Members[f], m)
			copy(keys[i*KeyLen:], fmt.Sprintf("%026d", i))
		}
		want.MemberKeys[f] = keys
	}
	if err := s.SaveSnapshot(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.readSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Unstatted {
		t.Error("a message without a size, and Unstatted is not set")
	}
	for mb, ws := range want.Messages {
		if got.Messages[mb].Len() != ws.Len() {
			t.Fatalf("mailbox %s: %d messages, want %d", mb, got.Messages[mb].Len(), ws.Len())
		}
		for w := range ws.All() {
			if g := got.Messages[mb].Get(w.Base()); g == nil || !reflect.DeepEqual(*g, *w) {
				t.Fatalf("mailbox %s: message %+v, want %+v", mb, g, w)
			}
		}
	}
	for f, wms := range want.Members {
		gms, set := got.Members[f], got.MemberSets[f]
		if len(gms) != len(wms) || set.Len() != len(wms) || string(got.MemberKeys[f]) != string(want.MemberKeys[f]) {
			t.Fatalf("folder %s: %d members, %d in the set, keys equal: %v; want %d", f, len(gms), set.Len(),
				string(got.MemberKeys[f]) == string(want.MemberKeys[f]), len(wms))
		}
		for i, w := range wms {
			g := gms[i]
			if *g != *w || set.Get(w.Mailbox, w.Base) != g {
				t.Fatalf("folder %s: member %d = %+v, want %+v (in the set: %v)", f, i, g, w, set.Get(w.Mailbox, w.Base) == g)
			}
			if msg := got.MemberMessages[f][i]; msg != got.Messages[w.Mailbox].Get(w.Base) {
				t.Fatalf("folder %s: member %d's message = %+v", f, i, msg)
			}
		}
	}
	whole, err := os.ReadFile(s.SnapshotFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{len(whole) / 4, len(whole) / 2, len(whole) - 100} {
		os.WriteFile(s.SnapshotFile(), whole[:at], 0o600)
		if _, err := s.readSnapshot(); err == nil {
			t.Errorf("a snapshot cut at %d of %d bytes was read", at, len(whole))
		}
	}
}

// FuzzSnapshot: a snapshot file of any content is read or refused, never
// a panic or a hang (its decoders run in parallel); what is read is
// consistent: every member is in its folder's set.
func FuzzSnapshot(f *testing.F) {
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	snap := &Snapshot{
		Messages:  map[string]*MessageSet{"INBOX": setOf(&Message{Name: "1.a:2,S", Size: 3}, &Message{Name: "2.b", Size: -1})},
		Mailboxes: map[string]*MailboxState{"INBOX": {CurMTime: 1}},
		Folders:   map[string]*FolderState{"Unread": {UIDValidity: 2, NextUID: 3}},
		Members: map[string][]*Member{"Unread": {{UID: 1, Mailbox: "INBOX", Base: "1.a"},
			{UID: 2, Mailbox: "Gone", Base: "3.c", Name: "client"}}},
	}
	if err := s.SaveSnapshot(snap); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(s.SnapshotFile())
	s.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "snapshot")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, _, err := readSnapshotFile(p)
		if err != nil {
			return
		}
		for name, ms := range got.Members {
			set := got.MemberSets[name]
			for _, m := range ms {
				if set != nil && set.Get(m.Mailbox, m.Base) == nil {
					t.Fatalf("folder %s: member %+v not in its set", name, m)
				}
			}
		}
	})
}

// BenchmarkReadSnapshot reads a snapshot of VMFS_BENCH_N messages
// (default 100,000) in 40 mailboxes, a third of them members of one
// folder and a tenth of two others: the bulk of a warm start.
func BenchmarkReadSnapshot(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("VMFS_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	snap := &Snapshot{Messages: map[string]*MessageSet{}, Mailboxes: map[string]*MailboxState{},
		Folders: map[string]*FolderState{}, Members: map[string][]*Member{}}
	byBox := map[string][]*Message{}
	var all []*Member
	for i := range n {
		mb := fmt.Sprintf("Box%02d", i%40)
		m := &Message{Name: fmt.Sprintf("%d.M%dP1000V%d.vmfsgen,S=%d:2,S", 1764874772+i, i, i, 1000+i%5000),
			Size: int64(1000 + i%5000), MTime: int64(i) * 1e9}
		byBox[mb] = append(byBox[mb], m)
		all = append(all, &Member{Mailbox: mb, Base: m.Base()})
	}
	for mb, ms := range byBox {
		snap.Messages[mb] = setOf(ms...)
	}
	for f, every := range map[string]int{"Unread": 3, "Flagged": 10, "Recent": 10} {
		snap.Folders[f] = &FolderState{UIDValidity: 1}
		for i := 0; i < n; i += every {
			m := *all[i]
			m.UID = uint32(len(snap.Members[f]) + 1)
			snap.Members[f] = append(snap.Members[f], &m)
		}
	}
	if err := s.SaveSnapshot(snap); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := readSnapshotFile(s.SnapshotFile()); err != nil {
			b.Fatal(err)
		}
	}
}
