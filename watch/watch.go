// Package watch turns fsnotify events on a backend tree into coalesced
// change batches: which mailbox directories changed, whether mailboxes may
// have appeared or vanished, and whether events were lost and everything
// must be rescanned. It watches every mailbox's cur/ and new/ and every
// directory where a mailbox can appear, always drains fsnotify's Errors,
// starts a fresh watcher after an overflow, re-arms watches on recreated
// directories, and polls what it cannot watch when inotify's limits run
// out.
package watch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"vmfs/internal/maildir"
)

// Batch is one coalesced set of changes.
type Batch struct {
	// Files maps a mailbox directory to the message files that changed in
	// it ("cur/NAME", "new/NAME": created, renamed to or from, removed).
	Files map[string][]string
	// Dirs are mailbox directories to list again as a whole (polled ones,
	// or ones with too many changes to name).
	Dirs   []string
	Tree   bool // directories appeared or vanished: mailboxes may have too
	Rescan bool // events may have been lost: check everything
}

// maxFiles is how many changed files of one mailbox a batch names before
// it asks for the whole mailbox to be listed instead.
const maxFiles = 2000

// Options tune a Watcher.
type Options struct {
	// Settle is how long the watcher waits after an event for more before
	// it delivers a batch (default 10 ms); MaxDelay bounds the wait in a
	// steady stream of events (default 100 ms).
	Settle, MaxDelay time.Duration
	// PollEvery is how often unwatched directories are polled (default 1 s).
	PollEvery time.Duration
	// MaxWatches, if positive, limits the watches the watcher adds (for
	// tests of what happens when inotify's limit is reached).
	MaxWatches int
	// MarkDir, if set, is a private directory (not in the backend) where
	// Recheck writes its barriers (see Recheck).
	MarkDir string
}

// Watcher watches one backend root.
type Watcher struct {
	root string
	opts Options
	out  func(Batch)

	mu      sync.Mutex // protects everything below
	fsw     *fsnotify.Watcher
	watched map[string]uint64    // directories with a watch → their inode
	polled  map[string]time.Time // directories we could not watch → last mtime
	pending Batch
	dirs    map[string]bool
	files   map[string]map[string]bool
	kick    chan struct{}
	first   time.Time // when the pending batch got its first change
	// waiting holds the files of Recheck calls until their barrier's
	// event is read; mark numbers the barriers.
	waiting []recheck
	mark    uint64
}

// recheck is the files of one Recheck call, waiting for barrier mark.
type recheck struct {
	mark  uint64
	files map[string][]string
}

// pairWait is how long Recheck waits when it has no barrier: both halves
// of a rename are queued by the kernel at once, so the watcher has read
// the second well within it unless it is far behind.
const pairWait = 50 * time.Millisecond

// New sets up the watches of a backend root; Run delivers the batches.
func New(root string, opts Options, out func(Batch)) (*Watcher, error) {
	if opts.Settle == 0 {
		opts.Settle = 5 * time.Millisecond
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = 100 * time.Millisecond
	}
	if opts.PollEvery == 0 {
		opts.PollEvery = time.Second
	}
	w := &Watcher{root: root, opts: opts, out: out, dirs: map[string]bool{}, files: map[string]map[string]bool{},
		kick: make(chan struct{}, 1)}
	if err := w.restart(); err != nil {
		return nil, err
	}
	return w, nil
}

// Close releases the watches of a watcher that is not to be Run.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fsw.Close()
}

// Run watches until ctx ends, calling out with each batch from one
// goroutine (a slow out makes batches bigger; nothing is lost).
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.deliver(ctx) }()
	w.loop(ctx)
	wg.Wait()
	w.mu.Lock()
	w.fsw.Close()
	w.mu.Unlock()
}

// Watches returns how many directories are watched and how many polled.
func (w *Watcher) Watches() (watched, polled int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watched), len(w.polled)
}

// restart replaces the fsnotify watcher and watches everything again.
func (w *Watcher) restart() error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.fsw
	w.fsw = fsw
	w.watched = map[string]uint64{}
	w.polled = map[string]time.Time{}
	// A new watcher sees no barrier written for the old one: what
	// waited goes with the rescan that follows.
	w.releaseLocked(w.mark)
	w.mu.Unlock()
	if old != nil {
		// fsnotify's Close waits for its reader, which may be blocked
		// sending an event nobody reads any more: drain while closing.
		go func() {
			for range old.Events {
			}
		}()
		go func() {
			for range old.Errors {
			}
		}()
		old.Close()
	}
	w.rearm()
	return nil
}

