package main

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyPos finds where a key is defined in a TOML file, for error messages:
// the line and column of its value (or of the key when the value is not on
// the line). table is the table path ("folder", "Lists/Go") or nil for the
// top level. It understands the subset of TOML a vmfs configuration uses:
// [a.b] / [a."b c"] headers and key = value lines. 0, 0 when not found.
func keyPos(data, key string, table ...string) (line, col int) {
	current := []string(nil)
	for i, l := range strings.Split(data, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "[[") {
			if end := strings.LastIndexByte(t, ']'); end > 0 {
				current = splitTableName(t[1:end])
			}
			continue
		}
		if !equalPath(current, table) {
			continue
		}
		k, _, ok := strings.Cut(t, "=")
		if !ok || strings.Trim(strings.TrimSpace(k), `"'`) != key {
			continue
		}
		c := strings.Index(l, "=") + 1
		for c < len(l) && (l[c] == ' ' || l[c] == '\t') {
			c++
		}
		return i + 1, c + 1
	}
	return 0, 0
}

func splitTableName(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; {
		if s[0] == '"' || s[0] == '\'' {
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return append(out, s)
			}
			out = append(out, s[1:end+1])
			s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s[end+2:]), "."))
			continue
		}
		part, rest, _ := strings.Cut(s, ".")
		out = append(out, strings.TrimSpace(part))
		s = strings.TrimSpace(rest)
	}
	return out
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// at formats "file:line:col: " for a key, or "file: " when not found.
func at(path, data, key string, table ...string) string {
	if l, c := keyPos(data, key, table...); l > 0 {
		return fmt.Sprintf("%s:%d:%d: ", path, l, c)
	}
	return path + ": "
}

var (
	topKeys    = []string{"maildir", "state", "linger", "trash", "dovecot_separator", "folder"}
	folderKeys = []string{"mailboxes", "query", "save", "dovecot_virtual"}
)

// unknownKey explains an undecoded key with the nearest valid one.
func unknownKey(path, data string, k toml.Key) error {
	name := k[len(k)-1]
	valid, table := topKeys, []string(nil)
	if len(k) >= 3 && k[0] == "folder" {
		valid, table = folderKeys, []string(k[:2])
	} else if len(k) == 2 && k[0] == "folder" {
		return fmt.Errorf("%s: folder %q must be a table: [folder.%q]", path, k[1], k[1])
	}
	msg := fmt.Sprintf("unknown key %q", name)
	if s := nearest(name, valid); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(valid, ", "))
	}
	if l, _ := keyPos(data, name, table...); l > 0 {
		line := strings.Split(data, "\n")[l-1]
		col := len(line) - len(strings.TrimLeft(line, " \t")) + 1
		return fmt.Errorf("%s:%d:%d: %s", path, l, col, msg)
	}
	return fmt.Errorf("%s: %s", path, msg)
}

// nearest returns the valid key closest to s by edit distance, if close.
func nearest(s string, valid []string) string {
	best, bestD := "", 1<<30
	for _, v := range valid {
		if d := editDistance(strings.ToLower(s), v); d < bestD {
			best, bestD = v, d
		}
	}
	if bestD <= 1+len(s)/3 {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
