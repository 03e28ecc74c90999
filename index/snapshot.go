package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/dgraph-io/badger/v4"

	"vmfs/internal/arena"
	"vmfs/internal/space"
)

// A snapshot is the whole store in one file, written when vmfs stops
// cleanly, so that the next start reads one file instead of walking every
// key. It is used only if it was written at the store's current
// generation (key 'g', bumped by every commit); otherwise, after a crash
// say, the store is loaded key by key as before.
//
// File: "vmfs-snapshot" | schema uint32 | generation uint64 | records,
// each: type byte | uvarint length | payload, ending with type 0.
//
//	'M': str mailbox | uvarint n, then n records 'm': Message, or 'n':
//	     a Message that the store holds as it was before (Unsaved)
//	'b': str mailbox | MailboxState
//	'f': str folder  | FolderState
//	'u': str folder  | uvarint uid | str key | uvarint ref |
//	     varint Linger | bool Written | str Name [| str Mailbox | str Base]
//
// A member's ref is 1 + the ordinal of its message's 'm' (or 'n') record in the
// file, which gives its mailbox and base name; 0 if the file has none, and
// then they follow. (Files of earlier formats, "vmfs-snapshot" and
// "vmfs-snapshot2", are not read: the store is loaded key by key once.)
const snapshotMagic = "vmfs-snapshot3"

const pfxGeneration = 'g'

// KeyLen is the length of a member's key in Snapshot.MemberKeys.
const KeyLen = 26

var zeroKey [KeyLen]byte

func generationKey() []byte { return []byte{pfxGeneration} }

// SnapshotFile is where a store's snapshot lives.
func (s *Store) SnapshotFile() string { return s.dir + ".snapshot" }

func (s *Store) generation() (uint64, error) {
	var g uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(generationKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error {
			if len(b) != 8 {
				return errValue
			}
			g = binary.BigEndian.Uint64(b)
			return nil
		})
	})
	return g, err
}

// OpenLoaded opens the store in dir and loads it: from its snapshot when
// that is current (read while Badger opens), else key by key (Load).
func OpenLoaded(dir string) (*Store, *Snapshot, error) {
	type read struct {
		snap *Snapshot
		gen  uint64
		err  error
	}
	ahead := make(chan read, 1)
	go func() {
		var r read
		r.snap, r.gen, r.err = readSnapshotFile(dir + ".snapshot")
		ahead <- r
	}()
	s, err := Open(dir)
	r := <-ahead
	if err != nil {
		return nil, nil, err
	}
	if r.err == nil && r.gen == s.gen {
		s.loadedGen = r.gen
		return s, r.snap, nil
	}
	r.snap = nil
	snap, err := s.Load()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, snap, nil
}

