package vsync

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"syscall"
	"time"

	"vmfs/internal/maildir"
	"vmfs/internal/query"
)

// SearchHit is a backend message that a search found.
type SearchHit struct {
	Mailbox string `json:"mailbox"`
	Path    string `json:"path"`
}

// ErrNotIndexed is returned by Search for a query that needs what the
// index does not hold (message text, or a header no folder asks for).
var ErrNotIndexed = errors.New("the index does not hold what the query needs")

// Search evaluates q over every backend message of the index (vmfs
// search), from the index alone: no message file is read. A message whose
// size and date were never read is stat()ed when q needs them. On an
// index opened for inspection (a stopped mount) it answers as of the
// last mount.
func (e *Engine) Search(q *query.Query, now time.Time) ([]SearchHit, error) {
	e.lockOpAny()
	defer e.op.Unlock()
	n := q.Needs()
	switch {
	case n.Body || n.AllHeaders:
		return nil, fmt.Errorf("%w: message text", ErrNotIndexed)
	case n.Sent && !e.needs.Sent:
		return nil, fmt.Errorf("%w: the Date header", ErrNotIndexed)
	case n.Threads && !e.needs.Threads:
		return nil, fmt.Errorf("%w: threads", ErrNotIndexed)
	}
	for _, h := range n.Headers {
		if !slices.Contains(e.needs.Headers, h) {
			return nil, fmt.Errorf("%w: the %s header", ErrNotIndexed, h)
		}
	}
	if len(e.mailboxes) == 0 { // not synced: an index opened for inspection
		tree, _ := maildir.Discover(e.cfg.Root)
		e.mailboxes = map[string]*mailbox{}
		for _, mb := range tree.Mailboxes {
			kw, _ := maildir.ReadKeywords(mb.Path)
			e.mailboxes[mb.Name] = &mailbox{Mailbox: mb, keywords: kw}
		}
	}
	var set []*query.Msg
	var hits []SearchHit
	for name, ms := range e.msgs {
		if e.mailboxes[name] == nil {
			continue // gone from the backend
		}
		for m := range ms.All() {
			qm := e.msgOf(name, m)
			p := e.pathOf(name, m)
			if n.Stat && unstatted(m) {
				var st syscall.Stat_t
				if syscall.Lstat(p, &st) != nil {
					continue
				}
				qm.Size, qm.Received = st.Size, time.Unix(st.Mtim.Unix())
			}
			set = append(set, qm)
			hits = append(hits, SearchHit{Mailbox: name, Path: p})
		}
	}
	var out []SearchHit
	for i, ok := range q.MatchAll(set, now) {
		if ok {
			out = append(out, hits[i])
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Mailbox < out[j].Mailbox || out[i].Mailbox == out[j].Mailbox && out[i].Path < out[j].Path
	})
	return out, nil
}
