package vsync

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"vmfs/index"
	"vmfs/internal/query"
)

// Deferred stat. A message's size and mtime cost one lstat of its file,
// which on a cold cache is most of a cold index (names and flags come from
// the directory listing alone). When no folder needs to read a header, a
// big sync records new messages from their names only (Size < 0: not
// stat()ed yet) and stat()s at once just those that join a folder whose
// rules need neither size nor dates (their UID order and listing
// attributes need both). Folders that do need them (YOUNGER, SINCE,
// LARGER, …) take such a message only once Fill has stat()ed it. Every
// member of every folder has been stat()ed.

// deferMin is the number of new messages from which a sync defers stat().
const deferMin = 1000

// fillChunk is how many messages Fill stat()s per index commit.
const fillChunk = 5000

// unstatted reports whether a message's file has not been stat()ed yet.
func unstatted(m *index.Message) bool { return m.Size < 0 }

// lstatAll stat()s the files at paths in parallel; ok[i] is false for a
// file that vanished or is not a regular file.
func lstatAll(ctx context.Context, paths []string, done *atomic.Int64) (size, mtime []int64, ok []bool) {
	size, mtime, ok = make([]int64, len(paths)), make([]int64, len(paths)), make([]bool, len(paths))
	parallel(ctx, len(paths), ioWorkers(), func(i int) {
		if fi, err := os.Lstat(paths[i]); err == nil && fi.Mode().IsRegular() {
			size[i], mtime[i], ok[i] = fi.Size(), fi.ModTime().UnixNano(), true
		}
		if done != nil {
			done.Add(1)
		}
	})
	return size, mtime, ok
}

// ioWorkers is how many goroutines read or stat backend files at once:
// that is mostly waiting for the disk, so more than the cores keep it
// busy on a cold cache.
func ioWorkers() int { return max(8, 4*runtime.NumCPU()) }

