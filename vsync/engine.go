// Package vsync is vmfs's engine: it keeps the index (package index) equal
// to the backend Maildirs and computes each virtual folder's members, with
// Dovecot's virtual-plugin rules (SPEC §6): membership = matching messages
// of matching mailboxes; ascending UIDs for new members, ordered by
// received date then name; removal at once when a backend message goes;
// a linger for messages that stop matching; rebuilt membership with kept
// names when a definition changes.
//
// Virtual names: a message's name in every folder is its delivery time —
// the leading digits of its backend base name, at least 10 of them — then
// ".V", 26 base32 characters of SHA-256(mailbox NUL base) and ".vmfs",
// then the backend's info part (":2,FLAGS"): "1700000000.Vabc…xyz.vmfs:2,S".
// It depends only on the backend identity (mailbox, base name), so it is
// unique per folder, unchanged by flag changes, and the same across
// restarts and index rebuilds; and it sorts like the backend names, so a
// name-ordered listing is chronological (aerc, mblaze). Names of version
// 1, without the time, are no longer found.
package vsync

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vmfs/index"
	"vmfs/internal/arena"
	"vmfs/internal/dvirtual"
	"vmfs/internal/maildir"
	"vmfs/internal/message"
	"vmfs/internal/query"
)

// Folder is a virtual folder definition.
type Folder struct {
	Name      string
	Mailboxes []string // patterns, applied in order; "-" excludes
	Query     string
	Save      string // mailbox that receives messages written into the folder
	// Dovecot, when set, replaces Mailboxes and Query: a dovecot-virtual
	// definition, whose mailbox groups may each have their own rule.
	Dovecot *dvirtual.Def
}

// DefaultFolders are the built-in folders used without a configuration.
func DefaultFolders() []Folder {
	mb := []string{"*", "-Trash", "-Junk", "-Spam"}
	return []Folder{
		{Name: "Unread", Mailboxes: mb, Query: "UNSEEN"},
		{Name: "Flagged", Mailboxes: mb, Query: "FLAGGED"},
		{Name: "Recent", Mailboxes: mb, Query: "YOUNGER 604800"},
	}
}

// Config is what the engine needs to run.
type Config struct {
	Root    string // backend root
	Folders []Folder
	Linger  time.Duration // how long a message that stopped matching stays; default 10 minutes
	// Trash, if set, is the mailbox that messages deleted through a folder
	// are moved to instead of being deleted.
	Trash string
	Now   func() time.Time // default time.Now
	// CrashPoint, if set, is called at named points between a backend
	// change and its index commit ("after-rename", "before-redeliver",
	// "after-deliver"), and in the middle of streaming a cold index into
	// the store ("mid-stream"): the crash tests end the process there.
	CrashPoint func(name string)
	// OnChange is called after a change of the listings of folders, once
	// their views are published, by the writer (op held): it may read
	// the views (Names, Lookup, Get, Gen take no lock) but must not ask
	// the engine for a change.
	OnChange func(folders []string)
	// Progress, if set, is told every 200 ms how many of the new messages
	// of a large sync (a cold index) have been read.
	Progress func(done, total int)
	// Inspect opens the index for a command that looks (vmfs ls, expunge):
	// folders missing from Folders keep their state (only a mount prunes
	// them), a damaged index is an error instead of being rebuilt, and
	// Close writes no snapshot.
	Inspect bool
	// Owner, if set, owns every file and directory the engine creates in
	// the backend (deliveries, a new save or trash mailbox): the backend's
	// owner when vmfs runs as root over another user's Maildir.
	Owner *maildir.Owner
	// Recheck, if set, is asked to report these message files again (by
	// mailbox directory, as FilesChanged takes them) once every event
	// queued before the call has been reported (watch.Watcher.Recheck):
	// files that were gone when the engine looked, while no other name of
	// their message was reported. A rename in progress (its new name
	// reported later) is not a delete: the message keeps its old name
	// until its new one is seen, and is taken as deleted only when its
	// file is reported again still gone and unpaired. Without Recheck
	// such a file is taken as deleted at once.
	Recheck func(files map[string][]string)
	// KeywordsFile, if set, is the path of a folder's own keyword map
	// (dovecot-keywords in its control directory; see keywords.go).
	KeywordsFile func(folder string) string
}

// Entry is one message of a virtual folder's listing.
type Entry struct {
	UID   uint32
	Name  string // virtual file name, with the backend's info part
	New   bool
	Size  int64
	MTime time.Time
	Path  string // backend file
}

type key struct{ mailbox, base string }

type folder struct {
	def     Folder
	rules   []*query.Query // one per rule; TOML folders have one
	hash    uint64
	state   index.FolderState
	members *index.MemberSet
	// alias maps client-chosen names of messages delivered through the
	// folder (Member.Name) to their backend identity.
	alias map[string]key
	// gen counts changes of the listing; t holds its entries (see
	// view.go), published with gen.
	gen uint64
	t   ventTrees
	// loaded, loadedMsgs and loadedKeys are the members as Open read
	// them, in UID order, their messages and their virtual keys (see
	// index.Snapshot), until the first update shows them (showAllLoaded).
	loaded     []*index.Member
	loadedMsgs []*index.Message
	loadedKeys []byte
	// lastTick is when the folder's time-related query was last
	// evaluated (also kept in state.Ticked, written with the header).
	lastTick time.Time
	// nextExpiry is the earliest linger deadline (Unix ns), 0 if none.
	nextExpiry int64
	// rebuild asks the next update for a full pass: the folder is new or
	// its definition changed.
	rebuild bool
	// kw is the folder's keyword letter map, nil until first needed.
	kw *folderKeywords
	// pendingKw holds, per message, keyword letters a client set that
	// the folder's map did not name yet (Dovecot renames the file before
	// it writes the new keyword into the map): shown in the virtual name,
	// carried to the backend once the map names them (KeywordsChanged).
	pendingKw map[key]string
	// needsStat: a rule looks at the size or a received date, so a
	// message joins only once its file has been stat()ed (see stat.go).
	needsStat bool
}

