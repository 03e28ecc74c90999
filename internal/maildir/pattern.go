package maildir

import "strings"

// MatchPattern reports whether mailbox name matches pattern: '*' matches
// any run of characters including '/', '%' any run excluding '/'. Names
// compare case-sensitively, except the "INBOX" at the start of a name,
// which any case of the pattern matches, as in Dovecot's imap_match
// ("inbox*", "inbo%" and "Inbox/%" match INBOX and its children).
func MatchPattern(pattern, name string) bool {
	name = normInbox(name)
	ci := 0 // how many leading bytes of name compare case-insensitively
	if strings.HasPrefix(name, Inbox) && (len(name) == len(Inbox) || name[len(Inbox)] == '/') {
		ci = len(Inbox)
	}
	return glob(pattern, name, 0, ci)
}

// HasWildcards reports whether a mailbox pattern contains '*' or '%'.
func HasWildcards(pattern string) bool { return strings.ContainsAny(pattern, "*%") }

func normInbox(s string) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], Inbox) && (len(s) == 5 || s[5] == '/') {
		return Inbox + s[5:]
	}
	return s
}

// glob matches p against s[i:]; bytes of s before ci compare without
// regard to ASCII case. '%' backtracks only within one hierarchy level.
func glob(p, s string, i, ci int) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for j := i; j <= len(s); j++ {
				if glob(p, s, j, ci) {
					return true
				}
			}
			return false
		case '%':
			p = p[1:]
			for j := i; j <= len(s); j++ {
				if glob(p, s, j, ci) {
					return true
				}
				if j < len(s) && s[j] == '/' {
					return false
				}
			}
			return false
		default:
			if i >= len(s) || !(s[i] == p[0] || i < ci && lower(s[i]) == lower(p[0])) {
				return false
			}
			p, i = p[1:], i+1
		}
	}
	return i == len(s)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
