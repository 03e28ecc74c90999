package query

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold maps s to the form in which i;unicode-casemap compares strings, as
// Dovecot implements it (uni_utf8_to_decomposed_titlecase): every
// character to its simple titlecase mapping, then decomposed. Substring
// matching on folded strings is then case-insensitive for ASCII, accented
// Latin, Greek and Cyrillic. Like Dovecot, only simple (one-to-one) case
// mappings are used, so "ß" does not match "SS".
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'a' <= c && c <= 'z' {
			f := folders.Get().(*folder)
			defer folders.Put(f)
			return string(f.appendFold(make([]byte, 0, len(s)+len(s)/8), s))
		}
	}
	return s // already folded
}

// appendFold appends Fold(s) to dst. ASCII is folded byte by byte; each
// run of other characters on its own. That is the whole string's fold:
// case mappings are one character at a time, and NFKD reorders only
// non-starters, which an ASCII character (a starter that does not
// decompose) ends. So a body that is mostly ASCII costs next to nothing
// (a BODY search spent 58 % of its time folding: every chunk with an
// accent went through the Unicode tables whole).
func (f *folder) appendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		j := i + 1
		for j < len(s) && s[j] >= utf8.RuneSelf {
			j++
		}
		dst = f.foldRun(dst, s[i:j])
		i = j
	}
	return dst
}

// folder folds strings, keeping its scratch space and a cache of single
// characters' folds from one to the next (folders is a pool of them).
type folder struct {
	title, decomposed []byte
	text              []byte // textContains's folded text
	cache             [foldCacheSize]foldEntry
}

const foldCacheSize = 1024 // entries, direct-mapped by character

// foldEntry is the fold of character r: b[:n], or n = notSimple when the
// fold begins with a non-starter (r is a combining mark, which canonical
// ordering may move before the marks of the character it follows), or is
// too long to keep.
type foldEntry struct {
	r rune
	n uint8
	b [11]byte
}

const notSimple = 0xff

var folders = sync.Pool{New: func() any { return new(folder) }}

// foldRun appends the fold of a run of non-ASCII characters: each to its
// simple titlecase mapping, decomposed, and title-cased once more (a
// compatibility decomposition can produce lower-case letters: "ﬁ" →
// "fi"). A run of characters whose folds begin with a starter is the
// concatenation of their folds, kept in the cache: NFKD orders only
// adjacent non-starters ("é" folds to "E" and U+0301, and the next
// character's fold begins with a starter, which nothing crosses). A run
// with a combining mark of its own is folded whole.
func (f *folder) foldRun(dst []byte, run string) []byte {
	start := len(dst)
	for _, r := range run {
		e := &f.cache[uint32(r)%foldCacheSize]
		if e.r != r || e.n == 0 {
			f.fill(e, r)
		}
		if e.n == notSimple {
			return f.foldWhole(dst[:start], run)
		}
		dst = append(dst, e.b[:e.n]...)
	}
	return dst
}

// fill computes the cache entry of r.
func (f *folder) fill(e *foldEntry, r rune) {
	var one [utf8.UTFMax]byte
	d := f.foldWhole(f.title[:0], string(utf8.AppendRune(one[:0], r)))
	f.title = d[:0]
	e.r, e.n = r, notSimple
	if len(d) == 0 || len(d) > len(e.b) {
		return
	}
	if norm.NFKD.Properties(d).CCC() != 0 {
		return
	}
	e.n = uint8(copy(e.b[:], d))
}

// foldWhole appends the fold of s computed whole.
func (f *folder) foldWhole(dst []byte, s string) []byte {
	t := f.decomposed[:0]
	for _, r := range s {
		t = utf8.AppendRune(t, unicode.ToTitle(r))
	}
	d := norm.NFKD.Append(t[len(t):], t...) // after t in the same buffer
	for len(d) > 0 {
		r, n := utf8.DecodeRune(d)
		dst = utf8.AppendRune(dst, unicode.ToTitle(r))
		d = d[n:]
	}
	f.decomposed = t[:0]
	return dst
}

// contains reports whether the folded haystack of s contains the already
// folded needle.
func contains(s, foldedNeedle string) bool {
	if foldedNeedle == "" {
		return true
	}
	return strings.Contains(Fold(s), foldedNeedle)
}