type mailbox struct {
	maildir.Mailbox
	keywords map[byte]string
}

// Engine keeps one backend root's index and folders.
//
// One writer: every change — syncs, watcher events, write-backs through
// the mount, ticks, Fill, folders added or removed — runs with op held,
// and op protects every field below it. A change ends in commitLocked:
// the folders' Views are published (view.go), the index batch committed,
// OnChange told. The filesystem's reads (Names, Lookup, Get, Gen,
// Folders) take no lock at all: they read the published Views, so they
// never wait behind a sync, a body search or a commit. op is the only
// lock; the Store has its own, taken inside Commit.
type Engine struct {
	cfg   Config
	store *index.Store

	// op serialises everything that reads or changes the state below,
	// the backend and the index: the engine is their one writer.
	op sync.Mutex
	// ops counts the times op was taken.
	ops uint64
	// committed, when not nil, is closed once the background commit of a
	// big sync's batch has ended; whoever takes op next waits for it
	// (lockOp).
	committed chan struct{}
	closed    bool // by Close

	folders   map[string]*folder
	order     []string // folder names, sorted
	evalOrder []string // folder names in the order updates evaluate them (see Open)
	mailboxes map[string]*mailbox
	msgs      map[string]*index.MessageSet // mailbox → its messages
	mstate    map[string]*index.MailboxState
	needs     query.Needs
	needsHash uint32
	// refs are the mailboxes' shared mbRefs (see view.go).
	refs map[string]*mbRef
	// showPending: the folders' entries are to be built by the next
	// update (after Open, once the mailboxes and their keyword maps are
	// known).
	showPending bool
	// textOf reads a message's text for BODY and TEXT; message.TextOf
	// when nil (the tests slow it down).
	textOf func(path string, headers bool, fn func(string) bool) error
	// pub is what readers see: every folder's published View. Written
	// with e.op held, read without any lock.
	pub atomic.Pointer[views]
	// incomplete is set when the store's last big batch was cut short;
	// cleared once a full evaluation has been committed.
	incomplete bool
	// fillPending: some messages may not have been stat()ed (see Fill).
	fillPending bool
	// suspects are messages whose file was found gone with no other
	// name of theirs reported, waiting to be reported again (see
	// Config.Recheck).
	suspects map[key]bool
}

