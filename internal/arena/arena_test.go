package arena

import (
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// Strings come back whole after many more were copied and collections
// ran; small ones share a block, end to end; one that does not fit and
// is over a quarter of a block has its own allocation, not a new block.
func TestStrings(t *testing.T) {
	a := &Strings{BlockSize: 256}
	var want, got []string
	buf := make([]byte, 0, 100)
	for i := range 200 {
		buf = append(buf[:0], strings.Repeat(string(rune('a'+i%26)), i%40)...)
		want = append(want, string(buf))
		got = append(got, a.Copy(buf))
		if len(buf) > 0 {
			buf[0] = 'X' // the source is reused: the copy must not see it
		}
	}
	runtime.GC()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d = %q, want %q", i, got[i], want[i])
		}
	}
	a = &Strings{BlockSize: 256}
	x, y := a.Copy([]byte("one")), a.Copy([]byte("two"))
	if unsafe.StringData(y) != (*byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(x)), 3)) {
		t.Error("two small strings in a row are not next to each other in a block")
	}
	a.Copy(make([]byte, 200)) // 50 bytes left in the block
	big := strings.Repeat("b", 65)
	before := a.cur
	if s := a.Copy([]byte(big)); s != big || len(a.cur) != len(before) || cap(a.cur) != cap(before) {
		t.Errorf("a string over a quarter of a block that did not fit took a block: %q", s)
	}
	if (&Strings{}).Copy(nil) != "" {
		t.Error("empty string")
	}
}
