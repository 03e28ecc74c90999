// Package query is vmfs's search language: IMAP SEARCH (RFC 3501/9051
// §6.4.4) with Dovecot's extensions (YOUNGER, OLDER, MAILBOX, INTHREAD).
// Parse turns a query into an AST with positions; a compiled Query matches
// messages and reports which parts of a message it needs, so that the
// engine reads a body only for BODY/TEXT queries.
package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of a Node.
type Op int

// Node kinds.
const (
	OpAll        Op = iota
	OpAnd           // Kids: all must match
	OpOr            // Kids[0] or Kids[1]
	OpNot           // not Kids[0]
	OpFlag          // Str: a Maildir flag letter
	OpRecent        // in new/
	OpKeyword       // Str: keyword name
	OpHeader        // Field: header name, Str: substring ("" = present)
	OpAddress       // FROM/TO/CC/BCC: Field, Str, matched on normalised addresses
	OpBody          // Str in decoded body text
	OpText          // Str in headers or body text
	OpBefore        // received date < Time (day granularity)
	OpOn            // received date = Time
	OpSince         // received date >= Time
	OpSentBefore    // Date header
	OpSentOn        //
	OpSentSince     //
	OpYounger       // received within N seconds of now
	OpOlder         // received at least N seconds ago
	OpLarger        // size > N
	OpSmaller       // size < N
	OpMailbox       // Str: mailbox pattern
	OpInThread      // Kids[0]: every message of a thread with a match
)

// Node is one search key of a parsed query.
type Node struct {
	Pos   int // 1-based position of the key in the query text
	Op    Op
	Str   string
	Field string
	Time  time.Time // a date: midnight UTC of that day
	N     int64
	Kids  []*Node

	folded string // Str, case-folded, for the matchers
}

// Error is a query syntax error.
type Error struct {
	Pos int    // 1-based position in the query
	Msg string // what was expected
}

func (e *Error) Error() string { return fmt.Sprintf("query: at %d: %s", e.Pos, e.Msg) }

type token struct {
	pos    int // 1-based
	text   string
	quoted bool
	kind   byte // 'a' atom or string, '(' , ')', 0 end
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{pos: i + 1, text: string(c), kind: c})
			i++
		case c == '"':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, &Error{start + 1, "unterminated quoted string"}
				}
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{pos: start + 1, text: b.String(), quoted: true, kind: 'a'})
		default:
			start := i
			for i < len(s) && !strings.ContainsRune(" \t\r\n()\"", rune(s[i])) {
				i++
			}
			toks = append(toks, token{pos: start + 1, text: s[start:i], kind: 'a'})
		}
	}
	toks = append(toks, token{pos: len(s) + 1, kind: 0})
	return toks, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}

func describe(t token) string {
	if t.kind == 0 {
		return "the end of the query"
	}
	return strconv.Quote(t.text)
}

