package index

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
)

// A cold index — the first big batch into a store that holds nothing yet —
// is not written through transactions. Those fill a 4 MB memtable every
// few thousand records, and Badger compacts the tables they make into the
// levels below all the while: at a million messages its compactions kept
// 40-70 MB of table builders live (up to 8 + splits builders per
// compaction, each a buffer of twice the table size and a 3 MB buffer for
// the table's index) during the cold index, the peak of a daemon's life.
// Instead the batch goes through Badger's StreamWriter: its keys, sorted,
// are written straight into tables of the last level, with no memtable and
// no compaction, in a fraction of the time.
//
// The StreamWriter adds each table to Badger's manifest as it is written,
// in no particular order, so a crash in the middle leaves some of them. A
// marker file next to the store (BulkMarker) is written before and removed
// after; Open answers a store that still has it with ErrDamaged, and the
// engine rebuilds it from the backend — which is what the interrupted cold
// index was doing.

// streamMin is how many records a batch into an empty store must put to
// be streamed.
const streamMin = 10_000

// bulkMarker is the marker file of a store in dir.
func bulkMarker(dir string) string { return dir + ".bulk" }

// records is how many records ops put or delete (a set's op counts its
// records).
func records(ops []op) int {
	n := 0
	for _, o := range ops {
		switch r := o.rec.(type) {
		case *MessageSet:
			n += r.Len()
		case *MemberSet:
			n += r.Len()
		default:
			n++
		}
	}
	return n
}

// isEmpty reports whether the store holds nothing but its version and
// generation.
func (s *Store) isEmpty() (bool, error) {
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) != 1 || (k[0] != pfxVersion && k[0] != pfxGeneration) {
				empty = false
				return nil
			}
		}
		return nil
	})
	return empty, err
}

// unit is a run of keys written together: one key (whole), or the
// records of one mailbox or folder (the prefix of their keys).
type unit struct {
	key  []byte
	last op // a single key's: the last op on it
	// A mailbox's or folder's ops, in batch order.
	ops       []op
	isMessage bool
}

// streamOps writes ops, the whole content of an empty store, with a
// StreamWriter. s.mu is held.
func (s *Store) streamOps(ops []op) error {
	marker := bulkMarker(s.dir)
	if err := writeMarker(marker); err != nil {
		return err
	}
	units, err := arrange(append(ops, s.generationOp(),
		op{key: versionKey(), rec: binary.BigEndian.AppendUint32(nil, SchemaVersion)}))
	if err != nil {
		return err
	}
	sw := s.db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		sw.Cancel()
		return fmt.Errorf("index: stream: %w", err)
	}
	w := &streamer{s: s, sw: sw, buf: z.NewBuffer(streamBuf+streamBuf/4, "vmfs.stream")}
	for _, u := range units {
		if err := w.unit(u); err != nil {
			w.buf.Release()
			sw.Cancel()
			return err
		}
	}
	if err := w.flush(); err != nil {
		w.buf.Release()
		sw.Cancel()
		return err
	}
	w.buf.Release()
	if s.CrashPoint != nil {
		s.CrashPoint("mid-stream") // every record sent, not all of them written
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("index: stream: %w", err)
	}
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	syncDir(filepath.Dir(marker))
	s.streamed++
	s.releaseMapped()
	return nil
}

// arrange sorts ops into units in key order: single keys by key, and a
// mailbox's messages and a folder's members under their prefix (a key of
// one never starts with another's prefix: the name's length comes first).
// A message or member deleted by key joins its mailbox's or folder's unit.
func arrange(ops []op) ([]*unit, error) {
	byKey := map[string]*unit{}
	get := func(k []byte, isMessage bool) *unit {
		u := byKey[string(k)]
		if u == nil {
			u = &unit{key: k, isMessage: isMessage}
			byKey[string(k)] = u
		}
		return u
	}
	for _, o := range ops {
		switch r := o.rec.(type) {
		case *Message, *MessageSet:
			u := get(o.key, true)
			u.ops = append(u.ops, o)
		case *Member, *MemberSet:
			u := get(o.key, false)
			u.ops = append(u.ops, o)
		case nil, []byte:
			switch o.key[0] {
			case pfxMessage:
				mb, base, err := parseMessageKey(o.key)
				if err == nil && r != nil {
					err = errors.New("index: a message set by key")
				}
				if err != nil {
					return nil, err
				}
				u := get(messagePrefix(mb), true)
				u.ops = append(u.ops, op{key: u.key, rec: deleted{base: base}})
			case pfxMember:
				folder, uid, err := parseMemberKey(o.key)
				if err == nil && r != nil {
					err = errors.New("index: a member set by key")
				}
				if err != nil {
					return nil, err
				}
				u := get(memberPrefix(folder), false)
				u.ops = append(u.ops, op{key: u.key, rec: deleted{uid: uid}})
			default:
				get(o.key, false).last = o
			}
		default:
			return nil, fmt.Errorf("index: a change of %T", o.rec)
		}
	}
	units := make([]*unit, 0, len(byKey))
	for _, u := range byKey {
		units = append(units, u)
	}
	slices.SortFunc(units, func(a, b *unit) int { return cmp.Compare(string(a.key), string(b.key)) })
	return units, nil
}

