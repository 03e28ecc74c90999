package maildir

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in, base, flags, extra string
		info, bad              bool
	}{
		{in: "1.a.host:2,SF", base: "1.a.host", flags: "FS", info: true},
		{in: "1.a.host,U=42:2,S", base: "1.a.host,U=42", flags: "S", info: true},
		{in: "1.a.host", base: "1.a.host"},
		{in: "1.a.host:2,", base: "1.a.host", info: true},
		{in: "1.M2P3.h,S=1234,W=1260:2,Sab", base: "1.M2P3.h,S=1234,W=1260", flags: "Sab", info: true},
		{in: "1.x:2,SaZ,foo=bar", base: "1.x", flags: "SZa", extra: ",foo=bar", info: true},
		{in: "1.x:2,SS", base: "1.x", flags: "S", info: true},
		{in: "1.x:2,S!", base: "1.x", flags: "!S", info: true},
		{in: "1.a.host:1,exp", bad: true},
		{in: "1:2:2,S", bad: true},
		{in: ".hidden", bad: true},
		{in: "", bad: true},
		{in: ":2,S", bad: true},
	} {
		n, err := ParseName(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseName(%q) err = %v", tc.in, err)
			continue
		}
		if tc.bad {
			continue
		}
		if n.Base != tc.base || n.Flags != tc.flags || n.Extra != tc.extra || n.HasInfo != tc.info {
			t.Errorf("ParseName(%q) = %+v", tc.in, n)
		}
		if BaseOf(tc.in) != tc.base {
			t.Errorf("BaseOf(%q) = %q", tc.in, BaseOf(tc.in))
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	for _, in := range []string{"1.a.host:2,FS", "1.a.host", "1.a.host:2,", "1.x,U=7:2,DRSab,foo", "1.x:2,S,a,b"} {
		n, err := ParseName(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.String(); got != in {
			t.Errorf("round trip %q -> %q", in, got)
		}
	}
	n := Name{Base: "1.x,U=5", Extra: ",z"}
	n.Flags = SetFlags("Sa", "F", "a")
	if got := n.String(); got != "1.x,U=5:2,FS,z" {
		t.Errorf("SetFlags name = %q", got)
	}
}

func TestFields(t *testing.T) {
	base := "1.M2P3.h,S=1234,W=1260,U=9"
	if Size(base) != 1234 || VSize(base) != 1260 {
		t.Errorf("sizes %d %d", Size(base), VSize(base))
	}
	if v, ok := Field(base, 'U'); !ok || v != "9" {
		t.Errorf("U = %q %v", v, ok)
	}
	if Size("1.x") != -1 || Size("1.x,S=abc") != -1 {
		t.Error("missing/garbage size should be -1")
	}
	if got := string(KeywordLetters("SbFa")); got != "ab" {
		t.Errorf("KeywordLetters = %q", got)
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"1.a.host:2,SF", "1.x,U=7:2,DRSab,foo", "a:1,b", "x:2,", ".x", "a\x00b:2,S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		out := n.String()
		n2, err := ParseName(out)
		if err != nil {
			t.Fatalf("formatted name %q of %q does not parse: %v", out, s, err)
		}
		if n2 != n && !(n.Flags == "" && n.Extra == "") {
			t.Fatalf("round trip %q: %+v != %+v", s, n2, n)
		}
		if strings.Contains(n.Base, ":") || n.Base != BaseOf(s) {
			t.Fatalf("base %q of %q", n.Base, s)
		}
	})
}