// parallel calls fn(0) … fn(n-1) on up to workers goroutines and returns
// when all calls have returned; once ctx ends, no further call starts.
func parallel(ctx context.Context, n, workers int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(n, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// deferStat records jobs' messages from their names, keeping what an
// earlier record knew of the file, and stat()s those that a folder without
// size or date conditions takes. Messages that vanished meanwhile are
// dropped (j.out nil). e.op must be held (readers of the views do not
// wait for it).
func (e *Engine) deferStat(ctx context.Context, jobs []*extractJob, needsHash uint32) error {
	now := e.cfg.Now()
	names := e.mailboxNames()
	type flagFolder struct {
		f   *folder
		sel map[string]int
	}
	var ffs []flagFolder
	for _, fname := range e.order {
		if f := e.folders[fname]; !f.needsStat {
			ffs = append(ffs, flagFolder{f, f.sel(names)})
		}
	}
	var want []*extractJob
	var paths []string
	var qm query.Msg
	for _, j := range jobs {
		m := &index.Message{Name: j.ent.Name, New: j.ent.New, Size: -1, NeedsHash: needsHash}
		if old := e.msgs[j.mb.Name].Get(j.base()); old != nil && !unstatted(old) {
			m.Size, m.MTime = old.Size, old.MTime
		}
		j.out = m
		if !unstatted(m) {
			continue
		}
		e.fillMsg(&qm, j.mb.Name, m)
		for _, ff := range ffs {
			if r, in := ff.sel[j.mb.Name]; in && ff.f.rules[r].Match(&qm, now) {
				want = append(want, j)
				paths = append(paths, j.path())
				break
			}
		}
	}
	e.fillPending = e.fillPending || len(want) < len(jobs)
	// Progress counts every new message; those not stat()ed are done.
	var done atomic.Int64
	done.Store(int64(len(jobs) - len(want)))
	stopProgress := e.progress(len(jobs), &done)
	size, mtime, ok := lstatAll(ctx, paths, &done)
	stopProgress()
	for i, j := range want {
		if ok[i] {
			j.out.Size, j.out.MTime = size[i], mtime[i]
		} else {
			j.out = nil // vanished (the watcher reports where it went) or not a file
		}
	}
	return ctx.Err()
}

func subdir(isNew bool) string {
	if isNew {
		return "new"
	}
	return "cur"
}

// mailboxNames returns the names of the backend's mailboxes. e.op must be
// held.
func (e *Engine) mailboxNames() []string {
	names := make([]string, 0, len(e.mailboxes))
	for n := range e.mailboxes {
		names = append(names, n)
	}
	return names
}

// ensureStat stat()s a message about to join a folder, if that has not
// been done; false if its file is gone. e.op must be held: this is for the
// few messages of an incremental change (a big sync stat()s in
// deferStat).
func (e *Engine) ensureStat(b *index.Batch, mailbox string, m *index.Message) bool {
	if !unstatted(m) {
		return true
	}
	fi, err := os.Lstat(e.pathOf(mailbox, m))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	m.Size, m.MTime = fi.Size(), fi.ModTime().UnixNano()
	b.PutMessage(mailbox, m)
	return true
}

// Fill stat()s the messages that a big sync recorded from their names only
// and that a folder with size or date conditions may take, and evaluates
// them for those folders, in chunks so that clients' write-backs are not
// held up. It returns when none is left to do (or ctx ends); messages whose
// files have vanished are left for the watcher's next report. Call it after
// Sync, e.g. in the background once the mount is up.
func (e *Engine) Fill(ctx context.Context) error {
	todo, err := e.fillTodo()
	if err != nil || len(todo) == 0 {
		return err
	}
	start, filled, want := time.Now(), 0, 0
	for _, l := range todo {
		want += len(l.msgs)
	}
	for _, l := range todo {
		for ms := l.msgs; len(ms) > 0 && ctx.Err() == nil; {
			chunk := ms[:min(fillChunk, len(ms))]
			ms = ms[len(chunk):]
			n, err := e.fillChunk(ctx, l.mailbox, chunk)
			filled += n
			if err != nil {
				e.setFillPending()
				return err
			}
		}
	}
	if filled < want {
		e.setFillPending() // vanished or moved meanwhile: try again later
	}
	if filled >= deferMin {
		slog.Info("sizes and dates read", "messages", filled, "took", time.Since(start).Round(time.Millisecond))
	}
	return ctx.Err()
}

// fillList is a mailbox's messages that Fill is to stat() (by mailbox: 8
// bytes a message, not 24 with its mailbox's name each; half a million
// at a cold index of a million).
type fillList struct {
	mailbox string
	msgs    []*index.Message
}

// fillTodo returns the messages Fill is to stat().
func (e *Engine) fillTodo() ([]fillList, error) {
	if err := e.lockOp(); err != nil {
		return nil, err
	}
	defer e.op.Unlock()
	if !e.fillPending {
		return nil, nil
	}
	e.fillPending = false
	names := e.mailboxNames()
	need := map[string]bool{}
	for _, f := range e.folders {
		if f.needsStat {
			for mb := range f.sel(names) {
				need[mb] = true
			}
		}
	}
	var todo []fillList
	for mb := range need {
		l := fillList{mailbox: mb}
		for m := range e.msgs[mb].All() {
			if unstatted(m) {
				l.msgs = append(l.msgs, m)
			}
		}
		if len(l.msgs) > 0 {
			todo = append(todo, l)
		}
	}
	return todo, nil
}

func (e *Engine) setFillPending() {
	e.lockOpAny()
	defer e.op.Unlock()
	e.fillPending = true
}

func (e *Engine) fillChunk(ctx context.Context, mailbox string, chunk []*index.Message) (int, error) {
	if err := e.lockOp(); err != nil {
		return 0, err
	}
	defer e.op.Unlock()
	paths := make([]string, len(chunk))
	for i, m := range chunk {
		paths[i] = e.pathOf(mailbox, m)
	}
	size, mtime, ok := lstatAll(ctx, paths, nil)
	b := e.store.NewBatch()
	changed := map[key]bool{}
	for i, m := range chunk {
		// Still the same record, at the same place: e.op kept syncs out,
		// but check rather than trust.
		if !ok[i] || e.msgs[mailbox].Get(m.Base()) != m || !unstatted(m) || e.pathOf(mailbox, m) != paths[i] {
			continue
		}
		// Kept in memory, and in the snapshot written at stop, not written
		// to the store: most of these join no folder, and at a million
		// messages writing them all made Badger compact for as long as
		// Fill ran, with 60-90 MB of its table builders and memtables
		// live (the largest heap of a cold index). A message that joins
		// a folder is written then (folder.apply), so that every member's
		// record in the store has its size and date; after a crash the
		// others are stat()ed again.
		m.Size, m.MTime, m.Unsaved = size[i], mtime[i], true
		changed[key{mailbox, m.Base()}] = true
	}
	if len(changed) > 0 {
		e.store.MarkUnsaved()
	}
	if err := e.commitLocked(b, changed, nil); err != nil {
		return 0, err
	}
	return len(changed), nil
}
