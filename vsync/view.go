package vsync

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

	"vmfs/index"
	"vmfs/internal/maildir"
)

// Views. What the filesystem reads of a folder — its listing, a message by
// name — comes from an immutable View that the writer publishes after each
// change (one atomic pointer for all folders), so a read takes no lock and
// never waits for a sync, a body search or an index commit. The writer
// keeps each folder's entries in two copy-on-write B-trees (by UID, the
// listing order; by virtual base name, for lookups), changes them in place
// as members come, go or are renamed, and publishes clones of them: a
// clone costs O(1), and a change after it copies only the nodes on its
// path. A listing moves from one published View to the next in one step,
// so a message renamed in the backend is always listed under its old or
// its new name.

// vent is one member of a folder as the filesystem sees it. Immutable once
// in a tree: a change replaces it.
type vent struct {
	uid     uint32
	new     bool
	baseLen uint16 // name[:baseLen] is the virtual base name
	name    string // virtual file name
	mb      *mbRef
	file    string // backend file name (in mb's cur/ or new/)
	size    int64
	mtime   int64
}

func (v *vent) vbase() string { return v.name[:v.baseLen] }

func (v *vent) key() key { return key{v.mb.name, maildir.BaseOf(v.file)} }

func (v *vent) path() string {
	if v.new {
		return v.mb.path + "/new/" + v.file
	}
	return v.mb.path + "/cur/" + v.file
}

func (v *vent) entry() Entry {
	return Entry{UID: v.uid, Name: v.name, New: v.new, Size: v.size, MTime: time.Unix(0, v.mtime), Path: v.path()}
}

// mbRef names a backend mailbox and its directory; shared by the entries
// of its messages, never changed (a mailbox whose directory changes gets
// a new one).
type mbRef struct{ name, path string }

func byUID(a, b *vent) bool { return a.uid < b.uid }

func byVBase(a, b *vent) bool { return a.vbase() < b.vbase() }

// degree of the B-trees: 32 entries a node (a node is 2·32 pointers).
const treeDegree = 16

// ventTrees is a folder's entries: those of cur/ and of new/ by UID (a
// listing of one directory walks only its own entries: Unread's new/ is
// often a tenth of its cur/), and all of them by virtual base name.
type ventTrees struct {
	cur, new, vb *btree.BTreeG[*vent]
}

func newTrees() ventTrees {
	return ventTrees{btree.NewG(treeDegree, byUID), btree.NewG(treeDegree, byUID), btree.NewG(treeDegree, byVBase)}
}

// dir returns the UID tree of new/ or cur/.
func (t ventTrees) dir(isNew bool) *btree.BTreeG[*vent] {
	if isNew {
		return t.new
	}
	return t.cur
}

// len is the number of entries.
func (t ventTrees) len() int { return t.cur.Len() + t.new.Len() }

func (t ventTrees) clone() ventTrees { return ventTrees{t.cur.Clone(), t.new.Clone(), t.vb.Clone()} }

// putUID puts v into its directory's UID tree, in place of old (the
// member's entry before, nil if none).
func (t ventTrees) putUID(old, v *vent) {
	if old != nil && old.new != v.new {
		t.dir(old.new).Delete(old)
	}
	t.dir(v.new).ReplaceOrInsert(v)
}

// deleteUID removes the entry of UID uid from its directory's tree.
func (t ventTrees) deleteUID(uid uint32) (*vent, bool) {
	probe := &vent{uid: uid}
	if v, ok := t.cur.Delete(probe); ok {
		return v, true
	}
	return t.new.Delete(probe)
}

// ascend calls fn with every entry in UID order until it returns false.
func (t ventTrees) ascend(fn func(*vent) bool) {
	var news []*vent // merged with cur/'s as they come
	t.new.Ascend(func(v *vent) bool { news = append(news, v); return true })
	ok := true
	t.cur.Ascend(func(v *vent) bool {
		for len(news) > 0 && news[0].uid < v.uid {
			if ok = fn(news[0]); !ok {
				return false
			}
			news = news[1:]
		}
		ok = fn(v)
		return ok
	})
	for ok && len(news) > 0 {
		ok, news = fn(news[0]), news[1:]
	}
}

// View is a published, immutable picture of one folder.
type View struct {
	gen         uint64
	uidValidity uint32
	t           ventTrees
}

// Gen is the View's generation: it changes whenever the listing does.
func (v *View) Gen() uint64 { return v.gen }

// Scan calls fn with the entries of new/ (isNew) or cur/ whose UID is
// above after, in UID order, until fn returns false. The View does not
// change: a listing read in pieces (a directory stream) is one picture of
// the folder.
func (v *View) Scan(after uint32, isNew bool, fn func(NameEntry) bool) {
	if after == ^uint32(0) {
		return
	}
	v.t.dir(isNew).AscendGreaterOrEqual(&vent{uid: after + 1}, func(e *vent) bool {
		return fn(NameEntry{UID: e.uid, Name: e.name, New: e.new})
	})
}

