package vsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vmfs/index"
	"vmfs/internal/maildir"
)

// crashPoint calls Config.CrashPoint, the reliability tests' hook to end
// the process between a backend change and its index commit.
func (e *Engine) crashPoint(name string) {
	if e.cfg.CrashPoint != nil {
		e.cfg.CrashPoint(name)
	}
}

// ErrNoSave is returned by Deliver for a folder without a save mailbox.
var ErrNoSave = errors.New("folder has no save mailbox")

// ErrNotFound wraps fs.ErrNotExist: no such folder or message.
var ErrNotFound = fmt.Errorf("vsync: %w", fs.ErrNotExist)

// lookup finds a folder member by its virtual name (with or without info).
// e.op must be held.
func (e *Engine) lookup(folderName, vname string) (*folder, key, *index.Message, error) {
	f := e.folders[folderName]
	if f == nil {
		return nil, key{}, nil, fmt.Errorf("folder %q: %w", folderName, ErrNotFound)
	}
	ve := f.t.byBase(maildir.BaseOf(vname))
	if ve == nil {
		return nil, key{}, nil, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
	}
	k := ve.key()
	if f.members.Get(k.mailbox, k.base) == nil {
		return nil, key{}, nil, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
	}
	m := e.msgs[k.mailbox].Get(k.base)
	if m == nil {
		return nil, key{}, nil, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
	}
	return f, k, m, nil
}

// current finds a folder's message by the name it has now: a name it no
// longer has (renamed in the backend or by another client since it was
// listed) is not found, so that a client acting on it rescans instead of
// overwriting newer flags or deleting what it did not see. e.op must be
// held.
func (e *Engine) current(folderName, vname string, inNew bool) (*folder, key, *index.Message, error) {
	f, k, m, err := e.lookup(folderName, vname)
	if err != nil {
		return nil, key{}, nil, err
	}
	if ve := f.t.byUIDOf(f.members.Get(k.mailbox, k.base).UID); ve == nil || ve.name != vname || ve.new != inNew {
		return nil, key{}, nil, fmt.Errorf("%s/%s: renamed since it was listed: %w", folderName, vname, ErrNotFound)
	}
	return f, k, m, nil
}

// SetFlags renames the backend file of the folder's message now called
// vname (in new/ when fromNew) to the info part of newName (its flags —
// standard, keyword letters and unknown ones — in ASCII order, and any
// extra info text), in new/ (toNew) or cur/. The base name is kept. A name
// the message no longer has is not found (ErrNotFound): the client
// rescans. It returns the message's new entry.
func (e *Engine) SetFlags(ctx context.Context, folderName, vname string, fromNew bool, newName string, toNew bool) (Entry, error) {
	nn, err := maildir.ParseName(newName)
	if err != nil {
		return Entry{}, err
	}
	if err := e.lockOp(); err != nil {
		return Entry{}, err
	}
	defer e.op.Unlock()
	f, k, m, err := e.current(folderName, vname, fromNew)
	if err != nil {
		return Entry{}, err
	}
	mb := e.mailboxes[k.mailbox]
	src := e.pathOf(k.mailbox, m)
	var pending string
	if mb != nil {
		nn.Flags, pending = e.backendLetters(f, mb, nn.Flags) // the folder's keyword letters → the mailbox's
	}
	if mb == nil {
		return Entry{}, fmt.Errorf("mailbox %s: %w", k.mailbox, ErrNotFound)
	}

	// The client's info part, on the backend's base name: ":2," or none
	// as the client wrote it (a message in new/ often has none).
	n := maildir.Name{Base: k.base, Flags: nn.Flags, Extra: nn.Extra, HasInfo: nn.HasInfo || !toNew}
	sub := "cur"
	if toNew {
		sub = "new"
	}
	dst := filepath.Join(mb.Path, sub, n.String())
	if src != dst {
		// No search by base name if src is gone: the file was renamed
		// or deleted by someone else, and the client must see that.
		if err := maildir.Rename(src, dst); err != nil {
			return Entry{}, err
		}
	}
	e.crashPoint("after-rename")

	if pending != "" {
		if f.pendingKw == nil {
			f.pendingKw = map[key]string{}
		}
		f.pendingKw[k] = pending
	} else {
		delete(f.pendingKw, k)
	}
	m.Name, m.New = n.String(), toNew
	b := e.store.NewBatch()
	b.PutMessage(k.mailbox, m)
	if err := e.commitLocked(b, map[key]bool{k: true}, nil); err != nil {
		return Entry{}, err
	}
	if mem := f.members.Get(k.mailbox, k.base); mem != nil {
		if ve := f.t.byUIDOf(mem.UID); ve != nil {
			return ve.entry(), nil
		}
	}
	return Entry{}, fmt.Errorf("%s/%s: left the folder: %w", folderName, newName, ErrNotFound)
}

