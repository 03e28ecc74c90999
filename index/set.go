package index

import (
	"hash/maphash"
	"iter"
)

// ptrSet is a hash set of records found by a key they carry: a pointer
// and a one-byte tag a slot (open addressing, linear probing), where a
// map from the key would repeat the key's strings' headers and cost about
// three times as much. MessageSet and MemberSet are its two uses.
type ptrSet[T any, P hashed[T]] struct {
	// tags[i] is 0 for an empty slot, else tagFull | the hash's top 7
	// bits; slots[i] is its record.
	tags  []uint8
	slots []P
	n     int
}

// hashed is a record that hashes its own key (setHash).
type hashed[T any] interface {
	*T
	setHash() uint64
}

const tagFull = 0x80

var setSeed = maphash.MakeSeed()

func tagOf(h uint64) uint8 { return tagFull | uint8(h>>57) }

// find returns the slot of the record of hash h that is matches, or -1
// and the empty slot where it would go (-1 too if the set has no slots).
func (s *ptrSet[T, P]) find(h uint64, is func(P) bool) (at, free int) {
	if len(s.slots) == 0 {
		return -1, -1
	}
	tag, mask := tagOf(h), len(s.slots)-1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch t := s.tags[i]; {
		case t == 0:
			return -1, i
		case t == tag && is(s.slots[i]):
			return i, -1
		}
	}
}

func (s *ptrSet[T, P]) get(h uint64, is func(P) bool) P {
	if at, _ := s.find(h, is); at >= 0 {
		return s.slots[at]
	}
	return nil
}

// put adds p, replacing the record is matches.
func (s *ptrSet[T, P]) put(p P, is func(P) bool) {
	h := p.setHash()
	at, free := s.find(h, is)
	if at >= 0 {
		s.slots[at] = p
		return
	}
	if free < 0 || (s.n+1)*8 > len(s.slots)*7 {
		s.resize(s.n + 1)
		_, free = s.find(h, is)
	}
	s.tags[free], s.slots[free] = tagOf(h), p
	s.n++
}

// delete removes the record of hash h that is matches; it reports
// whether there was one.
func (s *ptrSet[T, P]) delete(h uint64, is func(P) bool) bool {
	at, _ := s.find(h, is)
	if at < 0 {
		return false
	}
	// Backward-shift deletion: every following record of the run that
	// would be found no later from the hole moves into it, so no
	// tombstones are needed.
	mask := len(s.slots) - 1
	hole := at
	for i := (at + 1) & mask; s.tags[i] != 0; i = (i + 1) & mask {
		home := int(s.slots[i].setHash()) & mask
		// The record at i may move to the hole if its home is not in
		// (hole, i] (cyclically).
		if (i-home)&mask >= (i-hole)&mask {
			s.tags[hole], s.slots[hole] = s.tags[i], s.slots[i]
			hole = i
		}
	}
	s.tags[hole], s.slots[hole] = 0, nil
	s.n--
	return true
}

// resize makes room for n records at a load of at most 7/8 (at least 8
// slots, a power of two) and puts the records back.
func (s *ptrSet[T, P]) resize(n int) {
	size := 8
	for size*7 < n*8 {
		size *= 2
	}
	if n > s.n && size <= len(s.slots) {
		size = 2 * len(s.slots)
	}
	old := s.slots
	s.tags, s.slots, s.n = make([]uint8, size), make([]P, size), 0
	mask := size - 1
	for _, p := range old {
		if p == nil {
			continue
		}
		h := p.setHash()
		i := int(h) & mask
		for s.tags[i] != 0 {
			i = (i + 1) & mask
		}
		s.tags[i], s.slots[i] = tagOf(h), p
		s.n++
	}
}

// next returns the first record in slot j or after, and the slot after
// it; nil when there is none.
func (s *ptrSet[T, P]) next(j int) (P, int) {
	for ; j < len(s.slots); j++ {
		if p := s.slots[j]; p != nil {
			return p, j + 1
		}
	}
	return nil, j
}