// Parse parses a query. An empty query is ALL.
func Parse(s string) (*Node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var kids []*Node
	for p.peek().kind != 0 {
		if p.peek().kind == ')' {
			return nil, &Error{p.peek().pos, "unbalanced \")\""}
		}
		n, err := p.key()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	switch len(kids) {
	case 0:
		return &Node{Pos: 1, Op: OpAll}, nil
	case 1:
		return kids[0], nil
	}
	return &Node{Pos: kids[0].Pos, Op: OpAnd, Kids: kids}, nil
}

var flagKeys = map[string]byte{
	"ANSWERED": 'R', "DELETED": 'T', "DRAFT": 'D', "FLAGGED": 'F', "SEEN": 'S',
}

var dateKeys = map[string]Op{
	"BEFORE": OpBefore, "ON": OpOn, "SINCE": OpSince,
	"SENTBEFORE": OpSentBefore, "SENTON": OpSentOn, "SENTSINCE": OpSentSince,
}

var addrKeys = map[string]bool{"FROM": true, "TO": true, "CC": true, "BCC": true}

func (p *parser) key() (*Node, error) {
	t := p.next()
	switch t.kind {
	case 0:
		return nil, &Error{t.pos, "expected a search key, got the end of the query"}
	case ')':
		return nil, &Error{t.pos, "expected a search key, got \")\""}
	case '(':
		var kids []*Node
		for p.peek().kind != ')' {
			if p.peek().kind == 0 {
				return nil, &Error{p.peek().pos, "expected \")\", got the end of the query"}
			}
			n, err := p.key()
			if err != nil {
				return nil, err
			}
			kids = append(kids, n)
		}
		p.next()
		if len(kids) == 0 {
			return nil, &Error{t.pos, "expected a search key inside \"()\""}
		}
		if len(kids) == 1 {
			return kids[0], nil
		}
		return &Node{Pos: t.pos, Op: OpAnd, Kids: kids}, nil
	}
	if t.quoted {
		return nil, &Error{t.pos, fmt.Sprintf("expected a search key, got the string %s", describe(t))}
	}
	k := strings.ToUpper(t.text)
	n := &Node{Pos: t.pos}
	if f, ok := flagKeys[k]; ok {
		n.Op, n.Str = OpFlag, string(f)
		return n, nil
	}
	if strings.HasPrefix(k, "UN") {
		if f, ok := flagKeys[k[2:]]; ok {
			return not(&Node{Pos: t.pos, Op: OpFlag, Str: string(f)}), nil
		}
	}
	if op, ok := dateKeys[k]; ok {
		d, err := p.date()
		if err != nil {
			return nil, err
		}
		n.Op, n.Time = op, d
		return n, nil
	}
	if addrKeys[k] {
		s, err := p.str("a string to search " + k + " for")
		if err != nil {
			return nil, err
		}
		n.Op, n.Field, n.Str = OpAddress, strings.ToLower(k), s
		return n, nil
	}
	switch k {
	case "ALL":
		n.Op = OpAll
	case "RECENT":
		n.Op = OpRecent
	case "NEW": // RECENT UNSEEN
		n.Op, n.Kids = OpAnd, []*Node{{Pos: t.pos, Op: OpRecent}, not(&Node{Pos: t.pos, Op: OpFlag, Str: "S"})}
	case "OLD":
		return not(&Node{Pos: t.pos, Op: OpRecent}), nil
	case "KEYWORD", "UNKEYWORD":
		s, err := p.atom("a keyword")
		if err != nil {
			return nil, err
		}
		n.Op, n.Str = OpKeyword, s
		if k == "UNKEYWORD" {
			return not(n), nil
		}
	case "SUBJECT":
		s, err := p.str("a string to search SUBJECT for")
		if err != nil {
			return nil, err
		}
		n.Op, n.Field, n.Str = OpHeader, "subject", s
	case "HEADER":
		f, err := p.str("a header field name")
		if err != nil {
			return nil, err
		}
		if f == "" || strings.ContainsAny(f, ": \t") {
			return nil, &Error{p.toks[p.i-1].pos, fmt.Sprintf("expected a header field name, got %q", f)}
		}
		s, err := p.str("a string to search header " + f + " for")
		if err != nil {
			return nil, err
		}
		n.Op, n.Field, n.Str = OpHeader, strings.ToLower(f), s
	case "BODY", "TEXT":
		s, err := p.str("a string to search " + k + " for")
		if err != nil {
			return nil, err
		}
		n.Op, n.Str = OpBody, s
		if k == "TEXT" {
			n.Op = OpText
		}
	case "YOUNGER", "OLDER", "LARGER", "SMALLER":
		v, err := p.number("a number of " + map[bool]string{true: "seconds", false: "bytes"}[k == "YOUNGER" || k == "OLDER"])
		if err != nil {
			return nil, err
		}
		n.N = v
		n.Op = map[string]Op{"YOUNGER": OpYounger, "OLDER": OpOlder, "LARGER": OpLarger, "SMALLER": OpSmaller}[k]
	case "MAILBOX", "X-MAILBOX":
		s, err := p.str("a mailbox name or pattern")
		if err != nil {
			return nil, err
		}
		n.Op, n.Str = OpMailbox, s
	case "NOT":
		x, err := p.key()
		if err != nil {
			return nil, err
		}
		return not(x), nil
	case "OR":
		a, err := p.key()
		if err != nil {
			return nil, err
		}
		b, err := p.key()
		if err != nil {
			return nil, err
		}
		n.Op, n.Kids = OpOr, []*Node{a, b}
	case "INTHREAD":
		alg := p.next()
		if alg.kind != 'a' || !strings.EqualFold(alg.text, "REFS") {
			return nil, &Error{alg.pos, fmt.Sprintf("expected the thread algorithm REFS after INTHREAD, got %s", describe(alg))}
		}
		x, err := p.key()
		if err != nil {
			return nil, err
		}
		n.Op, n.Kids = OpInThread, []*Node{x}
	default:
		return nil, &Error{t.pos, fmt.Sprintf("expected a search key, got %s", describe(t))}
	}
	return n, nil
}

func not(x *Node) *Node { return &Node{Pos: x.Pos, Op: OpNot, Kids: []*Node{x}} }

func (p *parser) str(what string) (string, error) {
	t := p.next()
	if t.kind != 'a' {
		return "", &Error{t.pos, fmt.Sprintf("expected %s, got %s", what, describe(t))}
	}
	return t.text, nil
}

func (p *parser) atom(what string) (string, error) {
	t := p.next()
	if t.kind != 'a' || t.text == "" {
		return "", &Error{t.pos, fmt.Sprintf("expected %s, got %s", what, describe(t))}
	}
	return t.text, nil
}

func (p *parser) number(what string) (int64, error) {
	t := p.next()
	v, err := strconv.ParseInt(t.text, 10, 64)
	if t.kind != 'a' || err != nil || v < 0 {
		return 0, &Error{t.pos, fmt.Sprintf("expected %s, got %s", what, describe(t))}
	}
	return v, nil
}

func (p *parser) date() (time.Time, error) {
	t := p.next()
	d, ok := ParseDate(t.text)
	if t.kind != 'a' || !ok {
		return time.Time{}, &Error{t.pos, fmt.Sprintf("expected a date like 1-Feb-2024, got %s", describe(t))}
	}
	return d, nil
}

var months = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// ParseDate parses an IMAP search date, d-Mon-yyyy or dd-Mon-yyyy, as
// midnight UTC of that day.
func ParseDate(s string) (time.Time, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) < 1 || len(parts[0]) > 2 || len(parts[2]) != 4 {
		return time.Time{}, false
	}
	day, err1 := strconv.Atoi(parts[0])
	year, err2 := strconv.Atoi(parts[2])
	mon := -1
	for i, m := range months {
		if strings.EqualFold(parts[1], m) {
			mon = i
		}
	}
	if err1 != nil || err2 != nil || mon < 0 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	d := time.Date(year, time.Month(mon+1), day, 0, 0, 0, 0, time.UTC)
	if d.Day() != day {
		return time.Time{}, false // 31-Feb-2024
	}
	return d, true
}