// readSnapshotFile reads a snapshot of this schema and returns it with
// the store generation it was written at.
func readSnapshotFile(path string) (*Snapshot, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := uint64(fi.Size())
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, len(snapshotMagic)+12)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, 0, errValue
	}
	p := hdr[len(snapshotMagic):]
	if binary.BigEndian.Uint32(p) != SchemaVersion {
		return nil, 0, errors.New("snapshot of another schema")
	}
	g := binary.BigEndian.Uint64(p[4:])
	// The file is read one record at a time into one buffer, never whole
	// (at a million messages it is 150 MB); the strings kept are copied
	// into an arena (a message's name and the headers queries need): a
	// message's base name is a part of its name, and a member's mailbox
	// and base name are its message's.
	strs := &arena.Strings{BlockSize: 1 << 20}
	var buf []byte
	var d dec // one decoder, reset for every record
	next := func() (byte, *dec, error) {
		typ, err := r.ReadByte()
		if err != nil || typ == 0 {
			return 0, nil, err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > size {
			return 0, nil, errValue
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n, max(n, 4096))
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, errValue
		}
		d = dec{b: buf, arena: strs}
		return typ, &d, nil
	}
	snap := &Snapshot{
		Messages:  map[string]*MessageSet{},
		Mailboxes: map[string]*MailboxState{},
		Folders:   map[string]*FolderState{},
		Members:   map[string][]*Member{},

		MemberMessages: map[string][]*Message{},
		MemberKeys:     map[string][]byte{},
	}
	var members []Member
	folders := map[string]string{}
	// The messages read so far, for members' refs: slabs[i] holds the
	// messages numbered firsts[i]+1 onwards.
	var slabs [][]Message
	var slabMailboxes []string
	var firsts []uint64
	read := uint64(0)
	for {
		typ, rec, err := next()
		if err != nil {
			return nil, 0, errValue
		}
		if typ == 0 {
			break
		}
		switch typ {
		case 'M':
			name := rec.str()
			count := rec.uvarint()
			if rec.err != nil || count > size {
				return nil, 0, errValue
			}
			ms := NewMessageSet(int(count))
			snap.Messages[name] = ms
			slab := make([]Message, count) // one allocation per mailbox
			slabs = append(slabs, slab)
			slabMailboxes = append(slabMailboxes, name)
			firsts = append(firsts, read)
			read += count
			for i := range slab {
				typ, r, err := next()
				if err != nil || (typ != 'm' && typ != 'n') {
					return nil, 0, errValue
				}
				m := &slab[i]
				if m.decodeFrom(r) != nil || m.Name == "" {
					return nil, 0, errValue
				}
				m.Unsaved = typ == 'n'
				ms.Put(m)
				snap.Unstatted = snap.Unstatted || m.Size < 0
			}
		case 'b':
			rec.arena = nil
			name := rec.str()
			st := &MailboxState{}
			if rec.err != nil || st.decode(rec.b) != nil {
				return nil, 0, errValue
			}
			snap.Mailboxes[name] = st
		case 'f':
			rec.arena = nil
			name := rec.str()
			st := &FolderState{}
			if rec.err != nil || st.decode(rec.b) != nil {
				return nil, 0, errValue
			}
			snap.Folders[name] = st
		case 'u':
			// Strings viewed in the buffer, then replaced by the
			// message's or copied.
			rec.arena, rec.view = nil, true
			folder := rec.str()
			uid := rec.uvarint()
			if len(members) == 0 {
				members = make([]Member, 4096) // allocated in chunks
			}
			m := &members[0]
			members = members[1:]
			m.UID = uint32(uid)
			vk := rec.bytes()
			if len(vk) != KeyLen {
				vk = zeroKey[:]
			}
			r := rec.uvarint()
			m.Linger, m.Written, m.Name = rec.varint(), rec.bool(), rec.str()
			var msg *Message
			if r == 0 {
				m.Mailbox, m.Base = rec.str(), rec.str()
				m.Mailbox, m.Base = strs.Copy([]byte(m.Mailbox)), strs.Copy([]byte(m.Base))
			} else {
				// The slab of the r-th message: the last one whose
				// first message comes before it.
				i := sort.Search(len(firsts), func(i int) bool { return firsts[i] >= r }) - 1
				if i < 0 || r-firsts[i] > uint64(len(slabs[i])) {
					return nil, 0, errValue
				}
				msg = &slabs[i][r-firsts[i]-1]
				m.Mailbox, m.Base = slabMailboxes[i], msg.Base()
			}
			if rec.done() != nil {
				return nil, 0, errValue
			}
			m.Name = strs.Copy([]byte(m.Name))
			name, ok := folders[folder] // not the view: a map keeps the key it is given
			if !ok {
				name = string([]byte(folder))
				folders[name] = name
			}
			snap.Members[name] = append(snap.Members[name], m)
			snap.MemberMessages[name] = append(snap.MemberMessages[name], msg)
			snap.MemberKeys[name] = append(snap.MemberKeys[name], vk...)
		default:
			return nil, 0, errValue
		}
	}
	for name, ms := range snap.Members { // SaveSnapshot writes them in order
		if !sort.SliceIsSorted(ms, func(i, j int) bool { return ms[i].UID < ms[j].UID }) {
			sort.Slice(ms, func(i, j int) bool { return ms[i].UID < ms[j].UID })
			delete(snap.MemberMessages, name) // no longer in Members' order
			delete(snap.MemberKeys, name)
		}
	}
	return snap, g, nil
}

