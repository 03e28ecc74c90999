// Package index is vmfs's persistent state, a Badger store under the state
// directory: every backend message's metadata, per-mailbox scan state, and
// every virtual folder's header and members. keys.go documents the byte
// layout of every key; codec.go the values. The engine (vsync) is its only
// writer.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	bopts "github.com/dgraph-io/badger/v4/options"
	"vmfs/internal/space"
)

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("state directory is in use by another vmfs")

// ErrDamaged wraps every error that means the store's contents cannot be
// trusted; the engine answers it by rebuilding from the backend.
var ErrDamaged = errors.New("index damaged")

// Store is an open index.
type Store struct {
	db  *badger.DB
	dir string
	// mapDir is dir as the kernel names the files mapped from it (see
	// releaseMapped).
	mapDir string
	gen    uint64 // the generation of the last commit; the engine is the one writer
	// loadedGen is the generation of the snapshot OpenLoaded used (0:
	// none): while gen is still that, the file on disk is current.
	loadedGen uint64

	// releasing is closed by Close to stop releaseEvery, which closes
	// released when it has.
	releasing, released chan struct{}
	stopRelease         sync.Once

	// CrashPoint, if set, is called at named points of a write (the
	// engine's Config.CrashPoint: the reliability tests end the process
	// there).
	CrashPoint func(name string)

	// empty is set while the store holds nothing but its version and
	// generation: its first big batch is streamed (bulk.go). streamMin is
	// how big (streamMin, the constant, unless a test changes it);
	// streamed counts the batches streamed.
	empty     bool
	streamMin int
	streamed  int

	mu sync.Mutex // protects held, and serializes writes with value-log GC
	// held are the changes of commits made while the state directory's
	// file system was short of space (see Commit), oldest first.
	held []op
}

// Options tuned for a desktop daemon: Badger's defaults (5 × 64 MB
// memtables, a 256 MB block cache, 1 GB value logs) are sized for servers.
func options(dir string) badger.Options {
	o := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		// Up to 8 memtables' worth (32 MB) stays in level 0 before a
		// compaction: a cold index of 100,000 messages (about 25 MB) is
		// written without compacting while it is written, which took 8-14
		// MB off its peak RSS; its compaction waits for Close.
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(16).
		// The index is read at start-up only (and not at all when the
		// snapshot is fresh): no block cache, and no compression, which
		// would need one and buys little on short records.
		WithCompression(bopts.None).
		WithBlockCacheSize(0).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		// Small tables at every level: a compaction builds up to 8 + its
		// splits tables at once, each in a buffer of twice the table size,
		// and with Badger's 2 MB base doubling per level the deepest level's
		// were 8 MB at 1,000,000 messages (108 MB of builders at once).
		WithBaseTableSize(1 << 20).
		WithNumCompactors(2).
		// No compaction at Close: it made the unmount after a cold index
		// of 100,000 messages the peak of the run (+20 MB). Level 0 is
		// compacted when it fills, whenever that is.
		WithCompactL0OnClose(false).
		WithDetectConflicts(false)
	o.TableSizeMultiplier = 1 // (no With method)
	return o
}

// Open opens (creating if needed, mode 0700) the index in dir. A second
// opener of the same directory gets ErrLocked; a store that Badger cannot
// open, or one of another schema version, gets ErrDamaged.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if _, err := os.Lstat(bulkMarker(dir)); err == nil {
		return nil, fmt.Errorf("%w: %s: vmfs stopped while it wrote a cold index", ErrDamaged, dir)
	}
	db, err := openBadger(dir)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("%w: open %s: %v", ErrDamaged, dir, err)
	}
	s := &Store{db: db, dir: dir, mapDir: dir, streamMin: streamMin}
	if abs, err := filepath.Abs(dir); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			s.mapDir = real
		}
	}
	v, err := s.version()
	if err == nil {
		s.gen, err = s.generation()
	}
	if err == nil {
		s.empty, err = s.isEmpty()
	}
	switch {
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, dir, err)
	case v == 0:
		if err := s.setVersion(); err != nil {
			db.Close()
			return nil, err
		}
	case v != SchemaVersion:
		db.Close()
		return nil, fmt.Errorf("%w: %s has schema version %d, want %d", ErrDamaged, dir, v, SchemaVersion)
	}
	s.releasing = make(chan struct{})
	s.released = make(chan struct{})
	go s.releaseEvery(releaseInterval)
	return s, nil
}

// openBadger opens Badger, turning its panics on corrupt files into errors.
func openBadger(dir string) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("badger panicked: %v", r)
		}
	}()
	return badger.Open(options(dir))
}

