package query

import (
	"bytes"
	"sort"
	"strings"
	"time"

	"vmfs/internal/maildir"
)

// Msg is what a query can look at of one backend message. The engine fills
// it from the index (and opens the file for Text); tests fill it from
// files. Fields a query does not need (see Needs) may be left empty.
type Msg struct {
	Mailbox  string    // backend mailbox name
	Flags    string    // Maildir flag letters (standard and keyword letters)
	Keywords []string  // keyword names (Dovecot keyword letters resolved)
	Recent   bool      // the file is in new/
	Received time.Time // file mtime
	Size     int64     // file size in bytes
	Sent     time.Time // Date header, in its own time zone; zero if none
	// Headers holds decoded values by lower-case field name.
	Headers map[string][]string
	// ID, InReplyTo and References are the message ids for threading.
	ID         string
	References []string
	// Text streams the message's decoded text to fn: the header fields
	// as "Name: value" lines when headers is true, then the decoded text
	// parts of the body. fn returns true to stop early.
	Text func(headers bool, fn func(string) (stop bool)) error
}

// Needs says what of a message a query looks at.
type Needs struct {
	Headers     []string // decoded header fields, lower case
	Sent        bool     // the Date header
	Body        bool     // body text (BODY)
	AllHeaders  bool     // every header field as text (TEXT)
	Threads     bool     // Message-ID, In-Reply-To, References, and whole-set evaluation
	TimeRelated bool     // the result changes as time passes (YOUNGER, OLDER)
	// Stat: the received date or the size (BEFORE, ON, SINCE, YOUNGER,
	// OLDER, LARGER, SMALLER), which come from the file's mtime and size.
	Stat bool
	// Intervals are the YOUNGER/OLDER arguments: a message's result can
	// change only when its age crosses one of them.
	Intervals []time.Duration
}

// FlagsOnly reports whether the query can be answered from the file name,
// size and mtime alone, without opening the message.
func (n Needs) FlagsOnly() bool {
	return len(n.Headers) == 0 && !n.Sent && !n.Body && !n.AllHeaders && !n.Threads
}

// Query is a compiled query.
type Query struct {
	Root  *Node
	needs Needs
	src   string
}

// Compile parses and compiles a query.
func Compile(s string) (*Query, error) {
	root, err := Parse(s)
	if err != nil {
		return nil, err
	}
	qu := &Query{Root: root, src: s}
	hdr := map[string]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		n.folded = Fold(n.Str)
		switch n.Op {
		case OpHeader, OpAddress:
			hdr[n.Field] = true
		case OpBody:
			qu.needs.Body = true
		case OpText:
			qu.needs.Body, qu.needs.AllHeaders = true, true
		case OpSentBefore, OpSentOn, OpSentSince:
			qu.needs.Sent = true
		case OpYounger, OpOlder:
			qu.needs.TimeRelated, qu.needs.Stat = true, true
			qu.needs.Intervals = append(qu.needs.Intervals, time.Duration(n.N)*time.Second)
		case OpBefore, OpOn, OpSince, OpLarger, OpSmaller:
			qu.needs.Stat = true
		case OpInThread:
			qu.needs.Threads = true
		}
		for _, k := range n.Kids {
			walk(k)
		}
	}
	walk(root)
	for h := range hdr {
		qu.needs.Headers = append(qu.needs.Headers, h)
	}
	sort.Strings(qu.needs.Headers)
	return qu, nil
}

// MustCompile is Compile for queries known to be valid; it panics on error.
func MustCompile(s string) *Query {
	q, err := Compile(s)
	if err != nil {
		panic(err)
	}
	return q
}

// String returns the query text it was compiled from.
func (q *Query) String() string { return q.src }

// Needs reports what the query looks at.
func (q *Query) Needs() Needs { return q.needs }

// Match evaluates the query on one message at time now. INTHREAD keys see
// only the message itself; use MatchAll to evaluate threads over a set.
func (q *Query) Match(m *Msg, now time.Time) bool {
	e := evaluator{now: now}
	return e.eval(q.Root, m, -1)
}

// MatchAll evaluates the query on every message of a set; INTHREAD REFS
// sees the threads that the set's Message-ID, In-Reply-To and References
// fields form.
func (q *Query) MatchAll(ms []*Msg, now time.Time) []bool {
	e := evaluator{now: now}
	if q.needs.Threads {
		e.groups = threadGroups(ms)
		e.thread = map[*Node]map[int]bool{}
		e.prepareThreads(q.Root, ms)
	}
	out := make([]bool, len(ms))
	for i, m := range ms {
		out[i] = e.eval(q.Root, m, i)
	}
	return out
}

type evaluator struct {
	now    time.Time
	groups []int                  // thread group of each message of the set
	thread map[*Node]map[int]bool // INTHREAD node → groups with a match
}