// Delete removes the backend message of the folder's message now called
// vname (every folder that showed it drops it), or moves it into the
// trash mailbox under a fresh name if that one is taken there. A name
// the message no longer has is not found, and no other file is touched.
func (e *Engine) Delete(ctx context.Context, folderName, vname string, inNew bool) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	_, k, m, err := e.current(folderName, vname, inNew)
	if err != nil {
		return err
	}
	mb := e.mailboxes[k.mailbox]
	src := e.pathOf(k.mailbox, m)
	if mb == nil {
		return fmt.Errorf("mailbox %s: %w", k.mailbox, ErrNotFound)
	}
	if trash := e.cfg.Trash; trash != "" && k.mailbox != trash {
		dir, err := e.mailboxDir(trash)
		if err != nil {
			return err
		}
		// Moved, not deleted: the watcher or the next sync adds it to the
		// trash mailbox.
		err = maildir.Rename(src, filepath.Join(dir, "cur", filepath.Base(src)))
		if errors.Is(err, maildir.ErrExist) {
			// The trash has a message of that name (deleted twice, or
			// copied): a fresh unique name, same info.
			n, _ := maildir.ParseName(filepath.Base(src))
			n.Base = maildir.UniqueName()
			err = maildir.Rename(src, filepath.Join(dir, "cur", n.String()))
		}
		if err != nil {
			return fmt.Errorf("move %s to %s: %w", src, trash, err)
		}
	} else if err := os.Remove(src); err != nil {
		return fmt.Errorf("delete %s: %w", src, err)
	}
	b := e.store.NewBatch()
	e.forget(b, k)
	return e.commitLocked(b, map[key]bool{k: true}, nil)
}

// mailboxDir returns the directory of a backend mailbox, creating the
// Maildir if it does not exist (Maildir++ when the root is a Maildir,
// nested otherwise).
func (e *Engine) mailboxDir(name string) (string, error) {
	mb := e.mailboxes[name]
	if mb != nil {
		return mb.Path, nil
	}
	dir := e.dirOf(name)
	if err := maildir.Init(dir, e.cfg.Owner); err != nil {
		return "", fmt.Errorf("mailbox %s: %w", name, err)
	}
	return dir, nil
}

// dirOf is the directory of the backend mailbox name: the root for
// INBOX; else the nested or the Maildir++ directory, whichever is a
// Maildir; for a mailbox that exists in neither layout, where it would be
// made: Maildir++ when the root is a Maildir, nested otherwise.
func (e *Engine) dirOf(name string) string {
	if name == maildir.Inbox {
		return e.cfg.Root
	}
	nested := filepath.Join(e.cfg.Root, filepath.FromSlash(name))
	plus := filepath.Join(e.cfg.Root, maildir.PlusPlusDir(name))
	switch {
	case maildir.IsMaildir(nested):
		return nested
	case maildir.IsMaildir(plus), maildir.IsMaildir(e.cfg.Root):
		return plus
	}
	return nested
}

// forget removes a message from memory and the index. e.op must be held.
func (e *Engine) forget(b *index.Batch, k key) {
	if ms := e.msgs[k.mailbox]; ms != nil {
		ms.Delete(k.base)
	}
	delete(e.suspects, k)
	b.DeleteMessage(k.mailbox, k.base)
}

