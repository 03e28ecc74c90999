package vsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"vmfs/index"
	"vmfs/internal/maildir"
)

// crashPoint kills the process at a named point when VMFS_TEST_CRASH
// names it: the reliability tests use it to crash between a backend
// change and its index commit. It does nothing otherwise.
func crashPoint(name string) {
	if os.Getenv("VMFS_TEST_CRASH") == name {
		slog.Error("test crash point reached", "point", name)
		os.Exit(137)
	}
}

// ErrNoSave is returned by Deliver for a folder without a save mailbox.
var ErrNoSave = errors.New("folder has no save mailbox")

// ErrNotFound wraps fs.ErrNotExist: no such folder or message.
var ErrNotFound = fmt.Errorf("vsync: %w", fs.ErrNotExist)

// lookup finds a folder member by its virtual name (with or without info).
// e.mu must be held.
func (e *Engine) lookup(folderName, vname string) (*folder, key, *index.Message, error) {
	f := e.folders[folderName]
	if f == nil {
		return nil, key{}, nil, fmt.Errorf("folder %q: %w", folderName, ErrNotFound)
	}
	vbase := maildir.BaseOf(vname)
	k, ok := f.alias[vbase]
	if !ok {
		if vk, valid := parseVirtualBase(vbase); valid {
			k, ok = e.names()[vk]
		}
	}
	if !ok || f.members[k] == nil {
		return nil, key{}, nil, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
	}
	m := e.msgs[k.mailbox][k.base]
	if m == nil {
		return nil, key{}, nil, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
	}
	return f, k, m, nil
}

// Lookup returns the entry of a folder's message by its exact virtual
// file name: the current one, or the one it had before its last rename
// (a client may act on a name it listed just before). Any other name with
// the same base is not found, so that "mv X:2, X:2,S" sees no target.
func (e *Engine) Lookup(folderName, vname string) (Entry, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, k, m, err := e.lookup(folderName, vname)
	if err != nil {
		return Entry{}, err
	}
	ent := e.entry(f.members[k], m)
	if ent.Name == vname {
		return ent, nil
	}
	if p, ok := e.prev[k]; ok {
		old := *m
		old.Name = p
		if e.entry(f.members[k], &old).Name == vname {
			return ent, nil
		}
	}
	return Entry{}, fmt.Errorf("%s/%s: %w", folderName, vname, ErrNotFound)
}

// Get returns a folder's message by virtual base name, whatever its flags.
func (e *Engine) Get(folderName, vbase string) (Entry, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, k, m, err := e.lookup(folderName, vbase)
	if err != nil {
		return Entry{}, err
	}
	return e.entry(f.members[k], m), nil
}

// SetFlags renames the backend file of a folder's message so that it
// carries flags (all of them: standard, keyword letters and unknown ones)
// and lies in new/ (toNew) or cur/. The base name and any extra info text
// are kept. A file renamed by someone else meanwhile is found again by its
// base name. It returns the message's new entry.
func (e *Engine) SetFlags(ctx context.Context, folderName, vname, flags string, toNew bool) (Entry, error) {
	if err := e.lockOp(); err != nil {
		return Entry{}, err
	}
	defer e.op.Unlock()
	e.mu.Lock()
	f, k, m, err := e.lookup(folderName, vname)
	if err != nil {
		e.mu.Unlock()
		return Entry{}, err
	}
	mb := e.mailboxes[k.mailbox]
	src := e.pathOf(m)
	e.mu.Unlock()
	if mb == nil {
		return Entry{}, fmt.Errorf("mailbox %s: %w", k.mailbox, ErrNotFound)
	}

	old, _ := maildir.ParseName(filepath.Base(src))
	n := maildir.Name{Base: k.base, Flags: maildir.NormFlags(flags), Extra: old.Extra, HasInfo: true}
	sub := "cur"
	if toNew {
		sub = "new"
		n.HasInfo = old.HasInfo
	}
	dst := filepath.Join(mb.Path, sub, n.String())
	if err := renameMsg(mb.Path, k.base, src, dst); err != nil {
		return Entry{}, err
	}
	crashPoint("after-rename")

	e.mu.Lock()
	e.prev[k] = m.Name
	m.Name, m.New = n.String(), toNew
	b := e.store.NewBatch()
	b.PutMessage(m)
	touched := e.update(b, map[key]bool{k: true}, false)
	ent := e.entry(f.members[k], m)
	e.mu.Unlock()
	if err := b.Commit(); err != nil {
		return Entry{}, err
	}
	e.notify(touched)
	return ent, nil
}

// renameMsg renames src to dst, finding the file again by base name if it
// was renamed meanwhile.
func renameMsg(dir, base, src, dst string) error {
	if src == dst {
		return nil
	}
	err := maildir.Rename(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		name, inNew, ferr := maildir.Find(dir, base)
		if ferr != nil {
			return ferr
		}
		sub := map[bool]string{true: "new", false: "cur"}[inNew]
		if src = filepath.Join(dir, sub, name); src == dst {
			return nil
		}
		err = maildir.Rename(src, dst)
	}
	return err
}

