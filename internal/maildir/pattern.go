package maildir

import "strings"

// MatchPattern reports whether mailbox name matches pattern: '*' matches
// any run of characters including '/', '%' any run excluding '/'. Names
// compare case-sensitively, except that an "INBOX" prefix component is
// case-insensitive on both sides, as in IMAP.
func MatchPattern(pattern, name string) bool {
	return glob(normInbox(pattern), normInbox(name))
}

// HasWildcards reports whether a mailbox pattern contains '*' or '%'.
func HasWildcards(pattern string) bool { return strings.ContainsAny(pattern, "*%") }

func normInbox(s string) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], Inbox) && (len(s) == 5 || s[5] == '/') {
		return Inbox + s[5:]
	}
	return s
}

func glob(p, s string) bool {
	// Iterative matcher with backtracking to the last star; '%' backtracks
	// only within one hierarchy level.
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(p, s[i:]) {
					return true
				}
			}
			return false
		case '%':
			p = p[1:]
			for i := 0; i <= len(s); i++ {
				if glob(p, s[i:]) {
					return true
				}
				if i < len(s) && s[i] == '/' {
					return false
				}
			}
			return false
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return s == ""
}
