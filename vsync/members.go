package vsync

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"vmfs/index"
	"vmfs/internal/maildir"
	"vmfs/internal/message"
	"vmfs/internal/query"
)

// Resolve returns the names of the mailboxes a folder's patterns select.
// Later "-" patterns remove what earlier ones added (SPEC §3).
func Resolve(patterns []string, names []string) map[string]bool {
	out := map[string]bool{}
	for _, n := range names {
		in := false
		for _, p := range patterns {
			if strings.HasPrefix(p, "-") {
				if maildir.MatchPattern(p[1:], n) {
					in = false
				}
			} else if maildir.MatchPattern(p, n) {
				in = true
			}
		}
		if in {
			out[n] = true
		}
	}
	return out
}

// sel returns the mailboxes the folder covers, each with the index of its
// rule.
func (f *folder) sel(names []string) map[string]int {
	if f.def.Dovecot != nil {
		return f.def.Dovecot.Assign(names)
	}
	out := map[string]int{}
	for n := range Resolve(f.def.Mailboxes, names) {
		out[n] = 0
	}
	return out
}

// threads reports whether a rule needs whole-set evaluation.
func (f *folder) threads() bool {
	for _, q := range f.rules {
		if q.Needs().Threads {
			return true
		}
	}
	return false
}

// intervals returns the YOUNGER/OLDER intervals of every rule; none if the
// folder does not depend on the time.
func (f *folder) intervals() []time.Duration {
	var out []time.Duration
	for _, q := range f.rules {
		out = append(out, q.Needs().Intervals...)
	}
	return out
}

// msgOf builds what a query looks at from an index record of a mailbox.
func (e *Engine) msgOf(mailbox string, m *index.Message) *query.Msg {
	qm := &query.Msg{}
	e.fillMsg(qm, mailbox, m)
	return qm
}

// fillMsg sets qm to what a query looks at of an index record of a
// mailbox.
func (e *Engine) fillMsg(qm *query.Msg, mailbox string, m *index.Message) {
	flags := flagsOf(m.Name)
	*qm = query.Msg{Mailbox: mailbox, Flags: flags, Recent: m.New, Received: time.Unix(0, m.MTime), Size: m.Size}
	if mt := m.Meta; mt != nil {
		qm.Headers, qm.ID, qm.References = mt.Headers, mt.ID, mt.References
		if mt.HasSent {
			qm.Sent = time.Unix(mt.Sent, 0).In(time.FixedZone("", int(mt.SentOffset)))
		}
	}
	if mb := e.mailboxes[mailbox]; mb != nil {
		for _, l := range maildir.KeywordLetters(flags) {
			if k, ok := mb.keywords[l]; ok {
				qm.Keywords = append(qm.Keywords, k)
			}
		}
		if e.needs.Body || e.needs.AllHeaders {
			p := e.pathOf(mailbox, m)
			textOf := e.textOf
			if textOf == nil {
				textOf = message.TextOf
			}
			qm.Text = func(headers bool, fn func(string) bool) error { return textOf(p, headers, fn) }
		}
	}
}

// pathOf returns the path of a mailbox's message; "" if the mailbox is
// gone.
func (e *Engine) pathOf(mailbox string, m *index.Message) string {
	mb := e.mailboxes[mailbox]
	if mb == nil {
		return ""
	}
	if m.New {
		return mb.Path + "/new/" + m.Name
	}
	return mb.Path + "/cur/" + m.Name
}

// virtualName is a member's file name in its folder; k is its virtual key
// (zero: keyOf's, from the member's entry in f).
func virtualName(f *folder, mem *index.Member, m *index.Message, k vkey) string {
	name := mem.Name
	i := strings.LastIndexByte(m.Name, ':')
	if name == "" {
		if k == (vkey{}) {
			k = keyOf(f.t.byUIDOf(mem.UID), mem)
		}
		if i > 0 && normalInfo(m.Name[i+1:]) {
			// The common case, in one allocation: the info part is
			// already "2," + sorted flags.
			return timePrefix(m.Base()) + ".V" + string(k[:]) + ".vmfs" + m.Name[i:]
		}
		name = vbaseOf(m.Base(), k)
	}
	if i > 0 {
		if normalInfo(m.Name[i+1:]) {
			name += m.Name[i:]
		} else if n, err := maildir.ParseName(m.Name); err == nil {
			name = maildir.Name{Base: name, Flags: n.Flags, Extra: n.Extra, HasInfo: true}.String()
		}
	}
	return name
}

// flagsOf returns the flags of a backend file name: its info part's when
// that is already normal (the common case, with no parsing), else
// ParseName's.
func flagsOf(name string) string {
	i := strings.LastIndexByte(name, ':')
	if i > 0 && name[0] != '.' && normalInfo(name[i+1:]) && strings.IndexByte(name[:i], ':') < 0 &&
		strings.IndexByte(name[:i], '/') < 0 && strings.IndexByte(name[:i], 0) < 0 {
		return name[i+3:]
	}
	n, _ := maildir.ParseName(name) // "" for a name that is not one
	return n.Flags
}