// Delete removes a folder's message from the backend (every folder that
// showed it drops it). A file renamed meanwhile is found by base name.
func (e *Engine) Delete(ctx context.Context, folderName, vname string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	e.mu.Lock()
	_, k, m, err := e.lookup(folderName, vname)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	mb := e.mailboxes[k.mailbox]
	src := e.pathOf(m)
	e.mu.Unlock()
	if mb == nil {
		return fmt.Errorf("mailbox %s: %w", k.mailbox, ErrNotFound)
	}
	remove := os.Remove
	if trash := e.cfg.Trash; trash != "" && k.mailbox != trash {
		dir, err := e.mailboxDir(trash)
		if err != nil {
			return err
		}
		// Moved, not deleted: the watcher or the next sync adds it to the
		// trash mailbox under the same name.
		remove = func(p string) error {
			return maildir.Rename(p, filepath.Join(dir, "cur", filepath.Base(p)))
		}
	}
	err = remove(src)
	if errors.Is(err, fs.ErrNotExist) {
		name, inNew, ferr := maildir.Find(mb.Path, k.base)
		if ferr != nil {
			return ferr
		}
		err = remove(filepath.Join(mb.Path, map[bool]string{true: "new", false: "cur"}[inNew], name))
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", src, err)
	}
	e.mu.Lock()
	b := e.store.NewBatch()
	e.forget(b, k)
	touched := e.update(b, map[key]bool{k: true}, false)
	e.mu.Unlock()
	if err := b.Commit(); err != nil {
		return err
	}
	e.notify(touched)
	return nil
}

// mailboxDir returns the directory of a backend mailbox, creating the
// Maildir if it does not exist (Maildir++ when the root is a Maildir,
// nested otherwise).
func (e *Engine) mailboxDir(name string) (string, error) {
	e.mu.Lock()
	mb := e.mailboxes[name]
	e.mu.Unlock()
	if mb != nil {
		return mb.Path, nil
	}
	dir := filepath.Join(e.cfg.Root, filepath.FromSlash(name))
	if maildir.IsMaildir(e.cfg.Root) {
		dir = filepath.Join(e.cfg.Root, maildir.PlusPlusDir(name))
	}
	if name == maildir.Inbox {
		dir = e.cfg.Root
	}
	if err := maildir.Init(dir); err != nil {
		return "", fmt.Errorf("mailbox %s: %w", name, err)
	}
	return dir, nil
}

// forget removes a message from memory and the index. e.mu must be held.
func (e *Engine) forget(b *index.Batch, k key) {
	if m := e.msgs[k.mailbox][k.base]; m != nil && e.vnames != nil {
		delete(e.vnames, vkeyOf(m))
	}
	delete(e.msgs[k.mailbox], k.base)
	delete(e.prev, k)
	b.DeleteMessage(k.mailbox, k.base)
}

// Deliver writes a new message into the folder's save mailbox (created if
// missing) and shows it in the folder: it stays listed until the linger
// ends even if it does not match. name, if not empty, is the base name the
// client gave the message (Maildir clients deliver tmp/X → new/X and then
// expect X); the message keeps it in the folder.
func (e *Engine) Deliver(ctx context.Context, folderName, name string, r io.Reader, flags string, toCur bool) (Entry, error) {
	if err := e.lockOp(); err != nil {
		return Entry{}, err
	}
	defer e.op.Unlock()
	e.mu.Lock()
	f := e.folders[folderName]
	if f == nil {
		e.mu.Unlock()
		return Entry{}, fmt.Errorf("folder %q: %w", folderName, ErrNotFound)
	}
	save := f.def.Save
	mb := e.mailboxes[save]
	e.mu.Unlock()
	if save == "" {
		return Entry{}, fmt.Errorf("folder %s: %w", folderName, ErrNoSave)
	}
	if mb == nil {
		dir, err := e.mailboxDir(save)
		if err != nil {
			return Entry{}, err
		}
		mb = &mailbox{Mailbox: maildir.Mailbox{Name: save, Path: dir}}
	}
	rel, err := maildir.Deliver(mb.Path, r, flags, toCur)
	if err != nil {
		return Entry{}, err
	}
	fname := filepath.Base(rel)
	base := maildir.BaseOf(fname)
	m := extract(mb, maildir.Entry{New: !toCur, Name: fname}, base, e.needs, e.needsHash)
	if m == nil {
		return Entry{}, fmt.Errorf("delivered %s but cannot read it back", rel)
	}
	e.mu.Lock()
	if e.mailboxes[save] == nil {
		e.mailboxes[save] = mb
	}
	k := key{save, base}
	if e.msgs[save] == nil {
		e.msgs[save] = map[string]*index.Message{}
	}
	e.msgs[save][base] = m
	if e.vnames != nil {
		e.vnames[vkeyOf(m)] = k
	}
	b := e.store.NewBatch()
	b.PutMessage(m)
	touched := e.update(b, map[key]bool{k: true}, false)
	vbase := maildir.BaseOf(name)
	if _, taken := f.alias[vbase]; taken || vbase == "" {
		vbase = "" // keep the derived name rather than shadow another message
	}
	mem := f.members[k]
	if mem == nil { // written into the folder: shown until the linger ends
		mem = &index.Member{UID: f.state.NextUID, Mailbox: save, Base: base, Written: true,
			Linger: e.cfg.Now().Add(e.cfg.Linger).UnixNano()}
		f.state.NextUID++
		f.members[k] = mem
		f.noteExpiry(mem.Linger)
		b.PutFolder(folderName, &f.state)
		touched = append(touched, folderName)
	}
	if vbase != "" {
		mem.Name = vbase
		f.alias[vbase] = k
	}
	f.invalidate()
	b.PutMember(folderName, mem)
	ent := e.entry(mem, m)
	e.mu.Unlock()
	if err := b.Commit(); err != nil {
		return Entry{}, err
	}
	e.notify(touched)
	return ent, nil
}