// Rebuild removes a damaged store's files from dir and opens an empty one.
// Only the index's own directory is touched.
func Rebuild(dir string) (*Store, error) {
	os.Remove(dir + ".snapshot")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("index: remove %s: %w", dir, err)
	}
	if err := os.Remove(bulkMarker(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("index: %w", err)
	}
	return Open(dir)
}

// Close flushes and closes the store.
func (s *Store) Close() error {
	s.stopReleasing()
	return s.db.Close()
}

// RunGC reclaims value-log space; call it now and then.
func (s *Store) RunGC() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.db.RunValueLogGC(0.5) == nil {
	}
}

func (s *Store) version() (uint32, error) {
	var v uint32
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(versionKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error {
			if len(b) != 4 {
				return errValue
			}
			v = binary.BigEndian.Uint32(b)
			return nil
		})
	})
	return v, err
}

func (s *Store) setVersion() error {
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(versionKey(), binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
}

// Snapshot is everything the store holds, loaded at start.
type Snapshot struct {
	Messages  map[string]*MessageSet // mailbox → its messages by base name
	Mailboxes map[string]*MailboxState
	Folders   map[string]*FolderState
	Members   map[string][]*Member // folder → members in UID order
	// MemberMessages, when a folder has an entry, holds each of its
	// members' message (nil if the index has none), in Members' order:
	// the snapshot's reader finds them, and the engine's first listing
	// of a folder needs no lookups.
	MemberMessages map[string][]*Message
	// MemberKeys, when a folder has an entry, holds the hash part of each
	// of its members' derived virtual name (the engine's), KeyLen bytes
	// each in Members' order, all zero where unknown: only the snapshot
	// keeps them, so that a start need not hash every member again.
	MemberKeys map[string][]byte
	// MemberSets, when a folder has an entry, holds its members as a set
	// (the snapshot's reader builds it in parallel).
	MemberSets map[string]*MemberSet
	// Unstatted is set when some message's size and mtime are unknown
	// (Size < 0: its file has not been stat()ed yet).
	Unstatted bool
}

// Load reads the whole store. Any record that does not decode is
// ErrDamaged.
func (s *Store) Load() (*Snapshot, error) {
	snap := &Snapshot{
		Messages:  map[string]*MessageSet{},
		Mailboxes: map[string]*MailboxState{},
		Folders:   map[string]*FolderState{},
		Members:   map[string][]*Member{},
	}
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchSize = 1000
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) == 0 || k[0] == pfxVersion || k[0] == pfxReverse || k[0] == pfxGeneration || k[0] == pfxIncomplete {
				continue // no value needed
			}
			err := item.Value(func(v []byte) error { return snap.add(k, v) })
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return snap, nil
}

func (snap *Snapshot) add(k, v []byte) error {
	switch k[0] {
	case pfxVersion, pfxReverse, pfxGeneration, pfxIncomplete:
		return nil
	case pfxMessage:
		mb, base, err := parseMessageKey(k)
		if err != nil {
			return err
		}
		m := &Message{}
		if err := m.decode(v); err != nil {
			return err
		}
		if m.Base() != base { // its name is not of its key
			return fmt.Errorf("%w: message %s/%s named %q", errValue, mb, base, m.Name)
		}
		if snap.Messages[mb] == nil {
			snap.Messages[mb] = &MessageSet{}
		}
		snap.Messages[mb].Put(m)
		snap.Unstatted = snap.Unstatted || m.Size < 0
	case pfxMailbox:
		st := &MailboxState{}
		if err := st.decode(v); err != nil {
			return err
		}
		snap.Mailboxes[string(k[1:])] = st
	case pfxFolder:
		st := &FolderState{}
		if err := st.decode(v); err != nil {
			return err
		}
		snap.Folders[string(k[1:])] = st
	case pfxMember:
		folder, uid, err := parseMemberKey(k)
		if err != nil {
			return err
		}
		m := &Member{UID: uid}
		if err := m.decode(v); err != nil {
			return err
		}
		snap.Members[folder] = append(snap.Members[folder], m)
	default:
		return errKey
	}
	return nil
}

// Batch collects changes and commits them atomically enough for vmfs:
// each Commit is one Badger transaction, split into several when it would
// be too big (a cold index). A crash between two parts leaves a state that
// the next sync repairs, since the backend is the truth.
type Batch struct {
	s   *Store
	ops []op
	// The key prefixes of the mailbox messages were last put in, and of
	// the folder members were last put in (they come by mailbox and by
	// folder): their ops share them.
	msgPrefix, memPrefix keyPrefix
}

