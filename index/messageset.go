package index

import (
	"hash/maphash"
	"iter"
)

// MessageSet is one mailbox's messages, found by base name. It holds a
// pointer and a one-byte tag a slot (open addressing, linear probing): a
// map from the base name would repeat the 16-byte string header the
// message already holds and cost about 40 bytes a message, 46 MB at a
// million messages, against about 14 here. The zero value and nil are
// empty sets; a nil set can be read, not written.
type MessageSet struct {
	// tags[i] is 0 for an empty slot, else tagFull | the hash's top 7
	// bits; slots[i] is its message.
	tags  []uint8
	slots []*Message
	n     int
}

const tagFull = 0x80

var setSeed = maphash.MakeSeed()

// NewMessageSet returns an empty set with room for n messages.
func NewMessageSet(n int) *MessageSet {
	s := &MessageSet{}
	s.resize(n)
	return s
}

func hashOf(base string) (uint64, uint8) {
	h := maphash.String(setSeed, base)
	return h, tagFull | uint8(h>>57)
}

// Len is the number of messages.
func (s *MessageSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// find returns the slot of base, or -1 and the empty slot where it would
// go (-1 too if the set has no slots).
func (s *MessageSet) find(base string) (at, free int) {
	if s == nil || len(s.slots) == 0 {
		return -1, -1
	}
	h, tag := hashOf(base)
	mask := len(s.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch t := s.tags[i]; {
		case t == 0:
			return -1, i
		case t == tag && s.slots[i].Base() == base:
			return i, -1
		}
	}
}

// Get returns the message of a base name, nil if there is none.
func (s *MessageSet) Get(base string) *Message {
	if at, _ := s.find(base); at >= 0 {
		return s.slots[at]
	}
	return nil
}

// Put adds m, replacing the message of the same base name.
func (s *MessageSet) Put(m *Message) {
	base := m.Base()
	at, free := s.find(base)
	if at >= 0 {
		s.slots[at] = m
		return
	}
	if free < 0 || (s.n+1)*8 > len(s.slots)*7 {
		s.resize(s.n + 1)
		_, free = s.find(base)
	}
	_, s.tags[free] = hashOf(base)
	s.slots[free] = m
	s.n++
}

// Delete removes the message of a base name; it reports whether there was
// one.
func (s *MessageSet) Delete(base string) bool {
	at, _ := s.find(base)
	if at < 0 {
		return false
	}
	// Backward-shift deletion: every following entry of the run that
	// would be found no later from the hole moves into it, so no
	// tombstones are needed.
	mask := len(s.slots) - 1
	hole := at
	for i := (at + 1) & mask; s.tags[i] != 0; i = (i + 1) & mask {
		h, _ := hashOf(s.slots[i].Base())
		home := int(h) & mask
		// The entry at i may move to the hole if its home is not in
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

// resize makes room for n messages at a load of at most 7/8 (at least 8
// slots, a power of two) and puts the messages back.
func (s *MessageSet) resize(n int) {
	size := 8
	for size*7 < n*8 {
		size *= 2
	}
	if n > s.n && size <= len(s.slots) {
		size = 2 * len(s.slots)
	}
	old := s.slots
	s.tags, s.slots, s.n = make([]uint8, size), make([]*Message, size), 0
	for _, m := range old {
		if m != nil {
			_, free := s.find(m.Base())
			_, s.tags[free] = hashOf(m.Base())
			s.slots[free] = m
			s.n++
		}
	}
}

// All yields every message, in no particular order. The set must not be
// changed while it yields.
func (s *MessageSet) All() iter.Seq[*Message] {
	return func(yield func(*Message) bool) {
		if s == nil {
			return
		}
		for _, m := range s.slots {
			if m != nil && !yield(m) {
				return
			}
		}
	}
}