// all yields every record, in no particular order. The set must not be
// changed while it yields.
func (s *ptrSet[T, P]) all() iter.Seq[P] {
	return func(yield func(P) bool) {
		for _, p := range s.slots {
			if p != nil && !yield(p) {
				return
			}
		}
	}
}

// MessageSet is one mailbox's messages, found by base name: about 14
// bytes a message, against about 46 for a map[string]*Message (46 MB at a
// million messages). The zero value and nil are empty sets; a nil set can
// be read, not written.
type MessageSet struct{ s ptrSet[Message, *Message] }

func hashBase(base string) uint64 { return maphash.String(setSeed, base) }

func (m *Message) setHash() uint64 { return hashBase(m.Base()) }

// NewMessageSet returns an empty set with room for n messages.
func NewMessageSet(n int) *MessageSet {
	s := &MessageSet{}
	s.s.resize(n)
	return s
}

// Len is the number of messages.
func (s *MessageSet) Len() int {
	if s == nil {
		return 0
	}
	return s.s.n
}

// Get returns the message of a base name, nil if there is none.
func (s *MessageSet) Get(base string) *Message {
	if s == nil {
		return nil
	}
	return s.s.get(hashBase(base), func(m *Message) bool { return m.Base() == base })
}

// Put adds m, replacing the message of the same base name.
func (s *MessageSet) Put(m *Message) {
	base := m.Base()
	s.s.put(m, func(o *Message) bool { return o.Base() == base })
}

// Delete removes the message of a base name; it reports whether there was
// one.
func (s *MessageSet) Delete(base string) bool {
	if s == nil {
		return false
	}
	return s.s.delete(hashBase(base), func(m *Message) bool { return m.Base() == base })
}

// All yields every message, in no particular order. The set must not be
// changed while it yields.
func (s *MessageSet) All() iter.Seq[*Message] {
	if s == nil {
		return func(func(*Message) bool) {}
	}
	return s.s.all()
}

// MemberSet is a folder's members, found by their message's mailbox and
// base name: about 14 bytes a member, against about 75 for a map keyed by
// the two names.
type MemberSet struct{ s ptrSet[Member, *Member] }

func hashMember(mailbox, base string) uint64 {
	return maphash.String(setSeed, base) ^ maphash.String(setSeed, mailbox)*0x9e3779b97f4a7c15
}

func (m *Member) setHash() uint64 { return hashMember(m.Mailbox, m.Base) }

// NewMemberSet returns an empty set with room for n members.
func NewMemberSet(n int) *MemberSet {
	s := &MemberSet{}
	s.s.resize(n)
	return s
}

// Len is the number of members.
func (s *MemberSet) Len() int {
	if s == nil {
		return 0
	}
	return s.s.n
}

// Get returns the member of a mailbox's message, nil if there is none.
func (s *MemberSet) Get(mailbox, base string) *Member {
	if s == nil {
		return nil
	}
	return s.s.get(hashMember(mailbox, base), func(m *Member) bool { return m.Base == base && m.Mailbox == mailbox })
}

// Put adds m, replacing the member of the same message.
func (s *MemberSet) Put(m *Member) {
	s.s.put(m, func(o *Member) bool { return o.Base == m.Base && o.Mailbox == m.Mailbox })
}

// Delete removes the member of a mailbox's message; it reports whether
// there was one.
func (s *MemberSet) Delete(mailbox, base string) bool {
	if s == nil {
		return false
	}
	return s.s.delete(hashMember(mailbox, base), func(m *Member) bool { return m.Base == base && m.Mailbox == mailbox })
}

// All yields every member, in no particular order. The set must not be
// changed while it yields.
func (s *MemberSet) All() iter.Seq[*Member] {
	if s == nil {
		return func(func(*Member) bool) {}
	}
	return s.s.all()
}
