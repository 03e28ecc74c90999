package index

import (
	"encoding/binary"
	"errors"
	"sort"
	"unsafe"

	"vmfs/internal/arena"
	"vmfs/internal/maildir"
)

// errValue reports a value that does not decode: the index is damaged.
var errValue = errors.New("index: malformed value")

type enc []byte

func (e enc) uvarint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) varint(v int64) enc   { return binary.AppendVarint(e, v) }
func (e enc) str(s string) enc     { return append(e.uvarint(uint64(len(s))), s...) }
func (e enc) bool(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}

type dec struct {
	b   []byte
	err error
	// view, when set, makes strings views of b's bytes instead of copies:
	// for strings replaced before the buffer is reused (the snapshot's).
	view bool
	// arena, when set, receives copies of the strings (the snapshot's
	// strings that are kept), in 1 MiB blocks.
	arena *arena.Strings
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errValue
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errValue
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errValue
		return ""
	}
	var s string
	if d.arena != nil {
		s = d.arena.Copy(d.b[:n])
	} else if d.view && n > 0 {
		s = unsafe.String(&d.b[0], n)
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

// bytes is str without a copy: the bytes stay part of the decoded value.
func (d *dec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errValue
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *dec) bool() bool {
	if d.err != nil || len(d.b) == 0 {
		d.err = errValue
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v == 1
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errValue
	}
	return d.err
}

// Message is the index's record of one backend message. It is kept in
// memory for every backend message, so it is small (64 bytes): what only
// header queries need lives in Meta, and the base name, the other half of
// its key, is a part of Name (Base).
type Message struct {
	// Its mailbox is the set's it is in (Snapshot.Messages).
	Name  string // current file name, with the info part
	Size  int64  // -1: the file has not been stat()ed yet (MTime unknown)
	MTime int64  // file mtime, Unix nanoseconds
	Meta  *Meta  // nil when no query needs headers, or none were found
	// NeedsHash says which header-derived metadata Meta holds.
	NeedsHash uint32
	New       bool // in new/
	// Unsaved is set by the engine on a record it changed in memory only
	// (the sizes and dates Fill reads, see Store.MarkUnsaved); PutMessage
	// clears it. Not stored.
	Unsaved bool
}

// Base is the message's base name (its key in its mailbox): its file name
// without the info part, whatever its flags.
func (m *Message) Base() string { return maildir.BaseOf(m.Name) }

// Meta is the header-derived part of a Message.
type Meta struct {
	Sent       int64 // Date header, Unix seconds
	SentOffset int32 // the Date header's zone, seconds east of UTC
	HasSent    bool
	ID         string
	References []string
	Headers    map[string][]string
}

func (mt *Meta) empty() bool {
	return !mt.HasSent && mt.Sent == 0 && mt.SentOffset == 0 && mt.ID == "" && len(mt.References) == 0 && len(mt.Headers) == 0
}

var noMeta Meta

func (m *Message) encode() []byte { return m.appendEncoded(make([]byte, 0, 32+len(m.Name))) }

// appendEncoded appends the message's encoding to b.
func (m *Message) appendEncoded(b []byte) []byte {
	mt := m.Meta
	if mt == nil {
		mt = &noMeta
	}
	e := enc(b).str(m.Name).bool(m.New).varint(m.Size).varint(m.MTime).uvarint(uint64(m.NeedsHash)).
		varint(mt.Sent).varint(int64(mt.SentOffset)).bool(mt.HasSent).str(mt.ID).uvarint(uint64(len(mt.References)))
	for _, r := range mt.References {
		e = e.str(r)
	}
	if len(mt.Headers) == 0 {
		return e.uvarint(0)
	}
	names := make([]string, 0, len(mt.Headers))
	for k := range mt.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	e = e.uvarint(uint64(len(names)))
	for _, k := range names {
		e = e.str(k).uvarint(uint64(len(mt.Headers[k])))
		for _, v := range mt.Headers[k] {
			e = e.str(v)
		}
	}
	return e
}

func (m *Message) decode(b []byte) error { return m.decodeFrom(&dec{b: b}) }

func (m *Message) decodeFrom(d *dec) error {
	b := d.b
	var meta Meta // allocated only if not empty
	mt := &meta
	// NeedsHash was 64 bits wide before; its low half is today's.
	m.Name, m.New, m.Size, m.MTime, m.NeedsHash = d.str(), d.bool(), d.varint(), d.varint(), uint32(d.uvarint())
	mt.Sent, mt.SentOffset, mt.HasSent, mt.ID = d.varint(), int32(d.varint()), d.bool(), d.str()
	n := d.uvarint()
	if n > uint64(len(b)) {
		return errValue
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		mt.References = append(mt.References, d.str())
	}
	nh := d.uvarint()
	if nh > uint64(len(b)) {
		return errValue
	}
	if nh > 0 {
		mt.Headers = make(map[string][]string, nh)
	}
	for i := uint64(0); i < nh && d.err == nil; i++ {
		k := d.str()
		nv := d.uvarint()
		if nv > uint64(len(b)) {
			return errValue
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv && d.err == nil; j++ {
			vs = append(vs, d.str())
		}
		mt.Headers[k] = vs
	}
	m.Meta = nil
	if !mt.empty() {
		m.Meta = new(Meta)
		*m.Meta = meta
	}
	return d.done()
}

// MailboxState lets a sync recognise an unchanged mailbox without reading
// it: the mtimes of cur/ and new/ when it was last scanned. Settled is
// false when a directory's mtime was too close to the scan for a change
// within the same timestamp tick to be ruled out; such a mailbox is always
// listed again.
type MailboxState struct {
	CurMTime  int64
	NewMTime  int64
	Settled   bool
	NeedsHash uint32 // Message.NeedsHash of every message when scanned
	Count     int
}

func (s *MailboxState) encode() []byte {
	return enc(nil).varint(s.CurMTime).varint(s.NewMTime).bool(s.Settled).uvarint(uint64(s.NeedsHash)).uvarint(uint64(s.Count))
}

func (s *MailboxState) decode(b []byte) error {
	d := &dec{b: b}
	s.CurMTime, s.NewMTime, s.Settled, s.NeedsHash, s.Count = d.varint(), d.varint(), d.bool(), uint32(d.uvarint()), int(d.uvarint())
	return d.done()
}

// FolderState is a virtual folder's persistent header.
type FolderState struct {
	DefHash     uint64 // hash of the definition (mailboxes, query)
	UIDValidity uint32
	NextUID     uint32
	// Ticked is when the folder's time-based query (YOUNGER, OLDER) was
	// last evaluated, Unix nanoseconds; 0 if never. Headers written
	// before it existed end without it.
	Ticked int64
}

func (s *FolderState) encode() []byte {
	return enc(nil).uvarint(s.DefHash).uvarint(uint64(s.UIDValidity)).uvarint(uint64(s.NextUID)).varint(s.Ticked)
}

func (s *FolderState) decode(b []byte) error {
	d := &dec{b: b}
	s.DefHash, s.UIDValidity, s.NextUID = d.uvarint(), uint32(d.uvarint()), uint32(d.uvarint())
	if len(d.b) > 0 {
		s.Ticked = d.varint()
	}
	return d.done()
}

// Member is one message of a virtual folder.
type Member struct {
	Mailbox string
	Base    string
	// Name, when set, is the virtual base name the client chose when it
	// delivered the message through the folder; it replaces the derived one.
	Name string
	// Linger is the Unix-nanosecond deadline until which a member that no
	// longer matches stays listed; 0 while it matches.
	Linger int64
	UID    uint32 // key
	// Written is set for a message delivered through the folder: it stays
	// until its linger ends even if it never matched.
	Written bool
}

func (m *Member) encode() []byte { return m.appendEncoded(nil) }

// appendEncoded appends the member's encoding to b.
func (m *Member) appendEncoded(b []byte) []byte {
	return enc(b).str(m.Mailbox).str(m.Base).varint(m.Linger).bool(m.Written).str(m.Name)
}

func (m *Member) decode(b []byte) error { return m.decodeFrom(&dec{b: b}) }

func (m *Member) decodeFrom(d *dec) error {
	m.Mailbox, m.Base, m.Linger, m.Written, m.Name = d.str(), d.str(), d.varint(), d.bool(), d.str()
	return d.done()
}
