package vsync

import (
	"testing"

	"vmfs/internal/maildir"
)

// flagsOf is ParseName's flags, faster for normal names.
func FuzzFlagsOf(f *testing.F) {
	for _, s := range []string{"1.a.host:2,S", "1.a.host:2,FS", "1.a.host:2,SF", "1.a.host", "1.a.host:2,",
		"1.a.host:2,S,X=1", "a:b:2,S", ".x:2,S", "a/b:2,S", "a\x00:2,S", ":2,S", "1.a:2,Sa", "1.a:2,aS", "1.a:1,S",
		"1.a:2,S S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, _ := maildir.ParseName(s)
		if got := flagsOf(s); got != n.Flags {
			t.Fatalf("flagsOf(%q) = %q, ParseName has %q", s, got, n.Flags)
		}
	})
}