// deleted stands for a record deleted by key in a unit's ops.
type deleted struct {
	base string
	uid  uint32
}

// streamBuf is how many bytes of records go to the StreamWriter at once.
// Each Write holds them again as Badger's entries (about 3 times the
// size), and up to 4 Writes are in flight.
const streamBuf = 1 << 20

// streamer feeds a StreamWriter, in key order.
type streamer struct {
	s        *Store
	sw       *badger.StreamWriter
	buf      *z.Buffer
	key, val []byte // scratch
	kv       pb.KV
}

func (w *streamer) put(key, val []byte) error {
	w.kv = pb.KV{Key: key, Value: val, Version: 1}
	badger.KVToBuffer(&w.kv, w.buf)
	if w.buf.LenNoPadding() >= streamBuf {
		return w.flush()
	}
	return nil
}

func (w *streamer) flush() error {
	if w.buf.LenNoPadding() == 0 {
		return nil
	}
	if err := w.sw.Write(w.buf); err != nil {
		return fmt.Errorf("index: stream: %w", err)
	}
	w.buf.Reset()
	// The tables written so far are mapped, and resident, until released.
	w.s.releaseMapped()
	return nil
}

// unit writes u's keys in order; of the ops on one key, the last counts,
// and a key whose last op deletes it is not written.
func (w *streamer) unit(u *unit) error {
	if u.ops == nil {
		if b, ok := u.last.rec.([]byte); ok {
			return w.put(u.key, b)
		}
		return nil // deleted
	}
	if u.isMessage {
		return writeSorted(u, func(d deleted) *Message { return &Message{Name: d.base} },
			func(a, b *Message) int { return cmp.Compare(a.Base(), b.Base()) },
			func(m *Message) error {
				w.key = append(append(w.key[:0], u.key...), m.Base()...)
				w.val = m.appendEncoded(w.val[:0])
				return w.put(w.key, w.val)
			})
	}
	return writeSorted(u, func(d deleted) *Member { return &Member{UID: d.uid} },
		func(a, b *Member) int { return cmp.Compare(a.UID, b.UID) },
		func(m *Member) error {
			w.key = binary.BigEndian.AppendUint32(append(w.key[:0], u.key...), m.UID)
			w.val = m.appendEncoded(w.val[:0])
			return w.put(w.key, w.val)
		})
}

// writeSorted puts a mailbox's or folder's records (u.ops) in key order
// (by order), the last op on a key counting. They are sorted as pointers,
// 8 bytes each: a cold index's biggest folder has hundreds of thousands
// of members. A record deleted by key becomes a stand-in, left out.
func writeSorted[R comparable](u *unit, stand func(deleted) R, order func(a, b R) int, put func(R) error) error {
	var recs []R
	dels := map[R]bool{}
	for _, o := range u.ops {
		switch r := o.rec.(type) {
		case R:
			recs = append(recs, r)
		case interface {
			Len() int
			All() iter.Seq[R]
		}:
			recs = slices.Grow(recs, r.Len())
			for m := range r.All() {
				recs = append(recs, m)
			}
		case deleted:
			m := stand(r)
			recs, dels[m] = append(recs, m), true
		}
	}
	slices.SortStableFunc(recs, order)
	for i, m := range recs {
		if dels[m] || (i+1 < len(recs) && order(recs[i+1], m) == 0) {
			continue
		}
		if err := put(m); err != nil {
			return err
		}
	}
	return nil
}

// writeMarker creates the file at path, durably.
func writeMarker(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a directory's entries durable, as far as it can.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