// prepareThreads computes, bottom-up, which thread groups each INTHREAD
// node selects.
func (e *evaluator) prepareThreads(n *Node, ms []*Msg) {
	for _, k := range n.Kids {
		e.prepareThreads(k, ms)
	}
	if n.Op != OpInThread {
		return
	}
	sel := map[int]bool{}
	for i, m := range ms {
		if e.eval(n.Kids[0], m, i) {
			sel[e.groups[i]] = true
		}
	}
	e.thread[n] = sel
}

func (e *evaluator) eval(n *Node, m *Msg, idx int) bool {
	switch n.Op {
	case OpAll:
		return true
	case OpAnd:
		for _, k := range n.Kids {
			if !e.eval(k, m, idx) {
				return false
			}
		}
		return true
	case OpOr:
		return e.eval(n.Kids[0], m, idx) || e.eval(n.Kids[1], m, idx)
	case OpNot:
		return !e.eval(n.Kids[0], m, idx)
	case OpFlag:
		return strings.Contains(m.Flags, n.Str)
	case OpRecent:
		return m.Recent
	case OpKeyword:
		for _, k := range m.Keywords {
			if strings.EqualFold(k, n.Str) {
				return true
			}
		}
		return false
	case OpHeader, OpAddress:
		return anyContains(m.Headers[n.Field], n.folded)
	case OpBody, OpText:
		return textContains(m, n.Op == OpText, n.folded)
	case OpBefore:
		return day(m.Received.Local()).Before(n.Time)
	case OpOn:
		return day(m.Received.Local()).Equal(n.Time)
	case OpSince:
		return !day(m.Received.Local()).Before(n.Time)
	case OpSentBefore, OpSentOn, OpSentSince:
		// The sender's own wall-clock date, as RFC 3501 asks. Like
		// Dovecot, a message without a valid Date counts as sent at the
		// epoch.
		d := day(m.Sent)
		if m.Sent.IsZero() {
			d = day(time.Unix(0, 0).UTC())
		}
		switch n.Op {
		case OpSentBefore:
			return d.Before(n.Time)
		case OpSentOn:
			return d.Equal(n.Time)
		}
		return !d.Before(n.Time)
	case OpYounger:
		return !m.Received.Before(e.now.Add(-time.Duration(n.N) * time.Second))
	case OpOlder:
		return !m.Received.After(e.now.Add(-time.Duration(n.N) * time.Second))
	case OpLarger:
		return m.Size > n.N
	case OpSmaller:
		return m.Size < n.N
	case OpMailbox:
		return maildir.MatchPattern(n.Str, m.Mailbox)
	case OpInThread:
		if idx < 0 || e.thread == nil {
			return e.eval(n.Kids[0], m, idx)
		}
		return e.thread[n][e.groups[idx]]
	}
	return false
}

// day returns midnight UTC of t's calendar date in t's own location.
func day(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

// anyContains: the header is present and one of its values contains the
// needle (an empty needle asks for presence only).
func anyContains(vals []string, folded string) bool {
	for _, v := range vals {
		if contains(v, folded) {
			return true
		}
	}
	return false
}

// textContains streams the message's text and looks for the needle across
// chunk boundaries, keeping only a needle-sized tail between chunks.
func textContains(m *Msg, headers bool, folded string) bool {
	if folded == "" {
		return true
	}
	if m.Text == nil {
		return false
	}
	found := false
	needle := []byte(folded)
	f := folders.Get().(*folder)
	defer folders.Put(f)
	buf := f.text[:0] // the tail of the last chunk, then this one, folded
	defer func() { f.text = buf[:0] }()
	m.Text(headers, func(chunk string) bool {
		buf = f.appendFold(buf, chunk)
		if bytes.Contains(buf, needle) {
			found = true
			return true
		}
		if keep := len(needle) - 1; len(buf) > keep {
			buf = buf[:copy(buf, buf[len(buf)-keep:])]
		}
		return false
	})
	return found
}

// threadGroups assigns every message of a set to a thread: messages linked
// by Message-ID, In-Reply-To or References share a group.
func threadGroups(ms []*Msg) []int {
	parent := make([]int, len(ms))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		if ra, rb := find(a), find(b); ra != rb {
			parent[ra] = rb
		}
	}
	owner := map[string]int{} // message id → first message that names it
	link := func(i int, id string) {
		if id == "" {
			return
		}
		if j, ok := owner[id]; ok {
			union(i, j)
		} else {
			owner[id] = i
		}
	}
	for i, m := range ms {
		link(i, m.ID)
		for _, r := range m.References {
			link(i, r)
		}
	}
	g := make([]int, len(ms))
	for i := range g {
		g[i] = find(i)
	}
	return g
}