// keyPrefix is the key prefix of one mailbox's or folder's records.
type keyPrefix struct {
	name string
	key  []byte
}

// of returns the prefix of name's records, made by mk if it is not the
// last one asked for.
func (p *keyPrefix) of(name string, mk func(string) []byte) []byte {
	if p.key == nil || p.name != name {
		p.name, p.key = name, mk(name)
	}
	return p.key
}

// op is one change: 40 bytes, for a cold index has millions.
type op struct {
	// key is the whole key; or, for a record put (below), the prefix of
	// its mailbox's or folder's keys.
	key []byte
	// rec is what is set: a value ([]byte); or a record encoded only when
	// the batch is committed, *Message or *Member; or every record of a
	// *MessageSet or *MemberSet. So a cold index's batch stays small (at
	// a million messages, the encoded members alone were 24 MB). nil: key
	// is deleted. The caller must not change a record or a set until the
	// commit; vmfs's engine changes them only while it holds the lock
	// under which it commits.
	rec any
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s} }

func (b *Batch) set(k, v []byte) { b.ops = append(b.ops, op{key: k, rec: v}) }
func (b *Batch) del(k []byte)    { b.ops = append(b.ops, op{key: k}) }

// ClearIncomplete removes the incomplete marker (see Commit).
func (b *Batch) ClearIncomplete() { b.del(incompleteKey()) }

// PutMessage records a message of a mailbox, as it is when the batch is
// committed.
func (b *Batch) PutMessage(mailbox string, m *Message) {
	m.Unsaved = false
	b.ops = append(b.ops, op{key: b.msgPrefix.of(mailbox, messagePrefix), rec: m})
}

// PutMessages records every message of a mailbox's set, as they are when
// the batch is committed (one op for what a cold index adds by the
// million).
func (b *Batch) PutMessages(mailbox string, ms *MessageSet) {
	b.ops = append(b.ops, op{key: messagePrefix(mailbox), rec: ms})
}

// DeleteMessage forgets a message.
func (b *Batch) DeleteMessage(mailbox, base string) { b.del(messageKey(mailbox, base)) }

// PutMailbox records a mailbox's scan state.
func (b *Batch) PutMailbox(name string, st *MailboxState) { b.set(mailboxKey(name), st.encode()) }

// DeleteMailbox forgets a mailbox's scan state.
func (b *Batch) DeleteMailbox(name string) { b.del(mailboxKey(name)) }

// PutFolder records a folder's header.
func (b *Batch) PutFolder(name string, st *FolderState) { b.set(folderKey(name), st.encode()) }

// DeleteFolder forgets a folder's header (members are deleted one by one).
func (b *Batch) DeleteFolder(name string) { b.del(folderKey(name)) }

// PutMember records a member of a folder, as it is when the batch is
// committed.
func (b *Batch) PutMember(folder string, m *Member) {
	b.ops = append(b.ops, op{key: b.memPrefix.of(folder, memberPrefix), rec: m})
}

// PutMembers records every member of a folder's set, as they are when the
// batch is committed (one op for what a cold index adds by the hundred
// thousand).
func (b *Batch) PutMembers(folder string, ms *MemberSet) {
	b.ops = append(b.ops, op{key: memberPrefix(folder), rec: ms})
}

// DeleteMember removes a member of a folder.
func (b *Batch) DeleteMember(folder string, m *Member) {
	b.del(memberKey(folder, m.UID))
}

// Commit writes the batch in one transaction. A batch too big for one
// (a cold index) is written in several, between an "incomplete" marker
// set before the first and cleared after the last: a crash in between
// leaves the marker, and Incomplete tells the engine to recompute what
// the partial batch may have left out.
//
// While the state directory's file system is short of space (a client
// filled it with control files, say) nothing is written: Badger maps its
// files and a write into them that finds no space kills the process with
// SIGBUS. The changes are held in memory, logged once, and written by the
// first commit or Flush after space returns.
func (b *Batch) Commit() error {
	if len(b.ops) == 0 {
		return nil
	}
	// Every change moves the generation on, which makes an older
	// snapshot stale.
	b.s.gen++
	ops := b.ops // not copied behind the generation: a cold index's batch is big
	b.ops = nil
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if space.Low(b.s.dir) {
		if len(b.s.held) == 0 {
			slog.Error("the state directory's file system is full: index changes are held in memory until space returns", "dir", b.s.dir)
		}
		b.s.held = append(b.s.held, ops...)
		return nil
	}
	if len(b.s.held) > 0 {
		ops = append(b.s.held, ops...)
		b.s.held = nil
		defer slog.Info("space is back: the held index changes are written", "dir", b.s.dir)
	}
	return b.s.writeOps(ops)
}