// deliveredMark is the field vmfs adds to the base name of a message
// delivered through a folder under a name the client chose: the backend
// file is "<client's base>,V=1" (",S=<size>" added when the client's base
// has none), so the client's name comes back from the backend file alone —
// after a remount, an index rebuild, or a crash between the delivery and
// the index commit — and a retried delivery finds the first one.
const deliveredMark = ",V=1"

// clientName returns the name a client gave a message delivered through
// vmfs, from its backend base name; "" for any other message.
func clientName(base string) string {
	if i := strings.Index(base, deliveredMark); i > 0 {
		return base[:i]
	}
	return ""
}

// markedBase returns the backend base name for a delivery under the
// client's base name vbase, or "" when the client's name cannot be kept:
// none, a name vmfs would show for another message, or one carrying
// mbsync's ",U=" (two files with one UID abort mbsync).
func markedBase(vbase string) string {
	if vbase == "" || strings.Contains(vbase, ",U=") || strings.Contains(vbase, deliveredMark) ||
		len(vbase) > 160 {
		return ""
	}
	if _, _, ok := parseVirtualBase(vbase); ok {
		return ""
	}
	return vbase + deliveredMark
}

// deliveredBase is the backend base name maildir.DeliverAs gives a
// delivery of r under the marked base name: ",S=<size>" added unless the
// client's name has one.
func deliveredBase(marked string, r io.Seeker) string {
	if maildir.Size(marked) >= 0 {
		return marked
	}
	size, err := r.Seek(0, io.SeekEnd)
	if _, serr := r.Seek(0, io.SeekStart); err != nil || serr != nil {
		return ""
	}
	return fmt.Sprintf("%s,S=%d", marked, size)
}

// Deliver writes a new message into the folder's save mailbox (created if
// missing) and shows it in the folder: it stays listed until the linger
// ends even if it does not match. name, if not empty, is the base name the
// client gave the message (Maildir clients deliver tmp/X → new/X and then
// expect X); the message keeps it in the folder. A name another message
// of the folder has is refused (ErrExist) and nothing is written; the same
// delivery again (a client retrying after a crash: same name, same bytes)
// delivers nothing new and returns the first one. mtime, if not zero, is
// the delivered file's mtime (the IMAP INTERNALDATE).
func (e *Engine) Deliver(ctx context.Context, folderName, name string, r io.ReadSeeker, flags string, toCur bool, mtime time.Time) (Entry, error) {
	if err := e.lockOp(); err != nil {
		return Entry{}, err
	}
	defer e.op.Unlock()
	vbase := maildir.BaseOf(name)
	marked := markedBase(vbase)
	f := e.folders[folderName]
	if f == nil {
		return Entry{}, fmt.Errorf("folder %q: %w", folderName, ErrNotFound)
	}
	save := f.def.Save
	mb := e.mailboxes[save]
	var prior *index.Message // the same delivery, made before
	if vbase != "" {
		if _, k, m, err := e.lookup(folderName, vbase); err == nil {
			if clientName(k.base) != vbase || k.mailbox != save {
				return Entry{}, fmt.Errorf("deliver %s/%s: a message has that name: %w", folderName, vbase, maildir.ErrExist)
			}
			prior = m
		}
	}
	if prior == nil && marked != "" {
		// Delivered before, but not (or no longer) a member: the backend
		// base name follows from the client's name and the size.
		prior = e.msgs[save].Get(deliveredBase(marked, r))
	}
	var priorPath string
	if prior != nil {
		priorPath = e.pathOf(save, prior) // prior is a message of save (see above)
	}
	if save == "" {
		return Entry{}, fmt.Errorf("folder %s: %w", folderName, ErrNoSave)
	}
	if prior != nil {
		if !sameContent(priorPath, r) {
			return Entry{}, fmt.Errorf("deliver %s/%s: another message has that name: %w", folderName, vbase, maildir.ErrExist)
		}
		return e.showWritten(folderName, save, prior, vbase, nil)
	}
	if mb == nil {
		dir, err := e.mailboxDir(save)
		if err != nil {
			return Entry{}, err
		}
		mb = &mailbox{Mailbox: maildir.Mailbox{Name: save, Path: dir}}
	}
	flags, _ = e.backendLetters(f, mb, flags) // a delivery's letters are known keywords or none
	rel, err := maildir.DeliverAs(mb.Path, marked, r, flags, toCur, mtime, e.cfg.Owner)
	if errors.Is(err, maildir.ErrExist) && marked != "" {
		// In the backend, not yet in the index (a crash before the
		// commit, the watcher not caught up): read it and compare.
		if _, serr := r.Seek(0, io.SeekStart); serr != nil {
			return Entry{}, serr
		}
		if !sameContent(filepath.Join(mb.Path, rel), r) {
			return Entry{}, fmt.Errorf("deliver %s/%s: another message has that name: %w", folderName, vbase, maildir.ErrExist)
		}
		e.crashPoint("before-redeliver")
	} else if err != nil {
		return Entry{}, err
	}
	e.crashPoint("after-deliver")
	fname := filepath.Base(rel)
	base := maildir.BaseOf(fname)
	m := extract(mb, maildir.Entry{New: !toCur, Name: fname}, e.needs, e.needsHash)
	if m == nil {
		return Entry{}, fmt.Errorf("delivered %s but cannot read it back", rel)
	}
	if e.mailboxes[save] == nil {
		e.mailboxes[save] = mb
	}
	k := key{save, base}
	if e.msgs[save] == nil {
		e.msgs[save] = &index.MessageSet{}
	}
	e.msgs[save].Put(m)
	b := e.store.NewBatch()
	b.PutMessage(save, m)
	touched := e.update(b, map[key]bool{k: true}, false)
	if marked == "" {
		vbase = ""
	}
	return e.showWritten(folderName, save, m, vbase, &deliveryBatch{b, touched})
}

