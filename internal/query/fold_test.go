package query

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// foldWhole is the fold of a string taken whole (Dovecot's definition,
// as Fold computed it before it went run by run).
func foldWhole(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(unicode.ToTitle(r))
	}
	d := norm.NFKD.String(b.String())
	b.Reset()
	for _, r := range d {
		b.WriteRune(unicode.ToTitle(r))
	}
	return b.String()
}

var foldSeeds = []string{"", "abc", "ABC", "Café", "Cafe\u0301", "e\u0301\u0327x", "a\u0327\u0301", "ﬁnance",
	"Straße", "ΑΘΗΝΑ αθηνα", "Москва", "mixed Ünïcödé and ascii ", "\xff\xfe bad utf-8 \xc3", "x\u0345\u0301y",
	"한국어 텍스트", "ǅemal", "Ⅻ ①", strings.Repeat("é", 300),
	"\u0100\u0500\u0100 \u0500", "ǆ\u0301ǅ"} // the first two share a cache slot

func TestFoldIsFoldWhole(t *testing.T) {
	for _, s := range foldSeeds {
		if got, want := Fold(s), foldWhole(s); got != want {
			t.Errorf("Fold(%q) = %q, want %q", s, got, want)
		}
	}
}

// FuzzFold: folding run by run is folding the whole string.
func FuzzFold(f *testing.F) {
	for _, s := range foldSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Fold(s), foldWhole(s); got != want {
			t.Fatalf("Fold(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestTextContainsAcrossChunks: a needle is found wherever the chunks
// split the text (between characters: message.TextOf carries an
// incomplete one over to the next chunk).
func TestTextContainsAcrossChunks(t *testing.T) {
	text := "Grüße aus Köln: das Straßenfest beginnt um acht Uhr. Ünïcödé ﬁnale."
	for _, needle := range []string{"straßenfest", "KÖLN", "uNICODE", "finale", "ACHT UHR", "grusse"} {
		want := strings.Contains(foldWhole(text), foldWhole(needle))
		for size := 1; size <= len(text); size++ {
			m := &Msg{Text: func(headers bool, fn func(string) bool) error {
				for i := 0; i < len(text); {
					j := min(i+size, len(text))
					for j < len(text) && !utf8.RuneStart(text[j]) {
						j++
					}
					if fn(text[i:j]) {
						return nil
					}
					i = j
				}
				return nil
			}}
			if got := textContains(m, false, Fold(needle)); got != want {
				t.Fatalf("needle %q in chunks of %d: %v, want %v", needle, size, got, want)
			}
		}
	}
}