// rearm (re)discovers the tree and adds a watch on every directory that
// needs one. Adding an existing watch is harmless, and a directory that
// was deleted and recreated gets a new one.
func (w *Watcher) rearm() {
	tree, err := maildir.Discover(w.root)
	if err != nil {
		slog.Warn("watch: backend", "err", err)
	}
	var dirs []string
	dirs = append(dirs, tree.Dirs...)
	for _, mb := range tree.Mailboxes {
		dirs = append(dirs, mb.Path, filepath.Join(mb.Path, "cur"), filepath.Join(mb.Path, "new"))
	}
	// Maildir++ folders being created (".A" before its cur/ exists).
	if ents, err := os.ReadDir(w.root); err == nil {
		for _, e := range ents {
			if e.IsDir() && len(e.Name()) > 1 && e.Name()[0] == '.' && e.Name() != ".." {
				dirs = append(dirs, filepath.Join(w.root, e.Name()))
			}
		}
	}
	if w.opts.MarkDir != "" {
		dirs = append(dirs, w.opts.MarkDir)
	}
	sort.Strings(dirs)
	w.mu.Lock()
	defer w.mu.Unlock()
	want := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		want[d] = true
	}
	for d := range w.watched {
		if !want[d] {
			w.fsw.Remove(d) // gone; the kernel may have dropped it already
			delete(w.watched, d)
		}
	}
	for _, d := range dirs {
		ino := inode(d)
		if old, ok := w.watched[d]; ok && old == ino {
			continue // a directory deleted and recreated has a new inode
		}
		delete(w.watched, d)
		if w.opts.MaxWatches > 0 && len(w.watched) >= w.opts.MaxWatches {
			err = syscall.ENOSPC
		} else {
			err = w.fsw.Add(d)
		}
		switch {
		case err == nil:
			w.watched[d] = ino
			delete(w.polled, d)
		case errors.Is(err, syscall.ENOSPC):
			if _, ok := w.polled[d]; !ok {
				if len(w.polled) == 0 {
					slog.Error("watch: out of inotify watches (raise fs.inotify.max_user_watches); polling the rest", "dir", d)
				}
				w.polled[d] = mtime(d)
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			slog.Warn("watch: cannot watch", "dir", d, "err", err)
			w.polled[d] = mtime(d)
		}
	}
}

func inode(p string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(p, &st) != nil {
		return 0
	}
	return st.Ino
}

