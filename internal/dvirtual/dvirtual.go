// Package dvirtual reads Dovecot's dovecot-virtual files unchanged, with
// the rules of Dovecot's virtual-config.c: '#' in column 0 is a comment;
// one mailbox pattern per line; an indented line continues the search rule
// (pieces joined by a space; an empty rule is ALL); consecutive mailbox
// lines share the rule that follows them and a blank line closes a rule;
// prefixes '-' (exclude, applied to wildcard results only), '!' (the save
// mailbox; only one) and '+' (drop \Recent: accepted and ignored).
// Metadata filters ("/entry:value") are refused with a clear error.
package dvirtual

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"vmfs/internal/maildir"
	"vmfs/internal/query"
)

// Box is one mailbox line.
type Box struct {
	Name     string // with '/' as the hierarchy separator
	Negative bool   // '-': excluded from wildcard results
	Save     bool   // '!': messages saved into the virtual folder go here
	Rule     int    // index into Def.Rules
	Line     int
}

// Def is a parsed dovecot-virtual file.
type Def struct {
	Boxes []Box
	Rules []string // search programs; "" is ALL
}

// Error is a syntax error with its line, as Dovecot reports them.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads a dovecot-virtual file. sep is the hierarchy separator its
// mailbox names use (Dovecot's namespace separator: '.' for Maildir++,
// '/' otherwise); names are returned with '/'.
func Parse(r io.Reader, file string, sep byte) (*Def, error) {
	d := &Def{}
	var rule strings.Builder
	pending := 0 // index of the first box without a rule
	haveRule := false
	save := false
	closeRule := func(line int) error {
		if pending == len(d.Boxes) {
			return nil
		}
		text := strings.TrimSpace(rule.String())
		if _, err := query.Parse(text); err != nil {
			return &Error{file, line, "previous search rule is invalid: " + err.Error()}
		}
		d.Rules = append(d.Rules, text)
		for i := pending; i < len(d.Boxes); i++ {
			d.Boxes[i].Rule = len(d.Rules) - 1
		}
		pending = len(d.Boxes)
		rule.Reset()
		haveRule = false
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case line == "":
			if err := closeRule(n); err != nil {
				return nil, err
			}
			continue
		case line[0] == ' ' || line[0] == '\t':
			if pending == len(d.Boxes) {
				return nil, &Error{file, n, "search rule without a mailbox"}
			}
			rule.WriteByte(' ')
			rule.WriteString(strings.TrimLeft(line, " \t"))
			haveRule = true
			continue
		}
		if haveRule {
			if err := closeRule(n); err != nil {
				return nil, err
			}
		}
		if !utf8.ValidString(line) {
			return nil, &Error{file, n, "mailbox name is not UTF-8"}
		}
		b := Box{Line: n}
		name := line
		switch name[0] {
		case '+':
			name = name[1:] // \Recent handling: vmfs has no \Recent to drop
		case '-':
			name, b.Negative = name[1:], true
		case '!':
			if save {
				return nil, &Error{file, n, "multiple save mailboxes defined"}
			}
			name, b.Save, save = name[1:], true, true
		}
		if strings.HasPrefix(name, "/") {
			return nil, &Error{file, n, "metadata filters (/entry:value) are not supported by vmfs"}
		}
		if name == "" {
			return nil, &Error{file, n, "empty mailbox name"}
		}
		if sep != '/' {
			name = strings.ReplaceAll(name, string(sep), "/")
		}
		if strings.EqualFold(name, maildir.Inbox) {
			name = maildir.Inbox
		}
		if b.Save && maildir.HasWildcards(name) {
			return nil, &Error{file, n, "the save mailbox cannot be a wildcard"}
		}
		b.Name = name
		d.Boxes = append(d.Boxes, b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := closeRule(n); err != nil {
		return nil, err
	}
	positive := false
	for _, b := range d.Boxes {
		positive = positive || !b.Negative
	}
	if !positive {
		return nil, &Error{file, n, "no mailboxes defined"}
	}
	return d, nil
}

// SaveMailbox returns the '!' mailbox, or "".
func (d *Def) SaveMailbox() string {
	for _, b := range d.Boxes {
		if b.Save {
			return b.Name
		}
	}
	return ""
}

// Assign maps each existing mailbox the definition covers to the index of
// its rule, as Dovecot expands it: an explicitly named mailbox keeps its
// own rule; otherwise the first matching wildcard decides, unless a
// negative pattern excludes the mailbox.
func (d *Def) Assign(mailboxes []string) map[string]int {
	out := map[string]int{}
	explicit := map[string]bool{}
	for _, b := range d.Boxes {
		if !b.Negative && !maildir.HasWildcards(b.Name) {
			explicit[b.Name] = true
		}
	}
	for _, mb := range mailboxes {
		for _, b := range d.Boxes {
			if !b.Negative && !maildir.HasWildcards(b.Name) && b.Name == mb {
				out[mb] = b.Rule
				break
			}
		}
		if _, ok := out[mb]; ok || explicit[mb] {
			continue
		}
		excluded := false
		for _, b := range d.Boxes {
			if b.Negative && maildir.MatchPattern(b.Name, mb) {
				excluded = true
			}
		}
		if excluded {
			continue
		}
		for _, b := range d.Boxes {
			if !b.Negative && maildir.HasWildcards(b.Name) && maildir.MatchPattern(b.Name, mb) {
				out[mb] = b.Rule
				break
			}
		}
	}
	return out
}