// generationOp sets the generation key to the store's generation.
func (s *Store) generationOp() op {
	return op{key: generationKey(), rec: binary.BigEndian.AppendUint64(nil, s.gen)}
}

// Flush writes the changes held while space was short, if there is space
// now.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) == 0 || space.Low(s.dir) {
		return nil
	}
	ops := s.held
	s.held = nil
	slog.Info("space is back: the held index changes are written", "dir", s.dir)
	return s.writeOps(ops)
}

// Holding reports whether changes are held for lack of space.
func (s *Store) Holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held) > 0
}

// writeOps writes ops and the store's generation in one transaction, or
// in marked parts when they are too many for one (the generation with the
// mark, first: a part written makes the snapshot stale).
func (s *Store) writeOps(ops []op) error {
	if s.empty && records(ops) >= s.streamMin {
		s.empty = false
		return s.streamOps(ops)
	}
	s.empty = false
	gen := s.generationOp()
	var c changes
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := apply(txn, gen); err != nil {
			return err
		}
		c = changes{ops: ops}
		for o, ok := c.next(); ok; o, ok = c.next() {
			if err := apply(txn, o); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, badger.ErrTxnTooBig) {
		if err != nil {
			return fmt.Errorf("index: commit: %w", err)
		}
		return nil
	}
	// Too big: nothing was written. Write it in parts, marked.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := apply(txn, gen); err != nil {
			return err
		}
		return txn.Set(incompleteKey(), []byte{1})
	}); err != nil {
		return fmt.Errorf("index: commit: %w", err)
	}
	c = changes{ops: ops}
	pending, more := c.next()
	for more {
		n := 0
		err := s.db.Update(func(txn *badger.Txn) error {
			for more {
				err := apply(txn, pending)
				if errors.Is(err, badger.ErrTxnTooBig) {
					return nil // commit what fits, continue in a new txn
				}
				if err != nil {
					return err
				}
				n++
				pending, more = c.next()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index: commit: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("index: commit: a single change is too big")
		}
		s.releaseMapped() // a big change flushes memtables into tables as it goes
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(incompleteKey()) }); err != nil {
		return fmt.Errorf("index: commit: %w", err)
	}
	s.releaseMapped()
	return nil
}

// changes goes through a batch's ops one key at a time: a set's op is
// each of its records in turn.
type changes struct {
	ops  []op
	i, j int // ops[i], and its set's slot j
}

func (c *changes) next() (op, bool) {
	for c.i < len(c.ops) {
		o := c.ops[c.i]
		var rec any // the set's next record, if o is a set's
		switch set := o.rec.(type) {
		case *MessageSet:
			if m, j := set.s.next(c.j); m != nil {
				rec, c.j = m, j
			}
		case *MemberSet:
			if m, j := set.s.next(c.j); m != nil {
				rec, c.j = m, j
			}
		default:
			c.i++
			return o, true
		}
		if rec != nil {
			return op{key: o.key, rec: rec}, true
		}
		c.i, c.j = c.i+1, 0
	}
	return op{}, false
}

func apply(txn *badger.Txn, o op) error {
	switch r := o.rec.(type) {
	case nil:
		return txn.Delete(o.key)
	case []byte:
		return txn.Set(o.key, r)
	case *Message:
		k := make([]byte, 0, len(o.key)+len(r.Name))
		return txn.Set(append(append(k, o.key...), r.Base()...), r.encode())
	case *Member:
		k := make([]byte, 0, len(o.key)+4)
		return txn.Set(binary.BigEndian.AppendUint32(append(k, o.key...), r.UID), r.encode())
	}
	return fmt.Errorf("index: a change of %T", o.rec)
}

// SetIncomplete sets or clears the incomplete marker: the engine clears it
// once it has re-evaluated everything; tests set it to simulate a crash.
func (s *Store) SetIncomplete(on bool) error {
	s.empty = s.empty && !on
	return s.db.Update(func(txn *badger.Txn) error {
		if on {
			return txn.Set(incompleteKey(), []byte{1})
		}
		return txn.Delete(incompleteKey())
	})
}

// Incomplete reports whether a batch written in several transactions was
// interrupted: some of its changes may be missing.
func (s *Store) Incomplete() bool {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(incompleteKey())
		return err
	})
	return err == nil
}
