package query

import (
	"strings"
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
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return asciiUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(unicode.ToTitle(r))
	}
	d := norm.NFKD.String(b.String())
	// A compatibility decomposition can produce lower-case letters
	// ("ﬁ" → "fi"): title-case once more.
	b.Reset()
	for _, r := range d {
		b.WriteRune(unicode.ToTitle(r))
	}
	return b.String()
}

func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'a' && c <= 'z' {
					b[j] = c - 32
				}
			}
			return string(b)
		}
	}
	return s
}

// contains reports whether the folded haystack of s contains the already
// folded needle.
func contains(s, foldedNeedle string) bool {
	if foldedNeedle == "" {
		return true
	}
	return strings.Contains(Fold(s), foldedNeedle)
}