// deliveryBatch is the part of a delivery's index change made before
// showWritten adds the membership.
type deliveryBatch struct {
	b       *index.Batch
	touched []string
}

// showWritten makes a delivered message of mailbox a member of the folder (written
// into it: listed until the linger ends even if it does not match) under
// the client's name vbase (if not empty), commits and notifies. e.op must
// be held.
func (e *Engine) showWritten(folderName, mailbox string, m *index.Message, vbase string, db *deliveryBatch) (Entry, error) {
	if db == nil {
		db = &deliveryBatch{b: e.store.NewBatch()}
	}
	b, touched := db.b, db.touched
	f := e.folders[folderName]
	k := key{mailbox, m.Base()}
	mem := f.members.Get(k.mailbox, k.base)
	if mem == nil {
		mem = &index.Member{UID: f.state.NextUID, Mailbox: k.mailbox, Base: k.base, Written: true,
			Linger: e.cfg.Now().Add(e.cfg.Linger).UnixNano()}
		f.state.NextUID++
		f.members.Put(mem)
		f.noteExpiry(mem.Linger)
		b.PutFolder(folderName, &f.state)
		touched = append(touched, folderName)
	}
	if vbase != "" {
		if other, taken := f.alias[vbase]; !taken || other == k {
			mem.Name = vbase
			f.alias[vbase] = k
		}
	}
	e.show(f, mem, m)
	f.invalidate()
	b.PutMember(folderName, mem)
	if err := e.commitLocked(b, nil, touched); err != nil {
		return Entry{}, err
	}
	return f.t.byUIDOf(mem.UID).entry(), nil // shown just above
}

// sameContent reports whether the file at p holds exactly what r holds
// from its start.
func sameContent(p string, r io.ReadSeeker) bool {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return false
	}
	fd, err := maildir.OpenRegular(p)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	a, b := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		n1, err1 := io.ReadFull(f, a)
		n2, err2 := io.ReadFull(r, b)
		if n1 != n2 || !bytes.Equal(a[:n1], b[:n2]) {
			return false
		}
		if err1 != nil || err2 != nil {
			return err1 != nil && err2 != nil
		}
	}
}