// NameEntry is one line of a folder's directory listing.
type NameEntry struct {
	UID  uint32
	Name string
	New  bool
}

// normalInfo reports whether an info part is "2," followed by flags in
// strictly ascending order and nothing else.
func normalInfo(info string) bool {
	if len(info) < 2 || info[0] != '2' || info[1] != ',' {
		return false
	}
	for i := 2; i < len(info); i++ {
		c := info[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == ':' || c == '/' || (i > 2 && c <= info[i-1]) {
			return false
		}
	}
	return true
}

// update recomputes the members of every folder for the changed messages
// (all messages when all is set or a folder needs a full pass) and returns
// the folders whose listings changed. e.op must be held.
func (e *Engine) update(b *index.Batch, changed map[key]bool, all bool) []string {
	// What a query sees of a message is built once per update, however
	// many folders look at it.
	now := e.cfg.Now()
	var names []string
	for n := range e.mailboxes {
		names = append(names, n)
	}
	if e.incomplete {
		// Every folder is rebuilt by this update (see Open): the marker
		// goes with it.
		b.ClearIncomplete()
		e.incomplete = false
	}
	var touched []string
	if e.showPending { // the first update after Open: every entry is built
		e.showPending = false
		e.showAllLoaded(changed, all)
		for _, fname := range e.order {
			f := e.folders[fname]
			f.invalidate()
			touched = append(touched, fname)
		}
	}
	for _, fname := range e.evalOrder {
		f := e.folders[fname]
		st := f.state
		sel := f.sel(names)
		full := all || f.rebuild || f.threads()
		var cand []candidate
		if full {
			n := 0
			for mb := range sel {
				n += e.msgs[mb].Len()
			}
			cand = make([]candidate, 0, n)
			for mb := range sel {
				for m := range e.msgs[mb].All() {
					cand = append(cand, candidate{key{mb, m.Base()}, m})
				}
			}
			for mem := range f.members.All() {
				k := key{mem.Mailbox, mem.Base}
				if _, in := sel[k.mailbox]; !in || e.msgs[k.mailbox].Get(k.base) == nil {
					cand = append(cand, candidate{k: k})
				}
			}
		} else {
			for k := range changed {
				if _, in := sel[k.mailbox]; in || f.members.Get(k.mailbox, k.base) != nil {
					cand = append(cand, candidate{k: k})
				}
			}
		}
		rebuild := f.rebuild
		if f.apply(e, b, cand, sel, now, f.rebuild) {
			f.invalidate()
			if !slices.Contains(touched, fname) {
				touched = append(touched, fname)
			}
		}
		f.rebuild = false
		if full && (all || rebuild || f.lastTick.IsZero()) && len(f.intervals()) > 0 {
			// Every message was evaluated as of now: the next tick need
			// look only at those whose age crosses an interval after it.
			// (The first tick after a cold index of 1,000,000 messages
			// evaluated every one again: 33 MB of candidates.)
			f.lastTick, f.state.Ticked = now, now.UnixNano()
		}
		if rebuild || f.state != st {
			b.PutFolder(fname, &f.state)
		}
	}
	return touched
}

// candidate is a message an update evaluates for a folder, and its record
// when the caller has it at hand (else it is looked up).
type candidate struct {
	k key
	m *index.Message
}

// apply evaluates candidates and updates members; it reports whether the
// listing changed. A message that stops matching lingers, unless the
// folder's definition changed (rebuild): then it leaves at once, as
// Dovecot drops every message when a definition is edited.
func (f *folder) apply(e *Engine, b *index.Batch, cand []candidate, sel map[string]int, now time.Time, rebuild bool) bool {
	if f.threads() { // threads are built in a fixed order
		sort.Slice(cand, func(i, j int) bool {
			a, c := cand[i].k, cand[j].k
			return a.mailbox < c.mailbox || a.mailbox == c.mailbox && a.base < c.base
		})
	}
	threads := f.threads()
	// The candidates evaluated are kept in place (cand[:n], each with its
	// record), and mems[i] is cand[i]'s member (nil: none), looked up once;
	// sized once: a cold index evaluates a million candidates.
	kept := cand[:0]
	mems := make([]*index.Member, 0, len(cand))
	var qms []*query.Msg // threads: every candidate's, for MatchAll
	var res []bool
	if !threads {
		res = make([]bool, 0, len(cand))
	}
	var scratch query.Msg
	touched := false
	for _, c := range cand {
		k, m := c.k, c.m
		if m == nil {
			m = e.msgs[k.mailbox].Get(k.base)
		}
		mem := f.members.Get(k.mailbox, k.base)
		if _, in := sel[k.mailbox]; m == nil || !in {
			if mem != nil { // gone from the backend: leave at once
				f.drop(k, mem)
				b.DeleteMember(f.def.Name, mem)
				touched = true
			}
			continue
		}
		if f.needsStat && unstatted(m) && mem == nil {
			continue // taken, if it matches, once Fill has stat()ed it
		}
		kept, mems = append(kept, candidate{k, m}), append(mems, mem)
		if threads {
			qms = append(qms, e.msgOf(k.mailbox, m))
		} else {
			// One scratch value: what a query sees is cheap to build
			// and needs no keeping.
			e.fillMsg(&scratch, k.mailbox, m)
			res = append(res, f.rules[sel[k.mailbox]].Match(&scratch, now))
		}
	}
	if threads {
		res = make([]bool, len(qms))
		// Threads form within each rule's mailboxes.
		for r, q := range f.rules {
			var idx []int
			var set []*query.Msg
			for i, c := range kept {
				if sel[c.k.mailbox] == r {
					idx, set = append(idx, i), append(set, qms[i])
				}
			}
			for j, ok := range q.MatchAll(set, now) {
				res[idx[j]] = ok
			}
		}
	}
	var added []int // indexes of the candidates that become members
	for i, c := range kept {
		k, mem := c.k, mems[i]
		switch {
		case res[i] && mem == nil:
			if e.ensureStat(b, k.mailbox, c.m) {
				added = append(added, i)
			}
		case res[i] && mem.Linger != 0 && !mem.Written:
			mem.Linger = 0 // matches again within the linger: not added twice
			b.PutMember(f.def.Name, mem)
		case !res[i] && mem != nil && rebuild && !mem.Written:
			f.drop(k, mem)
			b.DeleteMember(f.def.Name, mem)
			mems[i] = nil
			touched = true
			continue
		case !res[i] && mem != nil && mem.Linger == 0:
			mem.Linger = now.Add(e.cfg.Linger).UnixNano()
			f.noteExpiry(mem.Linger)
			b.PutMember(f.def.Name, mem)
		}
	}
	// New members get ascending UIDs by received date, then name.
	sort.Slice(added, func(i, j int) bool {
		a, c := kept[added[i]].m, kept[added[j]].m
		if a.MTime != c.MTime {
			return a.MTime < c.MTime
		}
		if ka, kc := kept[added[i]].k, kept[added[j]].k; ka.mailbox != kc.mailbox {
			return ka.mailbox < kc.mailbox
		}
		return a.Base() < c.Base()
	})
	// Most members new (a cold index, a rebuild): the folder's members are
	// written whole.
	bulk := len(added) > 1000 && 2*len(added) > f.members.Len()+len(added)
	for _, i := range added {
		k := kept[i].k
		if m := kept[i].m; m.Unsaved { // stat()ed by Fill: written as it joins
			b.PutMessage(k.mailbox, m)
		}
		mem := &index.Member{UID: f.state.NextUID, Mailbox: k.mailbox, Base: k.base}
		f.state.NextUID++
		// A message delivered through vmfs keeps its client's name, also
		// when its membership is rebuilt from the backend.
		if cn := clientName(k.base); cn != "" {
			if _, taken := f.alias[cn]; !taken {
				mem.Name = cn
				f.alias[cn] = k
			}
		}
		f.members.Put(mem)
		mems[i] = mem
		if !bulk {
			b.PutMember(f.def.Name, mem)
		}
		touched = true
	}
	if bulk {
		b.PutMembers(f.def.Name, f.members) // one op, not one per member
	}
	// What the members evaluated look like now (new ones, new names):
	// one by one, or, when most are new (a cold index, a rebuild), the
	// folder's entries built anew in order, which is cheaper. Not by how
	// many were evaluated: the first tick after a start evaluates every
	// message of a time-based folder, and rebuilding its entries then
	// counted as a change of its listing.
	if len(added) > 1000 && f.t.len() < len(added) {
		e.showAll(f)
	} else {
		for i, mem := range mems {
			if mem != nil && e.show(f, mem, kept[i].m) {
				touched = true
			}
		}
	}
	if f.expire(b, now, false) {
		touched = true
	}
	return touched
}

// invalidate records that the folder's listing changed: the next
// publishLocked publishes a new View of it.
func (f *folder) invalidate() { f.gen++ }

// drop removes a member from memory and from the folder's entries (the
// caller deletes it from the index).
func (f *folder) drop(k key, mem *index.Member) {
	f.hide(mem)
	f.members.Delete(k.mailbox, k.base)
	if mem.Name != "" {
		delete(f.alias, mem.Name)
	}
}

// expire drops members whose linger has ended (all lingering ones when
// force is set).
//
// It walks the members only when a deadline is due: f.nextExpiry tracks
// the earliest one.
func (f *folder) expire(b *index.Batch, now time.Time, force bool) bool {
	if !force && (f.nextExpiry == 0 || f.nextExpiry > now.UnixNano()) {
		return false
	}
	touched := false
	f.nextExpiry = 0
	var due []*index.Member // not dropped while the set yields
	for mem := range f.members.All() {
		if mem.Linger == 0 {
			continue
		}
		if force || mem.Linger <= now.UnixNano() {
			due = append(due, mem)
		} else {
			f.noteExpiry(mem.Linger)
		}
	}
	for _, mem := range due {
		f.drop(key{mem.Mailbox, mem.Base}, mem)
		b.DeleteMember(f.def.Name, mem)
		touched = true
	}
	return touched
}

// noteExpiry records a linger deadline.
func (f *folder) noteExpiry(deadline int64) {
	if f.nextExpiry == 0 || deadline < f.nextExpiry {
		f.nextExpiry = deadline
	}
}

// timeTick is how often Tick looks for messages whose age crossed a
// YOUNGER/OLDER interval: each look walks every message of the folder's
// mailboxes, and a message leaving "the last 7 days" a few seconds late
// matters to nobody.
const timeTick = 10 * time.Second

// Tick re-evaluates folders whose queries depend on the time (YOUNGER,
// OLDER) at most every timeTick, and ends lingers that are due. Call it
// every second.
func (e *Engine) Tick() error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	if err := e.store.Flush(); err != nil { // changes held while space was short
		slog.Error("index", "err", err)
	}
	b := e.store.NewBatch()
	now := e.cfg.Now()
	var touched []string
	var names []string
	for n := range e.mailboxes {
		names = append(names, n)
	}
	for _, fname := range e.order {
		f := e.folders[fname]
		t := false
		if ivs := f.intervals(); len(ivs) > 0 && (f.lastTick.IsZero() || now.Sub(f.lastTick) >= timeTick) {
			// Only messages whose age crossed one of the query's
			// intervals since the last tick can change. The last tick
			// is also the one before vmfs last stopped (state.Ticked):
			// those that crossed while it was not running are among
			// them. Without one (a new folder, a clock set back), every
			// message is evaluated.
			sel := f.sel(names)
			since := f.lastTick
			if since.After(now) {
				since = time.Time{}
			}
			lo, hi := since.UnixNano()-int64(time.Second), now.UnixNano()+int64(time.Second)
			var cand []candidate
			for mb := range sel {
				for m := range e.msgs[mb].All() {
					if since.IsZero() {
						cand = append(cand, candidate{key{mb, m.Base()}, m})
						continue
					}
					for _, iv := range ivs {
						// crossing at received+iv ∈ (since, now]
						at := m.MTime + int64(iv)
						if at > lo && at <= hi {
							cand = append(cand, candidate{key{mb, m.Base()}, m})
							break
						}
					}
				}
			}
			// Written with the header the next time it is: the
			// evaluation up to now changed nothing that is not in this
			// tick's batch.
			f.lastTick, f.state.Ticked = now, now.UnixNano()
			t = f.apply(e, b, cand, sel, now, false)
		} else {
			t = f.expire(b, now, false)
		}
		if t {
			f.invalidate()
			touched = append(touched, fname)
			b.PutFolder(fname, &f.state)
		}
	}
	return e.commitLocked(b, nil, touched)
}