// String formats the node back as a query (normalised: upper-case keys,
// quoted strings, explicit parentheses).
func (n *Node) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

// q quotes s as an IMAP quoted string: only '"' and '\\' are escaped.
func q(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (n *Node) write(b *strings.Builder) {
	date := func(k string) {
		fmt.Fprintf(b, "%s %d-%s-%04d", k, n.Time.Day(), n.Time.Month().String()[:3], n.Time.Year())
	}
	switch n.Op {
	case OpAll:
		b.WriteString("ALL")
	case OpAnd:
		b.WriteString("(")
		for i, k := range n.Kids {
			if i > 0 {
				b.WriteString(" ")
			}
			k.write(b)
		}
		b.WriteString(")")
	case OpOr:
		b.WriteString("OR ")
		n.Kids[0].write(b)
		b.WriteString(" ")
		n.Kids[1].write(b)
	case OpNot:
		b.WriteString("NOT ")
		n.Kids[0].write(b)
	case OpFlag:
		for k, f := range flagKeys {
			if string(f) == n.Str {
				b.WriteString(k)
			}
		}
	case OpRecent:
		b.WriteString("RECENT")
	case OpKeyword:
		b.WriteString("KEYWORD " + n.Str)
	case OpHeader:
		if n.Field == "subject" {
			b.WriteString("SUBJECT " + q(n.Str))
		} else {
			b.WriteString("HEADER " + q(n.Field) + " " + q(n.Str))
		}
	case OpAddress:
		b.WriteString(strings.ToUpper(n.Field) + " " + q(n.Str))
	case OpBody:
		b.WriteString("BODY " + q(n.Str))
	case OpText:
		b.WriteString("TEXT " + q(n.Str))
	case OpBefore:
		date("BEFORE")
	case OpOn:
		date("ON")
	case OpSince:
		date("SINCE")
	case OpSentBefore:
		date("SENTBEFORE")
	case OpSentOn:
		date("SENTON")
	case OpSentSince:
		date("SENTSINCE")
	case OpYounger:
		fmt.Fprintf(b, "YOUNGER %d", n.N)
	case OpOlder:
		fmt.Fprintf(b, "OLDER %d", n.N)
	case OpLarger:
		fmt.Fprintf(b, "LARGER %d", n.N)
	case OpSmaller:
		fmt.Fprintf(b, "SMALLER %d", n.N)
	case OpMailbox:
		b.WriteString("MAILBOX " + q(n.Str))
	case OpInThread:
		b.WriteString("INTHREAD REFS ")
		n.Kids[0].write(b)
	}
}