// List appends to out, up to its capacity, the entries of new/ (isNew) or
// cur/ whose UID is above after, in UID order; more reports whether
// entries are left after those (Scan, for a directory stream).
func (v *View) List(after uint32, isNew bool, out []NameEntry) (_ []NameEntry, more bool) {
	if after == ^uint32(0) {
		return out, false
	}
	v.t.dir(isNew).AscendGreaterOrEqual(&vent{uid: after + 1}, func(e *vent) bool {
		if len(out) == cap(out) {
			more = true
			return false
		}
		out = append(out, NameEntry{UID: e.uid, Name: e.name, New: e.new})
		return true
	})
	return out, more
}

// UIDOf returns the UID of the entry whose virtual base name is vbase.
func (v *View) UIDOf(vbase string) (uint32, bool) {
	if e := v.t.byBase(vbase); e != nil {
		return e.uid, true
	}
	return 0, false
}

// byBase returns the entry whose virtual base name is vbase.
func (t ventTrees) byBase(vbase string) *vent {
	probe := vent{name: vbase, baseLen: uint16(len(vbase))}
	e, _ := t.vb.Get(&probe)
	return e
}

// byUIDOf returns the entry of UID uid.
func (t ventTrees) byUIDOf(uid uint32) *vent {
	probe := &vent{uid: uid}
	if e, ok := t.cur.Get(probe); ok {
		return e
	}
	e, _ := t.new.Get(probe)
	return e
}

// views is every folder's View, and the folder names in order.
type views struct {
	order   []string
	folders map[string]*View
}

