package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"

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
//	'U': str folder  | uvarint n, then n records 'u', in UID order:
//	'u': uvarint uid | str key | uvarint ref | varint Linger |
//	     bool Written | str Name [| str Mailbox | str Base]
//
// A member's ref is 1 + the ordinal of its message's 'm' (or 'n') record in the
// file, which gives its mailbox and base name; 0 if the file has none, and
// then they follow. The counts let the reader size everything once and
// decode runs of records in parallel. (Files of earlier formats,
// "vmfs-snapshot" to "vmfs-snapshot3", are not read: the store is loaded
// key by key once.)
const snapshotMagic = "vmfs-snapshot4"

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
	// The file is read a record at a time, never whole (at a million
	// messages it is 150 MB): the headers here, runs of messages and
	// members into the decoders' chunks. The strings kept are copied into
	// arenas (a message's name and the headers queries need): a message's
	// base name is a part of its name, and a member's mailbox and base
	// name are its message's.
	strs := &arena.Strings{BlockSize: 1 << 20}
	var buf []byte
	var d dec // one decoder, reset for every record
	next := func() (byte, *dec, error) {
		typ, b, err := readRecord(r, size, buf[:0])
		if err != nil || typ == 0 {
			return 0, nil, err
		}
		buf = b
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
		MemberSets:     map[string]*MemberSet{},
	}
	dc := newDecoders(runtime.GOMAXPROCS(0))
	defer dc.stop()
	msgs := &slabIndex{}
	members := false // a 'U' was read: the decoders may be reading msgs
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
			if members { // SaveSnapshot writes every message first
				return nil, 0, errValue
			}
			name := rec.str()
			count := rec.uvarint()
			if rec.err != nil || count > size/2 {
				return nil, 0, errValue
			}
			ms := NewMessageSet(int(count))
			snap.Messages[name] = ms
			slab := make([]Message, count) // one allocation per mailbox
			msgs.add(name, slab)
			// The records are framed here and decoded by the workers,
			// a chunk at a time.
			set := &locked[*MessageSet]{s: ms}
			for i := 0; i < len(slab); {
				c := dc.chunk()
				c.set, c.slab = set, slab[i:i]
				for ; i < len(slab) && len(c.typs) < chunkRecords; i++ {
					if err := c.frame(r, 'm', 'n', size); err != nil {
						return nil, 0, err
					}
				}
				c.slab = c.slab[:len(c.typs)]
				dc.send(c)
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
		case 'U':
			// The records are framed here and decoded by the workers,
			// a chunk at a time, once the messages they refer to are.
			if err := dc.wait(); err != nil {
				return nil, 0, err
			}
			members = true
			name := rec.str()
			count := rec.uvarint()
			if rec.err != nil || count > size/2 {
				return nil, 0, errValue
			}
			if _, dup := snap.Members[name]; dup {
				return nil, 0, errValue
			}
			mems := make([]Member, count) // one allocation per folder
			ptrs := make([]*Member, count)
			for i := range mems {
				ptrs[i] = &mems[i]
			}
			snap.Members[name] = ptrs
			run := memberRun{msgs: msgs, set: &locked[*MemberSet]{s: NewMemberSet(int(count))},
				mems: mems, ptrs: make([]*Message, count), keys: make([]byte, count*KeyLen)}
			snap.MemberMessages[name], snap.MemberKeys[name], snap.MemberSets[name] = run.ptrs, run.keys, run.set.s
			for i := 0; i < len(mems); {
				c := dc.chunk()
				c.run = run.part(i, min(i+chunkRecords, len(mems)))
				for ; i < len(mems) && len(c.typs) < chunkRecords; i++ {
					if err := c.frame(r, 'u', 'u', size); err != nil {
						return nil, 0, err
					}
				}
				dc.send(c)
			}
		default:
			return nil, 0, errValue
		}
	}
	if err := dc.wait(); err != nil {
		return nil, 0, err
	}
	snap.Unstatted = dc.unstatted
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
		rec('U', enc(buf[:0]).str(name).uvarint(uint64(len(ms))))
		for i, m := range ms {
			var vk []byte
			if keys != nil && string(keys[i*KeyLen:(i+1)*KeyLen]) != string(zeroKey[:]) {
				vk = keys[i*KeyLen : (i+1)*KeyLen]
			}
			var r uint64 // 0: no message
			if msg := msgs[name][i]; msg != nil {
				r = ref[msg]
			}
			e := enc(buf[:0]).uvarint(uint64(m.UID)).str(string(vk)).uvarint(r).varint(m.Linger).bool(m.Written).str(m.Name)
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

// chunkRecords is how many records a decoder takes at a time.
const chunkRecords = 2048

// decoders decode a snapshot's message and member records in parallel
// while the reader frames the next ones: at 100,000 messages the decoding
// is most of a warm start, and one core would do it alone.
type decoders struct {
	work    chan *chunk
	free    chan *chunk // at most cap(free) chunks exist: memory stays bounded
	made    int
	pending sync.WaitGroup // chunks sent and not yet decoded
	workers sync.WaitGroup

	mu        sync.Mutex // protects err and unstatted
	err       error
	unstatted bool
}

// chunk is a run of records, their payloads back to back (raw, each
// ending at ends[i]) and their types: one mailbox's messages, decoded into
// slab and put into set, or one folder's members (run).
type chunk struct {
	set  *locked[*MessageSet]
	slab []Message
	run  *memberRun // a run of member records instead
	raw  []byte
	ends []int
	typs []byte
}

// memberRun is a run of one folder's member records, decoded into mems,
// each member's message (nil if none) into ptrs, and its virtual key
// (KeyLen bytes, zero if none) into keys.
type memberRun struct {
	msgs *slabIndex // the snapshot's messages, decoded
	set  *locked[*MemberSet]
	mems []Member
	ptrs []*Message
	keys []byte
}

// part is the run of members lo to hi.
func (run *memberRun) part(lo, hi int) *memberRun {
	return &memberRun{msgs: run.msgs, set: run.set,
		mems: run.mems[lo:hi], ptrs: run.ptrs[lo:hi], keys: run.keys[lo*KeyLen : hi*KeyLen]}
}

// frame reads the next record, of type t1 or t2, into the chunk.
func (c *chunk) frame(r *bufio.Reader, t1, t2 byte, size uint64) error {
	typ, raw, err := readRecord(r, size, c.raw)
	if err != nil || (typ != t1 && typ != t2) {
		return errValue
	}
	c.raw = raw
	c.typs, c.ends = append(c.typs, typ), append(c.ends, len(c.raw))
	return nil
}

// readRecord reads a record's type and, unless it is the end (0), appends
// its payload to dst.
func readRecord(r *bufio.Reader, size uint64, dst []byte) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil || typ == 0 {
		return typ, dst, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > size {
		return 0, dst, errValue
	}
	start := len(dst)
	dst = slices.Grow(dst, int(n))[:start+int(n)]
	if _, err := io.ReadFull(r, dst[start:]); err != nil {
		return 0, dst, errValue
	}
	return typ, dst, nil
}

// slabIndex finds the messages of a snapshot by ordinal: slabs[i] holds
// those numbered firsts[i]+1 onwards, of mailbox names[i].
type slabIndex struct {
	slabs  [][]Message
	names  []string
	firsts []uint64
	n      uint64
}

func (x *slabIndex) add(mailbox string, slab []Message) {
	x.slabs, x.names, x.firsts = append(x.slabs, slab), append(x.names, mailbox), append(x.firsts, x.n)
	x.n += uint64(len(slab))
}

// get returns the message numbered r (from 1) and its mailbox.
func (x *slabIndex) get(r uint64) (*Message, string, bool) {
	i, _ := slices.BinarySearch(x.firsts, r) // the first slab starting at r or later
	i--
	if i < 0 || r-x.firsts[i] > uint64(len(x.slabs[i])) {
		return nil, "", false
	}
	return &x.slabs[i][r-x.firsts[i]-1], x.names[i], true
}

// locked is a set filled by several decoders.
type locked[S any] struct {
	mu sync.Mutex
	s  S
}

func newDecoders(n int) *decoders {
	dc := &decoders{work: make(chan *chunk, n), free: make(chan *chunk, 2*n+1)}
	for range n {
		dc.workers.Go(dc.run)
	}
	return dc
}

// chunk returns an empty chunk, waiting for one to be free when as many
// as can be are in use.
func (dc *decoders) chunk() *chunk {
	select {
	case c := <-dc.free:
		return c
	default:
	}
	if dc.made < cap(dc.free) {
		dc.made++
		return &chunk{}
	}
	return <-dc.free
}

func (dc *decoders) send(c *chunk) {
	dc.pending.Add(1)
	dc.work <- c
}

// wait waits until every chunk sent is decoded and returns the first
// error.
func (dc *decoders) wait() error {
	dc.pending.Wait()
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.err
}

// stop ends the workers; wait first, or the chunks in flight are lost.
func (dc *decoders) stop() {
	close(dc.work)
	dc.workers.Wait()
}

func (dc *decoders) run() {
	// Each decoder copies the strings it keeps into an arena of its own.
	strs := &arena.Strings{BlockSize: 1 << 20}
	for c := range dc.work {
		var err error
		unstatted := false
		if c.run != nil {
			err = c.run.decode(c, strs)
		} else {
			unstatted, err = c.decodeMessages(strs)
		}
		dc.mu.Lock()
		if dc.err == nil {
			dc.err = err
		}
		dc.unstatted = dc.unstatted || unstatted
		dc.mu.Unlock()
		*c = chunk{raw: c.raw[:0], ends: c.ends[:0], typs: c.typs[:0]}
		dc.free <- c
		dc.pending.Done()
	}
}

// decodeMessages decodes a chunk of message records into its slab and
// puts them into their set; it reports whether one has no size yet.
func (c *chunk) decodeMessages(strs *arena.Strings) (unstatted bool, err error) {
	start := 0
	for i := range c.slab {
		d := dec{b: c.raw[start:c.ends[i]], arena: strs}
		start = c.ends[i]
		m := &c.slab[i]
		if m.decodeFrom(&d) != nil || m.Name == "" {
			return false, errValue
		}
		m.Unsaved = c.typs[i] == 'n'
		unstatted = unstatted || m.Size < 0
	}
	c.set.mu.Lock()
	defer c.set.mu.Unlock()
	for i := range c.slab {
		c.set.s.Put(&c.slab[i])
	}
	return unstatted, nil
}

// decode decodes a chunk of member records into the run.
func (run *memberRun) decode(c *chunk, strs *arena.Strings) error {
	start := 0
	for i := range run.mems {
		// Strings viewed in the buffer, then replaced by the message's
		// or copied.
		d := dec{b: c.raw[start:c.ends[i]], view: true}
		start = c.ends[i]
		m := &run.mems[i]
		m.UID = uint32(d.uvarint())
		if vk := d.bytes(); len(vk) == KeyLen {
			copy(run.keys[i*KeyLen:], vk)
		}
		r := d.uvarint()
		m.Linger, m.Written, m.Name = d.varint(), d.bool(), d.str()
		if r == 0 {
			m.Mailbox, m.Base = d.str(), d.str()
			m.Mailbox, m.Base = strs.Copy([]byte(m.Mailbox)), strs.Copy([]byte(m.Base))
		} else {
			msg, mailbox, ok := run.msgs.get(r)
			if !ok {
				return errValue
			}
			run.ptrs[i] = msg
			m.Mailbox, m.Base = mailbox, msg.Base()
		}
		if d.done() != nil {
			return errValue
		}
		m.Name = strs.Copy([]byte(m.Name))
	}
	run.set.mu.Lock()
	defer run.set.mu.Unlock()
	for i := range run.mems {
		run.set.s.Put(&run.mems[i])
	}
	return nil
}
