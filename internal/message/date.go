package message

import (
	"net/mail"
	"strings"
	"time"
)

var dateLayouts = []string{
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04 -0700",
	"2 Jan 06 15:04:05 -0700",
	"2 Jan 06 15:04 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04",
	"2 Jan 2006",
	"Jan 2 15:04:05 2006",
	"Jan 2 15:04:05 MST 2006",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
}

// ParseDate parses a Date header leniently: RFC 5322 dates, obsolete forms
// (two-digit years, named zones, missing seconds), comments, a missing day
// name and a few common non-standard layouts. ok is false when nothing fits.
func ParseDate(s string) (t time.Time, ok bool) {
	s = strings.TrimSpace(stripComments(s))
	if s == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	// Drop a leading day name ("Mon," or "Mon").
	if i := strings.IndexAny(s, ", "); i > 0 && i <= 9 && isAlpha(s[:i]) {
		s = strings.TrimLeft(s[i:], ", ")
	}
	s = strings.Join(strings.Fields(s), " ")
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	// A trailing unknown zone name: parse without it, as UTC.
	if i := strings.LastIndexByte(s, ' '); i > 0 {
		for _, l := range dateLayouts[:4] {
			l = strings.TrimSuffix(l, " -0700")
			if t, err := time.Parse(l, s[:i]); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

func isAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}