// view returns the published View of a folder.
func (e *Engine) view(folderName string) (*View, error) {
	vs := e.pub.Load()
	if vs != nil {
		if v := vs.folders[folderName]; v != nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("folder %q: %w", folderName, ErrNotFound)
}

// refOf returns the shared mbRef of a mailbox. e.op must be held.
func (e *Engine) refOf(name string) *mbRef {
	r := e.refs[name]
	var path string
	switch mb := e.mailboxes[name]; {
	case mb != nil:
		path = mb.Path
	case r != nil:
		return r
	default:
		path = e.dirOf(name)
	}
	if r != nil && r.path == path {
		return r
	}
	r = &mbRef{name: name, path: path}
	if e.refs == nil {
		e.refs = map[string]*mbRef{}
	}
	e.refs[name] = r
	return r
}

// ventOf builds a member's entry; k is its virtual key (zero: keyOf's).
// e.op must be held.
func (e *Engine) ventOf(f *folder, mem *index.Member, m *index.Message, k vkey) *vent {
	name := e.shownName(f, mem, m, k)
	// A virtual base is a hash (about 50 bytes) or a client's name (a
	// file name: at most 255 bytes); it fits baseLen.
	base := maildir.BaseOf(name)
	return &vent{uid: mem.UID, new: m.New, baseLen: uint16(len(base)), name: name, mb: e.refOf(mem.Mailbox),
		file: m.Name, size: m.Size, mtime: m.MTime}
}

func sameVent(a, b *vent) bool {
	return a.uid == b.uid && a.new == b.new && a.name == b.name && a.baseLen == b.baseLen && a.mb == b.mb &&
		a.file == b.file && a.size == b.size && a.mtime == b.mtime
}

// show puts a member's current entry into the folder's trees; it reports
// whether anything changed. e.op must be held.
func (e *Engine) show(f *folder, mem *index.Member, m *index.Message) bool {
	old := f.t.byUIDOf(mem.UID)
	nv := e.ventOf(f, mem, m, keyOf(old, mem))
	if old != nil && sameVent(old, nv) {
		return false
	}
	if old != nil && old.vbase() != nv.vbase() {
		f.t.vb.Delete(old)
	}
	if other := f.t.byBase(nv.vbase()); other != nil && other.uid != nv.uid {
		// Two members cannot share a name (derived names hash distinct
		// identities, client names are kept unique by f.alias); should
		// it happen, the entry shown last has it.
		f.t.dir(other.new).Delete(other)
		f.t.vb.Delete(other)
	}
	f.t.putUID(old, nv)
	f.t.vb.ReplaceOrInsert(nv)
	return true
}

// hide removes a member's entry from the folder's trees. e.op must be
// held.
func (f *folder) hide(mem *index.Member) {
	if old, ok := f.t.deleteUID(mem.UID); ok {
		if cur := f.t.byBase(old.vbase()); cur == old {
			f.t.vb.Delete(old)
		}
	}
}

// showAll rebuilds a folder's trees from its members. Both trees are
// filled in order (a B-tree filled in order touches only its rightmost
// path). e.op must be held.
func (e *Engine) showAll(f *folder) {
	l := entriesNow(f)
	e.build(l, nil, 0, len(l.mems))
	f.t = l.trees()
}

// loadedEntries is a folder's members in UID order with what ventOf made
// of each: for the first update after Open (showAllLoaded), the members as
// the snapshot held them with their messages and virtual keys; else, or
// when those cannot be used, its members now (entriesNow). e.op must be
// held.
type loadedEntries struct {
	f    *folder
	mems []*index.Member
	msgs []*index.Message // nil: e.msgs's
	keys []byte           // KeyLen bytes a member, or nil
	vs   []*vent          // what ventOf made of each, nil if no message
}

// entriesNow is a folder's members now, their messages to be looked up.
func entriesNow(f *folder) *loadedEntries {
	l := &loadedEntries{f: f, mems: make([]*index.Member, 0, f.members.Len())}
	for mem := range f.members.All() {
		l.mems = append(l.mems, mem)
	}
	slices.SortFunc(l.mems, func(a, b *index.Member) int { return cmp.Compare(a.UID, b.UID) })
	l.vs = make([]*vent, len(l.mems))
	return l
}

// loadedEntries returns the members Open read for f (all: every message
// changed since, so its members now).
func (e *Engine) loadedEntries(f *folder, all bool) *loadedEntries {
	l := &loadedEntries{f: f, mems: f.loaded, msgs: f.loadedMsgs, keys: f.loadedKeys}
	f.loaded, f.loadedMsgs, f.loadedKeys = nil, nil, nil
	if all || l.mems == nil || len(l.mems) != f.members.Len() || len(l.msgs) != len(l.mems) {
		return entriesNow(f)
	}
	if len(l.keys) != len(l.mems)*index.KeyLen {
		l.keys = nil
	}
	l.vs = make([]*vent, len(l.mems))
	return l
}

// trees makes the folder's trees of the entries built.
func (l *loadedEntries) trees() ventTrees {
	return buildTrees(slices.DeleteFunc(l.vs, func(v *vent) bool { return v == nil }))
}

// build makes the entries lo to hi (ventOf), of the messages as e.msgs
// holds them for those changed. Entries of different ranges may be built
// at once: ventOf only reads the engine's state (see showAllLoaded).
func (e *Engine) build(l *loadedEntries, changed map[key]bool, lo, hi int) {
	for i := lo; i < hi; i++ {
		mem := l.mems[i]
		var m *index.Message
		if l.msgs != nil {
			m = l.msgs[i]
		}
		if k := (key{mem.Mailbox, mem.Base}); l.msgs == nil || changed[k] {
			m = e.msgs[k.mailbox].Get(k.base)
		}
		var k vkey
		if l.keys != nil {
			copy(k[:], l.keys[i*index.KeyLen:])
		}
		if m != nil {
			l.vs[i] = e.ventOf(l.f, mem, m, k)
		}
	}
}

// snapshotMembers returns the folder's members in UID order with their
// virtual keys as index.Snapshot keeps them (read back from their entries'
// names). e.op must be held.
func (f *folder) snapshotMembers() ([]*index.Member, []byte) {
	mems := make([]*index.Member, 0, f.members.Len())
	for m := range f.members.All() {
		mems = append(mems, m)
	}
	slices.SortFunc(mems, func(a, b *index.Member) int { return cmp.Compare(a.UID, b.UID) })
	keys := make([]byte, len(mems)*index.KeyLen)
	i := 0
	f.t.ascend(func(v *vent) bool {
		for i < len(mems) && mems[i].UID < v.uid {
			i++
		}
		if i < len(mems) && mems[i].UID == v.uid && mems[i].Name == "" {
			if k, _, ok := parseVirtualBase(v.vbase()); ok {
				copy(keys[i*index.KeyLen:], k[:])
			}
		}
		return true
	})
	return mems, keys
}

// buildTrees makes the trees of entries in UID order, one tree in
// another goroutine.
func buildTrees(vs []*vent) ventTrees {
	t := newTrees()
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, v := range vs {
			t.dir(v.new).ReplaceOrInsert(v)
		}
	})
	byName := slices.Clone(vs)
	slices.SortFunc(byName, func(a, b *vent) int {
		return cmp.Or(strings.Compare(a.vbase(), b.vbase()), cmp.Compare(a.uid, b.uid))
	})
	var hidden []*vent
	for i, v := range byName {
		if i > 0 && byName[i-1].vbase() == v.vbase() {
			// Cannot happen (see show); should it, the entry with the
			// highest UID keeps the name and the others are not shown.
			hidden = append(hidden, byName[i-1])
		}
		t.vb.ReplaceOrInsert(v)
	}
	wg.Wait()
	for _, v := range hidden {
		t.dir(v.new).Delete(v)
	}
	return t
}