func mtime(p string) time.Time {
	if fi, err := os.Stat(p); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

// noteFile adds a changed message file to the pending batch. w.mu must be
// held.
func (w *Watcher) noteFile(mbox, rel string) {
	if !w.dirs[mbox] {
		fs := w.files[mbox]
		if fs == nil {
			fs = map[string]bool{}
			w.files[mbox] = fs
		}
		fs[rel] = true
		if len(fs) > maxFiles {
			delete(w.files, mbox)
			w.dirs[mbox] = true
		}
	}
	w.note("", false, false)
}

// note adds a change to the pending batch. w.mu must be held.
func (w *Watcher) note(dir string, tree, rescan bool) {
	if dir != "" {
		w.dirs[dir] = true
		delete(w.files, dir) // listed as a whole anyway
	}
	w.pending.Tree = w.pending.Tree || tree
	w.pending.Rescan = w.pending.Rescan || rescan
	if w.first.IsZero() {
		w.first = time.Now()
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Watcher) loop(ctx context.Context) {
	poll := time.NewTicker(w.opts.PollEvery)
	defer poll.Stop()
	for {
		w.mu.Lock()
		fsw := w.fsw
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case err, ok := <-fsw.Errors:
			if !ok {
				continue // replaced by restart: the next round reads the new one
			}
			// An overflow or any other error: events may be lost. Do not
			// trust the old watcher's list: start afresh and rescan.
			slog.Warn("watch: events lost; rescanning", "err", err)
			w.restart()
			w.mu.Lock()
			w.note("", true, true)
			w.mu.Unlock()
		case e, ok := <-fsw.Events:
			if !ok {
				continue
			}
			w.event(e)
		case <-poll.C:
			w.poll()
		}
	}
}

func (w *Watcher) event(e fsnotify.Event) {
	dir := filepath.Dir(e.Name)
	parent, name := filepath.Base(dir), filepath.Base(e.Name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opts.MarkDir != "" && dir == w.opts.MarkDir {
		if n, err := strconv.ParseUint(strings.TrimPrefix(name, "barrier-"), 10, 64); err == nil && e.Has(fsnotify.Create) {
			os.Remove(e.Name)
			w.releaseLocked(n)
		}
		return
	}
	switch {
	case parent == "cur" || parent == "new":
		w.noteFile(filepath.Dir(dir), parent+"/"+name) // a message in a mailbox
	case parent == "tmp":
		// deliveries in progress are not mail yet
	case name == "cur" || name == "new":
		w.note(dir, true, false) // a mailbox's cur/ or new/ came or went
	case e.Has(fsnotify.Create) || e.Has(fsnotify.Remove) || e.Has(fsnotify.Rename):
		w.note("", true, false) // a directory in the tree came or went
	}
}

func (w *Watcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, old := range w.polled {
		if t := mtime(d); !t.Equal(old) {
			w.polled[d] = t
			switch filepath.Base(d) {
			case "cur", "new":
				w.note(filepath.Dir(d), false, false)
			default:
				w.note(d, true, false)
			}
		}
	}
}

// Recheck reports message files (by mailbox directory, as Batch.Files)
// again in a later batch, once every event the kernel queued before the
// call has been read: the engine asks for it when a file it was told about
// is gone and no other name of the message was reported (a rename whose
// new name it has not been told yet, or a delete). Then the new name of a
// rename made before the call is in that batch or an earlier one, however
// far behind the kernel's queue the watcher is, and a file still gone and
// unpaired is deleted. The barrier is a file created in MarkDir: inotify
// queues its event after every event queued before it. Without MarkDir,
// or when the file cannot be made, pairWait is waited instead.
func (w *Watcher) Recheck(files map[string][]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mark++
	n := w.mark
	w.waiting = append(w.waiting, recheck{mark: n, files: files})
	if _, watched := w.watched[w.opts.MarkDir]; watched && w.opts.MarkDir != "" {
		p := filepath.Join(w.opts.MarkDir, "barrier-"+strconv.FormatUint(n, 10))
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			return
		}
	}
	time.AfterFunc(pairWait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.releaseLocked(n)
	})
}

// releaseLocked moves the files of the Recheck calls up to barrier n into
// the pending batch. w.mu must be held.
func (w *Watcher) releaseLocked(n uint64) {
	kept := w.waiting[:0]
	for _, r := range w.waiting {
		if r.mark > n {
			kept = append(kept, r)
			continue
		}
		for dir, rels := range r.files {
			for _, rel := range rels {
				w.noteFile(dir, rel)
			}
		}
	}
	w.waiting = kept
}

// deliver hands pending batches to out, after they settle.
func (w *Watcher) deliver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		// Wait for the burst to settle, but not longer than MaxDelay.
		settle := time.NewTimer(w.opts.Settle)
	wait:
		for {
			select {
			case <-ctx.Done():
				settle.Stop()
				return
			case <-w.kick:
				w.mu.Lock()
				age := time.Since(w.first)
				w.mu.Unlock()
				if age >= w.opts.MaxDelay {
					break wait
				}
				settle.Reset(w.opts.Settle)
			case <-settle.C:
				break wait
			}
		}
		settle.Stop()
		w.mu.Lock()
		b := w.pending
		for d := range w.dirs {
			b.Dirs = append(b.Dirs, d)
		}
		for d, fs := range w.files {
			if b.Files == nil {
				b.Files = map[string][]string{}
			}
			for f := range fs {
				b.Files[d] = append(b.Files[d], f)
			}
			sort.Strings(b.Files[d])
		}
		w.pending, w.dirs, w.files, w.first = Batch{}, map[string]bool{}, map[string]map[string]bool{}, time.Time{}
		w.mu.Unlock()
		if len(b.Dirs) == 0 && len(b.Files) == 0 && !b.Tree && !b.Rescan {
			continue
		}
		sort.Strings(b.Dirs)
		if b.Tree {
			w.rearm()
		}
		w.out(b)
	}
}