// Open loads the index in stateDir (rebuilding it if damaged) and compiles
// the folders. Call Sync to bring it up to date with the backend.
func Open(stateDir string, cfg Config) (*Engine, error) {
	if cfg.Linger == 0 {
		cfg.Linger = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, folders: map[string]*folder{}}
	for _, d := range cfg.Folders {
		if _, dup := e.folders[d.Name]; dup {
			return nil, fmt.Errorf("folder %q defined twice", d.Name)
		}
		f, err := newFolder(d)
		if err != nil {
			return nil, err
		}
		e.folders[d.Name] = f
	}
	e.arrange()

	t0 := time.Now()
	st, snap, err := index.OpenLoaded(stateDir)
	if errors.Is(err, index.ErrDamaged) && cfg.Inspect {
		return nil, fmt.Errorf("%w (a mount rebuilds it)", err)
	}
	if errors.Is(err, index.ErrDamaged) {
		slog.Error("index damaged; rebuilding from the backend", "err", err)
		if st, err = index.Rebuild(stateDir); err != nil {
			return nil, err
		}
		if snap, err = st.Load(); err != nil {
			st.Close()
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	e.store = st
	st.CrashPoint = cfg.CrashPoint
	tLoad := time.Since(t0)
	e.msgs, e.mstate = snap.Messages, snap.Mailboxes
	// A big batch cut short by a crash may have recorded messages without
	// their memberships: every folder is evaluated again.
	incomplete := st.Incomplete()
	e.incomplete = incomplete
	if incomplete {
		slog.Warn("the index was interrupted while writing a large change; re-evaluating every folder")
	}
	e.fillPending = snap.Unstatted
	b := st.NewBatch()
	for name, f := range e.folders {
		fs, ok := snap.Folders[name]
		switch {
		case !ok:
			f.state = index.FolderState{DefHash: f.hash, UIDValidity: uint32(cfg.Now().Unix()), NextUID: 1}
			f.rebuild = true
		case fs.DefHash != f.hash:
			// SPEC §6.6: the definition changed; members are recomputed
			// by the next sync, names (derived from the backend) are kept.
			f.state = *fs
			f.state.DefHash = f.hash
			f.rebuild = true
		default:
			f.state = *fs
		}
		if incomplete {
			f.rebuild = true
		}
		if !f.rebuild && f.state.Ticked != 0 {
			// The first tick looks only at the messages whose age
			// crossed an interval since (see Tick).
			f.lastTick = time.Unix(0, f.state.Ticked)
		}
		set := snap.MemberSets[name] // built by the snapshot's reader
		if set == nil {
			set = index.NewMemberSet(len(snap.Members[name])) // sized once, not by doubling
			for _, m := range snap.Members[name] {
				set.Put(m)
			}
		}
		f.members = set
		if msgs, ok := snap.MemberMessages[name]; ok {
			f.loaded, f.loadedMsgs, f.loadedKeys = snap.Members[name], msgs, snap.MemberKeys[name]
		}
		for _, m := range snap.Members[name] {
			if m.Linger != 0 {
				f.noteExpiry(m.Linger)
			}
			if m.Name != "" {
				f.alias[m.Name] = key{m.Mailbox, m.Base}
			}
		}
		// The folder header is written by the first update, so that a
		// crash before it leaves the folder marked for a rebuild.
	}
	for name, ms := range snap.Members { // folders no longer configured
		if _, ok := e.folders[name]; !ok && !cfg.Inspect {
			for _, m := range ms {
				b.DeleteMember(name, m)
			}
			b.DeleteFolder(name)
		}
	}
	if err := b.Commit(); err != nil {
		st.Close()
		return nil, err
	}
	e.showPending = true
	e.publishLocked() // folders listed empty until the first sync
	slog.Debug("index loaded", "load", tLoad, "engine", time.Since(t0)-tLoad)
	return e, nil
}

// newFolder compiles a folder's definition.
func newFolder(d Folder) (*folder, error) {
	f := &folder{def: d, members: &index.MemberSet{}, alias: map[string]key{}, t: newTrees()}
	h := fnv.New64a()
	texts := []string{d.Query}
	if d.Dovecot != nil {
		texts = d.Dovecot.Rules
		for _, b := range d.Dovecot.Boxes {
			fmt.Fprintf(h, "%q %v %d|", b.Name, b.Negative, b.Rule)
		}
	} else {
		fmt.Fprintf(h, "%q|", d.Mailboxes)
	}
	for _, t := range texts {
		q, err := query.Compile(t)
		if err != nil {
			return nil, fmt.Errorf("folder %s: %w", d.Name, err)
		}
		f.rules = append(f.rules, q)
		f.needsStat = f.needsStat || q.Needs().Stat
		fmt.Fprintf(h, "%q|", q.Root.String())
	}
	f.hash = h.Sum64()
	return f, nil
}

// arrange orders the folders and computes what the index must hold for
// them. Updates evaluate folders without size or date conditions first: a
// message they take is stat()ed (ensureStat), and then the others can see
// it too. e.op must be held once the engine is running.
func (e *Engine) arrange() {
	e.order, e.evalOrder = e.order[:0], e.evalOrder[:0]
	var needs []query.Needs
	for name, f := range e.folders {
		e.order = append(e.order, name)
		for _, q := range f.rules {
			needs = append(needs, q.Needs())
		}
	}
	sort.Strings(e.order)
	for _, pass := range []bool{false, true} {
		for _, name := range e.order {
			if e.folders[name].needsStat == pass {
				e.evalOrder = append(e.evalOrder, name)
			}
		}
	}
	if e.store != nil {
		// What the index holds only grows while running: a removed
		// folder's headers stay (dropping them would re-read every
		// message).
		needs = append(needs, e.needs)
	}
	e.needs, e.needsHash = unionNeeds(needs)
}

// AddFolder adds a folder while running (a search made with mkdir): its
// membership is computed at once, reading the backend files again if its
// query needs headers the index does not hold.
func (e *Engine) AddFolder(ctx context.Context, d Folder) error {
	f, err := newFolder(d)
	if err != nil {
		return err
	}
	if err := e.lockOp(); err != nil {
		return err
	}
	if _, dup := e.folders[d.Name]; dup {
		e.op.Unlock()
		return fmt.Errorf("folder %q: %w", d.Name, maildir.ErrExist)
	}
	f.state = index.FolderState{DefHash: f.hash, UIDValidity: uint32(e.cfg.Now().Unix()), NextUID: 1}
	f.rebuild = true
	e.folders[d.Name] = f
	e.arrange()
	defer e.op.Unlock()
	if err := e.syncAllLocked(ctx); err != nil {
		// Added whole or not at all: a caller that retries (an
		// interrupted mkdir) finds no half-made folder.
		if rerr := e.removeFolderLocked(d.Name); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// RedefineFolder changes a folder's definition while running (the
// configuration was edited): its membership is rebuilt at once, and
// messages that still match keep their names and UIDs (SPEC §6.6).
func (e *Engine) RedefineFolder(ctx context.Context, d Folder) error {
	nf, err := newFolder(d)
	if err != nil {
		return err
	}
	if err := e.lockOp(); err != nil {
		return err
	}
	f := e.folders[d.Name]
	if f == nil {
		e.op.Unlock()
		return fmt.Errorf("folder %q: %w", d.Name, ErrNotFound)
	}
	nf.state, nf.members, nf.alias, nf.pendingKw, nf.kw, nf.nextExpiry, nf.t = f.state, f.members, f.alias, f.pendingKw, f.kw, f.nextExpiry, f.t
	nf.state.DefHash = nf.hash
	nf.rebuild = true
	nf.gen = f.gen + 1
	e.folders[d.Name] = nf
	e.arrange()
	defer e.op.Unlock()
	return e.syncAllLocked(ctx)
}

// RemoveFolder removes a folder while running (rmdir of a search): its
// members and state leave the index. No backend file is touched.
func (e *Engine) RemoveFolder(name string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	return e.removeFolderLocked(name)
}

// removeFolderLocked is RemoveFolder with e.op held.
func (e *Engine) removeFolderLocked(name string) error {
	f := e.folders[name]
	if f == nil {
		return fmt.Errorf("folder %q: %w", name, ErrNotFound)
	}
	b := e.store.NewBatch()
	for mem := range f.members.All() {
		b.DeleteMember(name, mem)
	}
	b.DeleteFolder(name)
	delete(e.folders, name)
	e.arrange()
	return e.commitLocked(b, nil, nil)
}

// Close flushes and closes the index.
// Maintain reclaims index space (Badger's value-log garbage collection);
// call it now and then, e.g. every ten minutes.
func (e *Engine) Maintain() { e.store.RunGC() }

// Close writes a snapshot of the state for a fast next start, then
// flushes and closes the index.
func (e *Engine) Close() error {
	e.lockOpAny()
	defer e.op.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.cfg.Inspect {
		return e.store.Close()
	}
	snap := &index.Snapshot{Messages: e.msgs, Mailboxes: e.mstate, Folders: map[string]*index.FolderState{},
		Members: map[string][]*index.Member{}, MemberKeys: map[string][]byte{}}
	for name, f := range e.folders {
		st := f.state
		if f.rebuild {
			st.DefHash = 0 // never evaluated under this definition: rebuild next time
		}
		snap.Folders[name] = &st
		snap.Members[name], snap.MemberKeys[name] = f.snapshotMembers()
	}
	err := e.store.SaveSnapshot(snap)
	if err != nil {
		slog.Warn("snapshot not written; the next start reads the index key by key", "err", err)
	}
	return e.store.Close()
}

func unionNeeds(ns []query.Needs) (query.Needs, uint32) {
	var u query.Needs
	hdr := map[string]bool{"message-id": false}
	for _, n := range ns {
		for _, h := range n.Headers {
			hdr[h] = true
		}
		u.Sent = u.Sent || n.Sent
		u.Threads = u.Threads || n.Threads
		u.Body = u.Body || n.Body
		u.AllHeaders = u.AllHeaders || n.AllHeaders
		u.TimeRelated = u.TimeRelated || n.TimeRelated
	}
	for h, ok := range hdr {
		if ok {
			u.Headers = append(u.Headers, h)
		}
	}
	sort.Strings(u.Headers)
	h := fnv.New64a()
	fmt.Fprintf(h, "%q %v %v", u.Headers, u.Sent, u.Threads)
	return u, uint32(h.Sum64()) // the low half: indexes stored 64 bits once
}

// vbase32 is RFC 4648 base32 in lower case.
var vbase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// vkey is the base32 part of a virtual base name (see the package comment).
type vkey [26]byte

// virtualKey hashes a backend message's identity.
func virtualKey(mailbox, base string) vkey {
	buf := make([]byte, 0, 128)
	sum := sha256.Sum256(append(append(append(buf, mailbox...), 0), base...))
	var enc [28]byte
	vbase32.Encode(enc[:], sum[:17]) // the first 26 characters cover bits 0-129
	return vkey(enc[:26])
}

// timePrefix is the time part of a virtual base name: the leading digits
// of the backend base name (its delivery time in Maildir names), zero-padded
// to 10, at most 20; "0000000000" without any.
func timePrefix(base string) string {
	n := 0
	for n < len(base) && n < 20 && base[n] >= '0' && base[n] <= '9' {
		n++
	}
	if n >= 10 {
		return base[:n]
	}
	return "0000000000"[:10-n] + base[:n]
}

// vbaseOf builds a virtual base name from its parts.
func vbaseOf(base string, k vkey) string {
	return timePrefix(base) + ".V" + string(k[:]) + ".vmfs"
}

// VirtualBase returns the virtual base name of a backend message.
func VirtualBase(mailbox, base string) string {
	return vbaseOf(base, virtualKey(mailbox, base))
}

// parseVirtualBase returns the key and the time part of a virtual base
// name.
func parseVirtualBase(s string) (vkey, string, bool) {
	var k vkey
	dot := strings.IndexByte(s, '.')
	if dot < 10 || dot > 20 || len(s) != dot+2+len(k)+len(".vmfs") || s[dot+1] != 'V' || s[dot+2+len(k):] != ".vmfs" {
		return k, "", false
	}
	for i := 0; i < dot; i++ {
		if s[i] < '0' || s[i] > '9' {
			return k, "", false
		}
	}
	copy(k[:], s[dot+2:])
	return k, s[:dot], true
}

// keyOf returns the virtual key of a member's message: read back from the
// name of its entry old (nil: none; a derived name holds it), else
// computed. Only the entries and the snapshot keep it (SHA-256 of every
// member would add a tenth of a second to a start at 1,000,000 messages).
// A member shown under its client's name needs none: zero.
func keyOf(old *vent, mem *index.Member) vkey {
	if mem.Name != "" {
		return vkey{}
	}
	if old != nil {
		if k, _, ok := parseVirtualBase(old.vbase()); ok {
			return k
		}
	}
	return virtualKey(mem.Mailbox, mem.Base)
}

// settleTime is how far a directory's mtime must lie before a scan for the
// scan to be trusted later: a change within the same timestamp tick as the
// scan would leave the mtime unchanged.
const settleTime = 2 * time.Second

// Sync brings the index up to date with the whole backend: new and vanished
// mailboxes, and every mailbox whose directories changed since it was last
// scanned. Unchanged mailboxes are recognised by their directory mtimes.
func (e *Engine) Sync(ctx context.Context) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	return e.syncAllLocked(ctx)
}

// syncAllLocked is Sync with e.op held.
func (e *Engine) syncAllLocked(ctx context.Context) error {
	tree, err := maildir.Discover(e.cfg.Root)
	if err != nil {
		slog.Warn("backend", "err", err)
	}
	if len(tree.Mailboxes) == 0 {
		if _, serr := os.Stat(e.cfg.Root); serr != nil {
			return fmt.Errorf("backend %s: %w", e.cfg.Root, serr)
		}
	}
	old := e.mailboxes
	e.mailboxes = map[string]*mailbox{}
	for _, mb := range tree.Mailboxes {
		nmb := &mailbox{Mailbox: mb}
		if o := old[mb.Name]; o != nil {
			nmb.keywords = o.keywords // until this sync reads them again
		}
		e.mailboxes[mb.Name] = nmb
	}
	var names []string
	for name := range e.mailboxes {
		names = append(names, name)
	}
	for name := range e.msgs { // vanished mailboxes are treated as empty
		if _, ok := e.mailboxes[name]; !ok {
			names = append(names, name)
		}
	}
	return e.syncLocked(ctx, names, true)
}

// MailboxChanged re-reads one mailbox (the watcher calls it); a mailbox
// that no longer exists is treated as empty.
func (e *Engine) MailboxChanged(ctx context.Context, name string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	if _, ok := e.mailboxes[name]; !ok {
		if dir := e.dirOf(name); maildir.IsMaildir(dir) {
			e.mailboxes[name] = &mailbox{Mailbox: maildir.Mailbox{Name: name, Path: dir}}
		}
	}
	return e.syncLocked(ctx, []string{name}, false)
}

// DirsChanged re-reads the mailboxes at these directories (the watcher
// calls it); a directory that is no known mailbox makes it sync the whole
// backend.
func (e *Engine) DirsChanged(ctx context.Context, dirs []string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	byPath := make(map[string]string, len(e.mailboxes))
	for name, mb := range e.mailboxes {
		byPath[mb.Path] = name
	}
	var names []string
	for _, d := range dirs {
		name, ok := byPath[d]
		if !ok {
			return e.syncAllLocked(ctx)
		}
		names = append(names, name)
	}
	return e.syncLocked(ctx, names, false)
}

// FilesChanged takes the message files the watcher saw change, by mailbox
// directory ("cur/NAME", "new/NAME"), and updates just those messages: no
// directory is listed, so the cost follows the change, not the mailbox
// size. A directory that is no known mailbox makes it sync everything.
func (e *Engine) FilesChanged(ctx context.Context, files map[string][]string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	byPath := make(map[string]*mailbox, len(e.mailboxes))
	for _, mb := range e.mailboxes {
		byPath[mb.Path] = mb
	}
	for dir := range files {
		if byPath[dir] == nil {
			return e.syncAllLocked(ctx)
		}
	}

	type seen struct {
		name  string
		isNew bool
		fi    os.FileInfo
	}
	var jobs []*extractJob
	changed := map[key]bool{}
	recheck := map[string][]string{}
	batch := e.store.NewBatch()
	for dir, rels := range files {
		mb := byPath[dir]
		present := map[string]seen{}
		var absent []seen
		for _, rel := range rels {
			sub, name, ok := strings.Cut(rel, "/")
			if !ok || (sub != "cur" && sub != "new") {
				continue
			}
			if _, err := maildir.ParseName(name); err != nil {
				continue
			}
			fi, err := os.Lstat(filepath.Join(dir, rel))
			slog.Debug("file changed", "mailbox", mb.Name, "file", rel, "exists", err == nil)
			s := seen{name: name, isNew: sub == "new", fi: fi}
			if err == nil && fi.Mode().IsRegular() {
				present[maildir.BaseOf(name)] = s
			} else {
				if err == nil { // gone as a message: a FIFO, socket or device now
					slog.Warn("skipped a file that is not a regular file", "path", filepath.Join(dir, rel), "mode", fi.Mode().String())
				}
				absent = append(absent, s)
			}
		}
		msgs := e.msgs[mb.Name]
		for base, s := range present {
			k := key{mb.Name, base}
			delete(e.suspects, k)
			m := msgs.Get(base)
			switch {
			case m == nil || m.NeedsHash != e.needsHash:
				jobs = append(jobs, &extractJob{mb: mb, ent: &maildir.Entry{New: s.isNew, Name: s.name}})
			case m.Name != s.name || m.New != s.isNew || unstatted(m):
				m.Name, m.New = s.name, s.isNew
				m.Size, m.MTime = s.fi.Size(), s.fi.ModTime().UnixNano()
				batch.PutMessage(mb.Name, m)
				changed[k] = true
			}
		}
		for _, s := range absent {
			base := maildir.BaseOf(s.name)
			if _, ok := present[base]; ok {
				continue // renamed: handled above
			}
			m := msgs.Get(base)
			if m == nil || m.Name != s.name || m.New != s.isNew {
				continue // not the name the message has
			}
			k := key{mb.Name, base}
			if e.cfg.Recheck != nil && !e.suspects[k] {
				// Renamed again before it was looked at, maybe: its
				// new name is reported by the time this file is again.
				// Listed as it was until then.
				if e.suspects == nil {
					e.suspects = map[key]bool{}
				}
				e.suspects[k] = true
				recheck[dir] = append(recheck[dir], subdir(s.isNew)+"/"+s.name)
				continue
			}
			delete(e.suspects, k)
			slog.Debug("message gone", "mailbox", mb.Name, "file", s.name)
			e.forget(batch, k)
			changed[k] = true
		}
	}
	if err := e.extractAll(ctx, jobs); err != nil {
		return err
	}
	e.record(batch, jobs, changed)
	for _, j := range jobs {
		if st := e.mstate[j.mb.Name]; j.failed && st != nil && st.Settled {
			st.Settled = false // the next sync reads the mailbox again
			batch.PutMailbox(j.mb.Name, st)
		}
	}
	if len(recheck) > 0 {
		e.cfg.Recheck(recheck)
	}
	return e.commitLocked(batch, changed, nil)
}

// extractJob is a new message to read.
type extractJob struct {
	mb  *mailbox
	ent *maildir.Entry
	out *index.Message // nil: vanished or unreadable (logged by extract)
	// failed: the file is there but could not be read (permissions, an
	// I/O error); its mailbox is scanned again by the next sync.
	failed bool
}

// base is the job's base name.
func (j *extractJob) base() string { return maildir.BaseOf(j.ent.Name) }

// jobBlock allocates extract jobs a block at a time: a cold index makes
// one per message, pointing at its listing's entry. At a million messages
// they and their list take 40 MB, against 72 MB for jobs allocated one by
// one with a copy of the entry and the base name; the sync's largest heap
// was while they lived.
type jobBlock []extractJob

func (b *jobBlock) job(mb *mailbox, ent *maildir.Entry) *extractJob {
	if len(*b) == 0 {
		*b = make([]extractJob, 4096)
	}
	j := &(*b)[0]
	*b = (*b)[1:]
	j.mb, j.ent = mb, ent
	return j
}

// path is the job's file.
func (j *extractJob) path() string {
	sub := "cur"
	if j.ent.New {
		sub = "new"
	}
	return filepath.Join(j.mb.Path, sub, j.ent.Name)
}

// extractAll reads new messages in parallel, reporting progress for big
// batches. e.op must be held.
func (e *Engine) extractAll(ctx context.Context, jobs []*extractJob) error {
	needs, needsHash := e.needs, e.needsHash
	var done atomic.Int64
	stopProgress := e.progress(len(jobs), &done)
	parallel(ctx, len(jobs), ioWorkers(), func(i int) {
		j := jobs[i]
		j.out = extract(j.mb, *j.ent, needs, needsHash)
		if j.out == nil {
			_, err := os.Lstat(j.path())
			j.failed = err == nil
		}
		done.Add(1)
	})
	stopProgress()
	return ctx.Err()
}

// record adds extracted messages to memory, the batch and changed; with
// changed nil (a bulk), their mailboxes are written whole. e.op must be
// held.
func (e *Engine) record(batch *index.Batch, jobs []*extractJob, changed map[key]bool) {
	if len(jobs) > 1000 { // size the maps once, not by doubling
		per := map[string]int{}
		for _, j := range jobs {
			per[j.mb.Name]++
		}
		for mb, n := range per {
			if e.msgs[mb] == nil {
				e.msgs[mb] = index.NewMessageSet(n)
			}
		}
	}
	var sets map[string]bool // bulk: the mailboxes written whole
	if changed == nil {
		sets = map[string]bool{}
	}
	for _, j := range jobs {
		if j.out == nil {
			continue
		}
		if e.msgs[j.mb.Name] == nil {
			e.msgs[j.mb.Name] = &index.MessageSet{}
		}
		e.msgs[j.mb.Name].Put(j.out)
		if sets != nil {
			sets[j.mb.Name] = true
			continue
		}
		batch.PutMessage(j.mb.Name, j.out)
		changed[key{j.mb.Name, j.base()}] = true
	}
	for mb := range sets {
		batch.PutMessages(mb, e.msgs[mb]) // one op, not one per message
	}
}

// progress reports, every 200 ms until stopped, how many of total new
// messages have been read (only for syncs big enough to take a while).
func (e *Engine) progress(total int, done *atomic.Int64) (stop func()) {
	if e.cfg.Progress == nil || total < 2000 {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				e.cfg.Progress(int(done.Load()), total)
				return
			case <-t.C:
				e.cfg.Progress(int(done.Load()), total)
			}
		}
	}()
	return func() { close(quit); <-finished }
}

type scanned struct {
	name    string
	state   *index.MailboxState
	entries []maildir.Entry
	gone    bool // the mailbox does not exist
	skip    bool // unchanged since the last scan
	// keywords is the mailbox's dovecot-keywords, nil if it has none.
	keywords map[byte]string
}

// syncLocked scans the named mailboxes (trusting scan state when
// useState), extracts new messages in parallel, and updates members. e.op
// must be held.
func (e *Engine) syncLocked(ctx context.Context, names []string, useState bool) error {
	start := e.cfg.Now()
	t0 := time.Now()
	mbs := make([]*mailbox, len(names))
	olds := make([]*index.MailboxState, len(names))
	for i, n := range names {
		mbs[i], olds[i] = e.mailboxes[n], e.mstate[n]
	}
	needsHash, flagsOnly := e.needsHash, e.needs.FlagsOnly()

	// 1. List the mailboxes (directory entries only), several at a time:
	// on a cold cache each listing mostly waits for the disk.
	scans := make([]scanned, len(names))
	errs := make([]error, len(names))
	scanOne := func(i int) {
		name, mb := names[i], mbs[i]
		sc := scanned{name: name}
		defer func() { scans[i] = sc }()
		if mb == nil {
			sc.gone = true
			return
		}
		cur, errc := os.Stat(filepath.Join(mb.Path, "cur"))
		nw, errn := os.Stat(filepath.Join(mb.Path, "new"))
		if errc != nil || errn != nil {
			sc.gone = true
			return
		}
		// The keyword map is read even when the listing is skipped: it is
		// what KEYWORD queries and virtual names see of the letters, and
		// it changes without touching cur/ or new/.
		if kw, err := maildir.ReadKeywords(mb.Path); err == nil {
			sc.keywords = kw
		} else {
			slog.Warn("keyword map unreadable", "mailbox", name, "err", err)
		}
		st := &index.MailboxState{CurMTime: cur.ModTime().UnixNano(), NewMTime: nw.ModTime().UnixNano(), NeedsHash: needsHash}
		st.Settled = start.Sub(cur.ModTime()) > settleTime && start.Sub(nw.ModTime()) > settleTime
		if old := olds[i]; useState && old != nil && old.Settled && old.CurMTime == st.CurMTime &&
			old.NewMTime == st.NewMTime && old.NeedsHash == needsHash {
			sc.skip = true
			return
		}
		var ents []maildir.Entry
		var err error
		if e.msgs[name].Len() == 0 {
			// Every name is new and kept: in shared blocks.
			ents, err = maildir.ListWith(mb.Path, (&arena.Strings{}).Copy)
		} else {
			ents, err = maildir.List(mb.Path)
		}
		if err != nil && ents == nil {
			if errors.Is(err, os.ErrNotExist) {
				sc.gone = true
				return
			}
			errs[i] = fmt.Errorf("sync %s: %w", name, err)
			return
		}
		if err != nil {
			slog.Warn("skipped files", "mailbox", name, "err", err)
		}
		st.Count = len(ents)
		sc.state, sc.entries = st, ents
	}
	parallel(ctx, len(names), 8, scanOne)
	if err := ctx.Err(); err != nil {
		return err // not every mailbox was listed
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// 2. Find new messages and renames; extract the new ones in parallel.
	// A mailbox the index has nothing of (a cold index) is all new: the
	// job list is sized for those once.
	fresh := 0
	for _, sc := range scans {
		if !sc.skip && !sc.gone && e.msgs[sc.name].Len() == 0 {
			fresh += len(sc.entries)
		}
	}
	jobs := make([]*extractJob, 0, fresh)
	var blocks jobBlock
	changed := map[key]bool{}
	deleted := map[key]bool{}
	batch := e.store.NewBatch()
	for i, sc := range scans {
		if sc.keywords != nil && mbs[i] != nil {
			if prev := mbs[i].keywords; prev != nil && !maps.Equal(prev, sc.keywords) {
				// The letters mean other keywords now: every message
				// of the mailbox is looked at again.
				for m := range e.msgs[sc.name].All() {
					changed[key{sc.name, m.Base()}] = true
				}
			}
			mbs[i].keywords = sc.keywords
		}
		if sc.skip {
			continue
		}
		old := e.msgs[sc.name]
		if sc.gone {
			// The set goes as a whole: forget finds none to delete from
			// one by one while old yields.
			delete(e.msgs, sc.name)
			for m := range old.All() {
				k := key{sc.name, m.Base()}
				deleted[k] = true
				e.forget(batch, k)
			}
			delete(e.mstate, sc.name)
			batch.DeleteMailbox(sc.name)
			continue
		}
		// last maps each base name listed to its last entry: of several
		// (a message moved or renamed while listed), the last one.
		ents := sc.entries
		last := make(map[string]int, len(ents))
		for j, ent := range ents {
			last[maildir.BaseOf(ent.Name)] = j
		}
		var missing []string
		for m := range old.All() {
			if _, ok := last[m.Base()]; !ok {
				missing = append(missing, m.Base())
			}
		}
		if len(missing) > 0 {
			n := len(ents)
			ents = append(ents[:n:n], e.confirmMissing(mbs[i], old, missing)...)
			for j := n; j < len(ents); j++ {
				last[maildir.BaseOf(ents[j].Name)] = j
			}
		}
		for j, ent := range ents {
			base := maildir.BaseOf(ent.Name)
			if last[base] != j {
				continue
			}
			m := old.Get(base)
			switch {
			case m == nil || m.NeedsHash != needsHash:
				jobs = append(jobs, blocks.job(mbs[i], &ents[j]))
			case m.Name != ent.Name || m.New != ent.New:
				m.Name, m.New = ent.Name, ent.New
				batch.PutMessage(sc.name, m)
				changed[key{sc.name, base}] = true
			}
		}
		for _, base := range missing { // those confirmMissing did not find
			if _, ok := last[base]; ok {
				continue
			}
			deleted[key{sc.name, base}] = true
			slog.Debug("message gone", "mailbox", sc.name, "base", base)
			e.forget(batch, key{sc.name, base})
		}
	}

	listed := time.Now()
	read := e.extractAll
	if flagsOnly && len(jobs) >= deferMin {
		read = func(ctx context.Context, jobs []*extractJob) error { return e.deferStat(ctx, jobs, needsHash) }
	}
	if err := read(ctx, jobs); err != nil {
		return err
	}
	extracted := time.Now()

	// 3. Record messages and scan state, then recompute membership. A
	// bulk of new messages (a cold index, a mailbox of most of the mail
	// appearing) has every folder evaluated whole, which is cheaper than
	// message by message and needs no set of the changed ones (at a
	// million messages that set was 114 MB).
	existing := 0
	for _, ms := range e.msgs {
		existing += ms.Len()
	}
	bulk := len(jobs) >= deferMin && len(jobs) >= existing
	if bulk {
		e.record(batch, jobs, nil)
	} else {
		e.record(batch, jobs, changed)
	}
	if e.mstate == nil {
		e.mstate = map[string]*index.MailboxState{}
	}
	retry := map[string]bool{}
	for _, j := range jobs {
		if j.failed {
			retry[j.mb.Name] = true
		}
	}
	for _, sc := range scans {
		if sc.state != nil {
			if retry[sc.name] {
				// Not trusted later: the next sync lists it again and
				// reads what could not be read this time.
				sc.state.Settled = false
			}
			e.mstate[sc.name] = sc.state
			batch.PutMailbox(sc.name, sc.state)
		}
	}
	for k := range deleted {
		changed[k] = true
	}
	// jobs is not used below, so that the collector may free them during
	// the update (at a million new messages they are 100 MB).
	nJobs := len(jobs)
	if nJobs < deferMin {
		return e.commitLocked(batch, changed, nil)
	}
	// A big batch (a cold index) is written while the folders are already
	// served from memory; the next operation waits for it (lockOp).
	touched := e.update(batch, changed, bulk)
	e.publishLocked()
	updated := time.Now()
	slog.Debug("sync", "mailboxes", len(names), "new", nJobs, "list", listed.Sub(t0), "read", extracted.Sub(listed),
		"update", updated.Sub(extracted))
	done := make(chan struct{})
	e.committed = done
	go func() {
		defer close(done)
		if err := batch.Commit(); err != nil {
			slog.Error("index not written; the next start reads the backend again", "err", err)
		}
		slog.Debug("sync committed", "took", time.Since(updated))
	}()
	e.notify(touched)
	return nil
}

// confirmMissing looks again for messages a listing did not show: a file
// renamed while its directory was read may be missed by readdir under
// both names. A message whose recorded file is still there is listed
// under it; for the others the mailbox is listed once more. It returns
// the entries found.
func (e *Engine) confirmMissing(mb *mailbox, old *index.MessageSet, missing []string) []maildir.Entry {
	var found []maildir.Entry
	var gone []string
	for _, base := range missing {
		m := old.Get(base)
		if fi, err := os.Lstat(e.pathOf(mb.Name, m)); err == nil && fi.Mode().IsRegular() {
			found = append(found, maildir.Entry{New: m.New, Name: m.Name})
		} else {
			gone = append(gone, base)
		}
	}
	if len(gone) == 0 {
		return found
	}
	again, _ := maildir.List(mb.Path)
	want := make(map[string]bool, len(gone))
	for _, b := range gone {
		want[b] = true
	}
	for _, ent := range again {
		if want[maildir.BaseOf(ent.Name)] {
			found = append(found, ent)
		}
	}
	return found
}

// ErrClosed is returned by every change asked of an engine after Close
// (a FUSE request still in flight while the mount shuts down).
var ErrClosed = errors.New("vsync: engine closed")

// lockOp takes e.op, once a big batch's background commit has ended; on
// a closed engine it returns ErrClosed without holding it.
func (e *Engine) lockOp() error {
	e.lockOpAny()
	if e.closed {
		e.op.Unlock()
		return ErrClosed
	}
	return nil
}

// lockOpAny is lockOp, also on a closed engine.
func (e *Engine) lockOpAny() {
	e.op.Lock()
	e.ops++
	if e.committed != nil {
		<-e.committed
		e.committed = nil
	}
}

// commitLocked ends every change made with e.op held — the one write
// path: the members of the changed messages are recomputed (update), the
// folders' Views published, the batch committed, and OnChange told which
// listings changed (touched: folders the caller changed itself, besides
// those update finds). A cold index's big batch (syncLocked) is the one
// change committed otherwise: in the background, after it is published.
func (e *Engine) commitLocked(b *index.Batch, changed map[key]bool, touched []string) error {
	if changed != nil || e.showPending {
		for _, f := range e.update(b, changed, false) {
			if !slices.Contains(touched, f) {
				touched = append(touched, f)
			}
		}
	}
	e.publishLocked()
	if err := b.Commit(); err != nil {
		return err
	}
	e.notify(touched)
	return nil
}

func (e *Engine) notify(folders []string) {
	if len(folders) > 0 && e.cfg.OnChange != nil {
		e.cfg.OnChange(folders)
	}
}

// extract reads a new message's metadata; nil if it vanished or cannot be
// read (logged).
func extract(mb *mailbox, ent maildir.Entry, needs query.Needs, needsHash uint32) *index.Message {
	sub := "cur"
	if ent.New {
		sub = "new"
	}
	p := filepath.Join(mb.Path, sub, ent.Name)
	hdrNeeds := needs
	hdrNeeds.Body, hdrNeeds.AllHeaders = false, false // bodies are read at match time
	qm, err := message.Load(p, hdrNeeds)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			slog.Warn("skipped message", "path", p, "err", err)
		}
		return nil
	}
	m := &index.Message{Name: ent.Name, New: ent.New, Size: qm.Size,
		MTime: qm.Received.UnixNano(), NeedsHash: needsHash}
	mt := &index.Meta{Headers: qm.Headers, ID: qm.ID, References: qm.References}
	if !qm.Sent.IsZero() {
		_, off := qm.Sent.Zone()
		mt.HasSent, mt.Sent, mt.SentOffset = true, qm.Sent.Unix(), int32(off)
	}
	if mt.HasSent || mt.ID != "" || len(mt.References) > 0 || len(mt.Headers) > 0 {
		m.Meta = mt
	}
	return m
}