// Expunge drops at once the messages of a folder that no longer match
// (SPEC §6.4: Dovecot's reopen).
func (e *Engine) Expunge(folderName string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	f := e.folders[folderName]
	if f == nil {
		return fmt.Errorf("no folder %q", folderName)
	}
	b := e.store.NewBatch()
	var touched []string
	if f.expire(b, e.cfg.Now(), true) {
		f.invalidate()
		touched = []string{folderName}
	}
	return e.commitLocked(b, nil, touched)
}

// FolderStats is a folder's message count, as `vmfs ls` shows it.
type FolderStats struct {
	Name        string `json:"name"`
	Messages    int    `json:"messages"`
	Lingering   int    `json:"lingering"` // no longer matching, listed until their linger ends
	UIDValidity uint32 `json:"uidvalidity"`
}

// Stats returns every folder's counts, sorted by name.
func (e *Engine) Stats() []FolderStats {
	e.lockOpAny()
	defer e.op.Unlock()
	var out []FolderStats
	for _, name := range e.order {
		f := e.folders[name]
		st := FolderStats{Name: name, UIDValidity: f.state.UIDValidity}
		for mem := range f.members.All() {
			if e.msgs[mem.Mailbox].Get(mem.Base) == nil {
				continue
			}
			st.Messages++
			if mem.Linger != 0 {
				st.Lingering++
			}
		}
		out = append(out, st)
	}
	return out
}