// MarkUnsaved says that memory holds changes the store does not (records
// marked Unsaved): the next SaveSnapshot writes a snapshot even when there
// was no commit since the one the store was loaded from.
func (s *Store) MarkUnsaved() { s.loadedGen = 0 }

// SaveSnapshot writes snap as the store's snapshot at its current
// generation (tmp file, fsync, rename). Call it when nothing else writes.
// Nothing is written when the snapshot the store was loaded from is still
// current (no commit since): what snap holds besides the store's records
// (a member's virtual key, a folder's last tick) is only a shortcut for
// the next start.
func (s *Store) SaveSnapshot(snap *Snapshot) error {
	if err := s.Flush(); err != nil {
		return err
	}
	if s.loadedGen != 0 && s.loadedGen == s.gen {
		return nil
	}
	if s.Holding() || space.Low(s.dir) {
		return fmt.Errorf("snapshot: the state directory's file system is full")
	}
	g, err := s.generation()
	if err != nil {
		return err
	}
	tmp := s.SnapshotFile() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	hdr := append([]byte(snapshotMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint32(hdr[len(snapshotMagic):], SchemaVersion)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+4:], g)
	w.Write(hdr)
	rec := func(typ byte, payload []byte) {
		w.WriteByte(typ)
		var n [binary.MaxVarintLen64]byte
		w.Write(n[:binary.PutUvarint(n[:], uint64(len(payload)))])
		w.Write(payload)
	}
	// The members in UID order (read back so) refer to their messages by
	// the ordinals the messages are written with.
	total := 0
	for name, ms := range snap.Members {
		if !sort.SliceIsSorted(ms, func(i, j int) bool { return ms[i].UID < ms[j].UID }) {
			sort.Slice(ms, func(i, j int) bool { return ms[i].UID < ms[j].UID })
			delete(snap.MemberKeys, name) // no longer in Members' order
		}
		total += len(ms)
	}
	ref := make(map[*Message]uint64, total)
	msgs := make(map[string][]*Message, len(snap.Members)) // each member's, nil if none
	for name, ms := range snap.Members {
		l := make([]*Message, len(ms))
		for i, m := range ms {
			if msg := snap.Messages[m.Mailbox].Get(m.Base); msg != nil {
				ref[msg], l[i] = 0, msg
			}
		}
		msgs[name] = l
	}
	var buf []byte // one buffer for every record
	n := uint64(0)
	for mb, ms := range snap.Messages {
		rec('M', enc(buf[:0]).str(mb).uvarint(uint64(ms.Len())))
		for m := range ms.All() {
			n++
			if _, ok := ref[m]; ok {
				ref[m] = n
			}
			buf = m.appendEncoded(buf[:0])
			if m.Unsaved {
				rec('n', buf)
			} else {
				rec('m', buf)
			}
		}
	}
	for mb, st := range snap.Mailboxes {
		rec('b', append(enc(nil).str(mb), st.encode()...))
	}
	for name, st := range snap.Folders {
		rec('f', append(enc(nil).str(name), st.encode()...))
	}
	for name, ms := range snap.Members {
		keys := snap.MemberKeys[name]
		if len(keys) != len(ms)*KeyLen {
			keys = nil
		}
		for i, m := range ms {
			var vk []byte
			if keys != nil && string(keys[i*KeyLen:(i+1)*KeyLen]) != string(zeroKey[:]) {
				vk = keys[i*KeyLen : (i+1)*KeyLen]
			}
			var r uint64 // 0: no message
			if msg := msgs[name][i]; msg != nil {
				r = ref[msg]
			}
			e := enc(buf[:0]).str(name).uvarint(uint64(m.UID)).str(string(vk)).uvarint(r).varint(m.Linger).bool(m.Written).str(m.Name)
			if r == 0 {
				e = e.str(m.Mailbox).str(m.Base)
			}
			buf = e
			rec('u', buf)
		}
	}
	w.WriteByte(0)
	if err := w.Flush(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.SnapshotFile()); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	syncDir(filepath.Dir(s.SnapshotFile()))
	return nil
}

var _ io.Writer = (*bufio.Writer)(nil)
