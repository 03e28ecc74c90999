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
				m := &Message{Mailbox: "INBOX", Name: base + ":2," + string(rune('A'+op%26))}
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