// showAllLoaded builds every folder's entries for the first update after
// Open, from what the snapshot held (see loadedEntries), except those of
// the messages this update changed (changed; all: every one). The entries
// are made in ranges of a few thousand, up to GOMAXPROCS at a time, then
// each folder's trees, folders in parallel: ventOf only reads the
// engine's state once every mailbox's mbRef and every folder's keyword
// map exist. e.op must be held.
func (e *Engine) showAllLoaded(changed map[key]bool, all bool) {
	for name := range e.msgs {
		e.refOf(name)
	}
	type task struct {
		l      *loadedEntries
		lo, hi int
	}
	var ls []*loadedEntries
	var tasks []task
	for _, f := range e.folders {
		e.kwOf(f)
		l := e.loadedEntries(f, all)
		ls = append(ls, l)
		for lo := 0; lo < len(l.mems); lo += buildRange {
			tasks = append(tasks, task{l, lo, min(lo+buildRange, len(l.mems))})
		}
	}
	workers := runtime.GOMAXPROCS(0)
	parallel(context.Background(), len(tasks), workers, func(i int) {
		e.build(tasks[i].l, changed, tasks[i].lo, tasks[i].hi)
	})
	slices.SortFunc(ls, func(a, b *loadedEntries) int { return cmp.Compare(len(b.vs), len(a.vs)) })
	parallel(context.Background(), len(ls), workers, func(i int) {
		ls[i].f.t = ls[i].trees()
	})
}

// buildRange is how many entries showAllLoaded makes in one piece.
const buildRange = 4096

// publishLocked publishes the folder list and a new View of each folder
// whose generation changed (f.invalidate). e.op must be held.
func (e *Engine) publishLocked() {
	old := e.pub.Load()
	vs := &views{order: append([]string(nil), e.order...), folders: make(map[string]*View, len(e.folders))}
	for name, f := range e.folders {
		if ov := old.get(name); ov != nil && ov.gen == f.gen && ov.uidValidity == f.state.UIDValidity {
			vs.folders[name] = ov
			continue
		}
		vs.folders[name] = &View{gen: f.gen, uidValidity: f.state.UIDValidity, t: f.t.clone()}
	}
	e.pub.Store(vs)
}

func (vs *views) get(name string) *View {
	if vs == nil {
		return nil
	}
	return vs.folders[name]
}

// View returns the published View of a folder: what the filesystem lists.
// It takes no lock.
func (e *Engine) View(folderName string) (*View, error) { return e.view(folderName) }

// Gen returns a number that changes whenever the folder's listing changes.
func (e *Engine) Gen(folderName string) uint64 {
	if v, err := e.view(folderName); err == nil {
		return v.gen
	}
	return 0
}

// UIDValidity returns a folder's UIDVALIDITY.
func (e *Engine) UIDValidity(folderName string) uint32 {
	if v, err := e.view(folderName); err == nil {
		return v.uidValidity
	}
	return 0
}

// Folders returns the folder names, sorted.
func (e *Engine) Folders() []string {
	if vs := e.pub.Load(); vs != nil {
		return append([]string(nil), vs.order...)
	}
	return nil
}

// Lookup returns the entry of a folder's message by its exact virtual
// file name in cur/ (inNew false) or new/. A name the message no longer
// has (renamed in the backend, or by a client, since it was listed) is not
// found, as on a disk: Dovecot stat()s the name it last knew to tell
// whether a flag change is still to be made (maildir_sync_flags), and
// rename(2) is a no-op when both names are one inode, so an old name that
// resolved would turn "clear a flag" into nothing. It takes no lock.
func (e *Engine) Lookup(folderName, vname string, inNew bool) (Entry, error) {
	ve, err := e.find(folderName, vname)
	if err != nil {
		return Entry{}, err
	}
	if ve.name != vname || ve.new != inNew {
		return Entry{}, fmt.Errorf("%s/%s: renamed since it was listed: %w", folderName, vname, ErrNotFound)
	}
	return ve.entry(), nil
}

// Get returns a folder's message by virtual base name, whatever its flags.
// It takes no lock.
func (e *Engine) Get(folderName, vbase string) (Entry, error) {
	ve, err := e.find(folderName, vbase)
	if err != nil {
		return Entry{}, err
	}
	return ve.entry(), nil
}

// find returns the published entry of a folder's message by its virtual
// base name (name may carry an info part).
func (e *Engine) find(folderName, name string) (*vent, error) {
	v, err := e.view(folderName)
	if err != nil {
		return nil, err
	}
	ve := v.t.byBase(maildir.BaseOf(name))
	if ve == nil {
		return nil, fmt.Errorf("%s/%s: %w", folderName, name, ErrNotFound)
	}
	return ve, nil
}
