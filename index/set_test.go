package index

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestMessageSetLikeAMap: random puts, replacements and deletes give what
// a map from base name gives, at every size the set grows through.
func TestMessageSetLikeAMap(t *testing.T) {
	for _, keys := range []int{1, 7, 9, 100, 5000} {
		r := rand.New(rand.NewPCG(uint64(keys), 1))
		s, want := &MessageSet{}, map[string]*Message{}
		for op := range 20 * keys {
			base := fmt.Sprintf("%d.M%dP%d.host", r.IntN(keys), op%3, keys)
			switch r.IntN(3) {
			case 0, 1:
				m := &Message{Name: base + ":2," + string(rune('A'+op%26))}
				if op%5 == 0 {
					m.Name = base // no info part
				}
				s.Put(m)
				want[base] = m
			case 2:
				_, had := want[base]
				if s.Delete(base) != had {
					t.Fatalf("Delete(%q) = %v, want %v", base, !had, had)
				}
				delete(want, base)
			}
			if s.Len() != len(want) {
				t.Fatalf("%d keys, op %d: Len %d, want %d", keys, op, s.Len(), len(want))
			}
		}
		for base, m := range want {
			if got := s.Get(base); got != m {
				t.Fatalf("Get(%q) = %v, want %v", base, got, m)
			}
		}
		if s.Get("nothing") != nil || s.Delete("nothing") {
			t.Fatal("found what was never put")
		}
		n := 0
		for m := range s.All() {
			if want[m.Base()] != m {
				t.Fatalf("All yields %v, not in the map", m)
			}
			n++
		}
		if n != len(want) {
			t.Fatalf("All yields %d, want %d", n, len(want))
		}
	}
	var nilSet *MessageSet
	if nilSet.Get("x") != nil || nilSet.Len() != 0 {
		t.Fatal("a nil set is not empty")
	}
	for range nilSet.All() {
		t.Fatal("a nil set yields")
	}
}

// TestMemberSetLikeAMap: the same for members, found by mailbox and base
// name (two mailboxes holding the same base names).
func TestMemberSetLikeAMap(t *testing.T) {
	type k struct{ mb, base string }
	r := rand.New(rand.NewPCG(3, 4))
	s, want := &MemberSet{}, map[k]*Member{}
	for op := range 30000 {
		key := k{[]string{"INBOX", "Lists/Go", "INBOX.x"}[r.IntN(3)], fmt.Sprintf("%d.M%d.host", r.IntN(2000), op%2)}
		switch r.IntN(3) {
		case 0, 1:
			m := &Member{Mailbox: key.mb, Base: key.base, UID: uint32(op)}
			s.Put(m)
			want[key] = m
		case 2:
			_, had := want[key]
			if s.Delete(key.mb, key.base) != had {
				t.Fatalf("Delete(%v) = %v, want %v", key, !had, had)
			}
			delete(want, key)
		}
		if s.Len() != len(want) {
			t.Fatalf("op %d: Len %d, want %d", op, s.Len(), len(want))
		}
	}
	for key, m := range want {
		if got := s.Get(key.mb, key.base); got != m {
			t.Fatalf("Get(%v) = %v, want %v", key, got, m)
		}
	}
	n := 0
	for m := range s.All() {
		if want[k{m.Mailbox, m.Base}] != m {
			t.Fatalf("All yields %+v, not in the map", m)
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("All yields %d, want %d", n, len(want))
	}
	var nilSet *MemberSet
	if nilSet.Get("a", "b") != nil || nilSet.Len() != 0 || nilSet.Delete("a", "b") {
		t.Fatal("a nil set is not empty")
	}
	for range nilSet.All() {
		t.Fatal("a nil set yields")
	}
}

func BenchmarkMessageSetGet(b *testing.B) {
	const n = 25000
	s := NewMessageSet(n)
	var bases []string
	for i := range n {
		m := &Message{Name: fmt.Sprintf("%d.M%dP1.host:2,S", 1700000000+i, i)}
		s.Put(m)
		bases = append(bases, m.Base())
	}
	b.ResetTimer()
	for i := range b.N {
		if s.Get(bases[i%n]) == nil {
			b.Fatal("lost")
		}
	}
}
