// Package fs is the FUSE view: every virtual folder as a Maildir
// (cur/ new/ tmp/) under the mount point, in the nested ("fs") or the
// Maildir++ layout. Message files are backed by the backend files (reads
// go through FUSE passthrough where the kernel allows); renames, unlinks
// and deliveries are handed to the engine; every other file in a folder is
// a control file kept under the state directory. The package knows nothing
// of Badger or fsnotify: it needs only the Engine interface below.
package fs

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	iofs "io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vmfs/internal/space"
	"vmfs/vsync"
)

// Engine is what the view needs from the sync engine.
type Engine interface {
	Folders() []string
	View(folder string) (*vsync.View, error)
	Gen(folder string) uint64
	Lookup(folder, name string, inNew bool) (vsync.Entry, error)
	Get(folder, vbase string) (vsync.Entry, error)
	SetFlags(ctx context.Context, folder, name string, fromNew bool, newName string, toNew bool) (vsync.Entry, error)
	Delete(ctx context.Context, folder, name string, inNew bool) error
	KeywordsChanged(ctx context.Context, folder string) error
	Deliver(ctx context.Context, folder, name string, r io.ReadSeeker, flags string, toCur bool, mtime time.Time) (vsync.Entry, error)
}

// Config is the plain options struct the command line hands the view.
type Config struct {
	// Layout is "fs" (MOUNT/A/B/cur) or "maildir++" (MOUNT/.A.B/cur).
	Layout string
	// StateDir holds per-folder control files and tmp/ files.
	StateDir string
	// ReadOnly refuses every change.
	ReadOnly bool
	// UID and GID own the folders and control files the view shows (the
	// backend root's owner); messages show their backend file's owner and
	// mode. With allow_other the kernel enforces them (default_permissions).
	UID, GID uint32
	// Mountpoint is where the view is mounted (absolute, symlinks
	// resolved); it lets Unlink recognise a recursive delete (rmguard.go).
	Mountpoint string
	// Searches makes the folders users create with mkdir at the root; nil
	// refuses mkdir there (EACCES).
	Searches Searches
}

// Searches makes and removes search folders: folders whose query is
// their name, made by mkdir at the mount root and removed by rmdir.
type Searches interface {
	// Make adds the folder (an error wrapping iofs.ErrInvalid when name
	// is not a query, iofs.ErrExist when it exists).
	Make(ctx context.Context, name string) error
	// Remove removes a folder Make made.
	Remove(ctx context.Context, name string) error
	// Made reports whether Make made the folder.
	Made(name string) bool
}

// errnoOf maps an error to the errno the kernel gets: the only place
// where that happens.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return gofs.OK
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, vsync.ErrNoSave):
		return syscall.EACCES
	case errors.Is(err, vsync.ErrClosed): // the mount is shutting down
		return syscall.EIO
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, iofs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, iofs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	slog.Error("unmapped error answered with EIO", "err", err)
	return syscall.EIO
}

// ino derives a stable inode number from a kind and a name.
func ino(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	v := h.Sum64()
	if v <= 1 {
		v += 2 // 1 is the root
	}
	return v
}

// vsyncEntry is the engine's listing entry.
type vsyncEntry = vsync.Entry

// Root is the mount's root node.
type Root struct {
	gofs.Inode
	eng Engine
	cfg Config

	// ctl holds the control files at the mount root (Dovecot keeps
	// dovecot.list.index* and dovecot-uidvalidity* there when its INDEX
	// and CONTROL are in the mount).
	ctl *folderDir

	mu     sync.Mutex           // protects mtimes, dirs and nextID
	mtimes map[string]time.Time // folder → mtime of its cur/ and new/
	dirs   map[string]*gofs.Inode
	nextID uint64 // the id of the next folder (folderDir.id)
	// prefetchJobs feeds the goroutines that read ahead of clients.
	prefetchJobs chan prefetchJob
	// warnedShort: the low-space warning was logged (see short).
	warnedShort atomic.Bool
	// refusedWalks holds the (pid, directory) pairs whose refused
	// recursive delete was logged (rmguard.go).
	refusedWalks sync.Map
}

var _ = (gofs.NodeOnAdder)((*Root)(nil))

// NewRoot builds the view over an engine. Call Changed (from the engine's
// OnChange) when listings change.
func NewRoot(eng Engine, cfg Config) *Root {
	if cfg.Layout == "" {
		cfg.Layout = "fs"
	}
	r := &Root{eng: eng, cfg: cfg, mtimes: map[string]time.Time{}, dirs: map[string]*gofs.Inode{}}
	r.ctl = newFolderDir(r, "")
	r.startPrefetchers()
	return r
}

// OnAdd builds the static part of the tree: folder directories and the
// parent directories of nested names.
func (r *Root) OnAdd(ctx context.Context) {
	now := time.Now()
	if err := os.MkdirAll(r.ctl.real(), 0o700); err != nil {
		slog.Error("control directory", "err", err)
	}
	addRights(ctx, &r.Inode, "root", r.cfg.UID, r.cfg.GID)
	folders := r.eng.Folders()
	r.nextID = uint64(len(folders)) + 1
	for i, name := range folders {
		r.addFolderNode(ctx, name, uint64(i+1), now)
	}
}

// addFolderNode hangs a folder's directory (and the parent directories
// of a nested name) under the root.
func (r *Root) addFolderNode(ctx context.Context, name string, id uint64, now time.Time) {
	r.mu.Lock()
	r.mtimes[name] = now
	r.mu.Unlock()
	parent := &r.Inode
	var parts []string
	if r.cfg.Layout == "maildir++" {
		parts = []string{"." + strings.ReplaceAll(name, "/", ".")}
	} else {
		parts = strings.Split(name, "/")
	}
	for i, p := range parts {
		path := strings.Join(parts[:i+1], "/")
		ch := parent.GetChild(p)
		if ch == nil {
			var node gofs.InodeEmbedder = &parentDir{}
			if i == len(parts)-1 {
				fd := newFolderDir(r, name)
				fd.id = id
				node = fd
			}
			ch = parent.NewPersistentInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("dir", path)})
			parent.AddChild(p, ch, false)
			if i < len(parts)-1 { // a parent only, for now
				addRights(ctx, ch, "parent\x00"+path, r.cfg.UID, r.cfg.GID)
			}
		} else if i == len(parts)-1 {
			// "A" was created as a parent of "A/B" and is a folder too.
			fd := newFolderDir(r, name)
			fd.id = id
			nch := parent.NewPersistentInode(ctx, fd, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("dir", path)})
			for cn, c := range ch.Children() {
				if c.IsDir() { // the nested folders, not the parent's rights file
					nch.AddChild(cn, c, true)
				}
			}
			parent.AddChild(p, nch, true)
			ch = nch
		}
		parent = ch
	}
}

// AddFolder shows a folder added while mounted (the configuration was
// edited). Never from inside a FUSE handler.
func (r *Root) AddFolder(name string) {
	r.mu.Lock()
	id := r.nextID
	r.nextID++
	r.mu.Unlock()
	r.addFolderNode(context.Background(), name, id, time.Now())
}

// RemoveFolder stops showing a folder removed while mounted. The kernel
// keeps the names of the root's folders a second (rootEntryTimeout), so
// no invalidation is needed (an entry invalidation could hang a dying
// daemon, see Changed).
func (r *Root) RemoveFolder(name string) {
	parts := strings.Split(name, "/")
	if r.cfg.Layout == "maildir++" {
		parts = []string{"." + strings.ReplaceAll(name, "/", ".")}
	}
	parent := &r.Inode
	for _, p := range parts[:len(parts)-1] {
		if parent = parent.GetChild(p); parent == nil {
			return
		}
	}
	leaf := parts[len(parts)-1]
	ch := parent.GetChild(leaf)
	if ch == nil {
		return
	}
	fd, ok := ch.Operations().(*folderDir)
	if !ok || fd.folder != name {
		return
	}
	if hasFolders(ch) {
		// "A" is also the parent of "A/B": its directory stays until the
		// next mount (its listing is empty from now on).
		slog.Warn("a removed folder holds nested folders: its directory stays until vmfs is mounted again", "folder", name)
	} else {
		parent.RmChild(leaf)
		ch.ForgetPersistent()
	}
	r.mu.Lock()
	for _, kind := range []string{"", "cur", "new"} {
		delete(r.dirs, name+"\x00"+kind)
	}
	delete(r.mtimes, name)
	r.mu.Unlock()
}

// hasFolders reports whether a folder directory also holds nested folders.
func hasFolders(n *gofs.Inode) bool {
	for _, c := range n.Children() {
		switch c.Operations().(type) {
		case *folderDir, *parentDir:
			return true
		}
	}
	return false
}

// Changed records that the listings of folders changed: their mtimes
// move forward, and the kernel drops its attributes of the folders'
// directories (folder, cur/, new/) before Changed returns, so that a stat
// after a change sees it.
//
// FUSE_NOTIFY_INVAL_INODE on a directory takes no lock a request holds
// (no directory pages are cached: there is no FOPEN_CACHE_DIR), so it is
// safe also from inside a FUSE handler, where the engine's write-back
// calls this. Message names are never invalidated: an entry invalidation
// takes the directory's lock, and hangs forever, unkillably, should the
// daemon die while a client's request in that directory waits for its
// answer (see msgDir.Lookup for why a retired name may stay cached).
func (r *Root) Changed(folders []string) {
	r.bump(folders)
	var nodes []*gofs.Inode
	r.mu.Lock()
	for _, f := range folders {
		for _, kind := range []string{"", "cur", "new"} {
			if n := r.dirs[f+"\x00"+kind]; n != nil {
				nodes = append(nodes, n)
			}
		}
	}
	r.mu.Unlock()
	for _, n := range nodes {
		n.NotifyContent(0, 0)
	}
}

func (r *Root) bump(folders []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, f := range folders {
		t := r.mtimes[f]
		if !now.After(t) {
			now = t.Add(time.Microsecond) // twice within one tick still moves
		}
		r.mtimes[f] = now
	}
}

func (r *Root) mtime(folder string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mtimes[folder]
}

func (r *Root) register(key string, n *gofs.Inode) {
	r.mu.Lock()
	r.dirs[key] = n
	r.mu.Unlock()
}

// Getattr of the root.
func (r *Root) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o700
	out.Uid, out.Gid = r.cfg.UID, r.cfg.GID
	out.SetTimeout(dirEntryTimeout) // never changes
	return 0
}

var _ = (gofs.NodeGetattrer)((*Root)(nil))

// Mkdir at the root makes a search folder: its name is its query (SPEC
// §5), in the Maildir++ layout after the leading dot. It lists its
// members when mkdir returns.
func (r *Root) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	folder := name
	if r.cfg.Layout == "maildir++" {
		if !strings.HasPrefix(name, ".") || len(name) < 2 {
			return nil, syscall.EACCES
		}
		folder = name[1:]
	}
	if r.folderChild(name) != nil {
		return nil, syscall.EEXIST
	}
	return r.makeSearch(ctx, folder, name, out)
}

// makeSearch makes the search folder whose path is folder (its query is
// the last component), in directory dirName of its parent.
func (r *Root) makeSearch(ctx context.Context, folder, dirName string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	if r.cfg.Searches == nil || strings.Contains(path.Base(folder), "/") {
		return nil, syscall.EACCES
	}
	if err := r.cfg.Searches.Make(ctx, folder); err != nil {
		return nil, errnoOf(err)
	}
	fd := newFolderDir(r, folder)
	r.mu.Lock()
	fd.id = r.nextID
	r.nextID++
	r.mtimes[folder] = time.Now()
	r.mu.Unlock()
	fd.made(ctx)
	p := folder
	if r.cfg.Layout == "maildir++" {
		p = dirName
	}
	ch := r.NewPersistentInode(ctx, fd, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("dir", p)})
	var a fuse.AttrOut
	folderAttr(r, folder, &a)
	out.Attr = a.Attr
	out.SetAttrTimeout(a.Timeout())
	out.SetEntryTimeout(rootEntryTimeout)
	return ch, 0
}

// removeSearch removes the search folder ch (rmdir): its definition and
// control files, never a backend message; any other folder is EBUSY.
func (r *Root) removeSearch(ctx context.Context, ch *gofs.Inode) syscall.Errno {
	fd, ok := ch.Operations().(*folderDir)
	if !ok || r.cfg.ReadOnly || r.cfg.Searches == nil || !r.cfg.Searches.Made(fd.folder) || hasFolders(ch) {
		return syscall.EBUSY
	}
	if err := r.cfg.Searches.Remove(ctx, fd.folder); err != nil {
		return errnoOf(err)
	}
	if err := os.RemoveAll(fd.real()); err != nil {
		slog.Warn("control files of a removed search folder", "folder", fd.folder, "err", err)
	}
	r.mu.Lock()
	for _, kind := range []string{"", "cur", "new"} {
		delete(r.dirs, fd.folder+"\x00"+kind)
	}
	delete(r.mtimes, fd.folder)
	r.mu.Unlock()
	ch.ForgetPersistent()
	return 0
}

// folderChild returns a folder, a parent directory or the rights file at
// the root: the view's own children.
func (r *Root) folderChild(name string) *gofs.Inode {
	if ch := r.GetChild(name); ch != nil {
		switch ch.Operations().(type) {
		case *folderDir, *parentDir, *rightsFile:
			return ch
		}
	}
	return nil
}

// Lookup: folders, then control files.
func (r *Root) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if ch := r.folderChild(name); ch != nil {
		// A folder may go when the configuration is edited: the kernel
		// keeps its name a second, and asks again.
		entryOf(ctx, ch, out, rootEntryTimeout)
		return ch, 0
	}
	return r.ctl.ctlNode.Lookup(ctx, name, out)
}

// Readdir: the folders and the root's control files.
func (r *Root) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	var ents []fuse.DirEntry
	for name, ch := range r.Children() {
		if r.folderChild(name) != nil {
			ents = append(ents, fuse.DirEntry{Name: name, Mode: ch.StableAttr().Mode, Ino: ch.StableAttr().Ino})
		}
	}
	real, errno := r.ctl.ctlNode.realEntries()
	if errno != 0 {
		return nil, errno
	}
	for _, e := range real {
		if r.folderChild(e.Name) == nil {
			ents = append(ents, e)
		}
	}
	return sortedEntries(ents), 0
}

// Create makes a control file at the root.
func (r *Root) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if r.folderChild(name) != nil {
		return nil, nil, 0, syscall.EEXIST
	}
	return r.ctl.ctlNode.Create(ctx, name, flags, mode, out)
}

// Unlink removes a control file at the root.
func (r *Root) Unlink(ctx context.Context, name string) syscall.Errno {
	if isACL(name) {
		return syscall.EACCES
	}
	if r.folderChild(name) != nil {
		return syscall.EISDIR
	}
	return r.ctl.ctlNode.Unlink(ctx, name)
}

// Rmdir at the root removes a search folder's definition and its
// control files, even with cur/ new/ tmp/ inside (as fsmu allows); never
// a backend message. A configured folder answers EBUSY (SPEC §5: deleting
// a folder never deletes or hides mail); a control directory is removed.
func (r *Root) Rmdir(ctx context.Context, name string) syscall.Errno {
	ch := r.folderChild(name)
	if ch == nil {
		return r.ctl.ctlNode.Rmdir(ctx, name)
	}
	return r.removeSearch(ctx, ch)
}

// Rename of a control file at the root; folders are not renamed.
func (r *Root) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if isACL(name) || isACL(newName) {
		return syscall.EACCES
	}
	if r.folderChild(name) != nil || r.folderChild(newName) != nil {
		return syscall.EXDEV
	}
	return r.ctl.ctlNode.Rename(ctx, name, newParent, newName, flags)
}

var (
	_ = (gofs.NodeMkdirer)((*Root)(nil))
	_ = (gofs.NodeLookuper)((*Root)(nil))
	_ = (gofs.NodeReaddirer)((*Root)(nil))
	_ = (gofs.NodeCreater)((*Root)(nil))
	_ = (gofs.NodeUnlinker)((*Root)(nil))
	_ = (gofs.NodeRenamer)((*Root)(nil))
	_ = (gofs.NodeRmdirer)((*Root)(nil))
)

// parentDir is a directory that only holds other folders (no cur/).
type parentDir struct{ gofs.Inode }

var _ = (gofs.NodeGetattrer)((*parentDir)(nil))

func (p *parentDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o700
	if r, ok := p.Root().Operations().(*Root); ok {
		out.Uid, out.Gid = r.cfg.UID, r.cfg.GID
	}
	out.SetTimeout(dirEntryTimeout) // never changes
	return 0
}

// Mkdir below a parent directory makes a search folder of a nested name
// ("Lists/FROM alice" searches FROM alice).
func (p *parentDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	r, ok := p.Root().Operations().(*Root)
	if !ok || r.cfg.Layout == "maildir++" {
		return nil, syscall.EACCES
	}
	if p.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	return r.makeSearch(ctx, p.Path(nil)+"/"+name, name, out)
}

// Rmdir below a parent directory removes a search folder; other folders
// stay as long as their definitions do (EBUSY).
func (p *parentDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ch := p.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	if r, ok := p.Root().Operations().(*Root); ok {
		return r.removeSearch(ctx, ch)
	}
	return syscall.EBUSY
}

// Unlink below a parent directory: it holds folders and its fixed rights
// file.
func (p *parentDir) Unlink(ctx context.Context, name string) syscall.Errno {
	switch ch := p.GetChild(name); {
	case ch == nil:
		return syscall.ENOENT
	case ch.IsDir():
		return syscall.EISDIR
	}
	return syscall.EACCES
}

var (
	_ = (gofs.NodeMkdirer)((*parentDir)(nil))
	_ = (gofs.NodeRmdirer)((*parentDir)(nil))
	_ = (gofs.NodeUnlinker)((*parentDir)(nil))
)

// sortedEntries turns names into a deterministic DirStream, with "." and
// "..", as a disk's directory lists them.
func sortedEntries(ents []fuse.DirEntry) gofs.DirStream {
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return gofs.NewListDirStream(withDots(ents))
}

func withDots(ents []fuse.DirEntry) []fuse.DirEntry {
	return append([]fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR}, {Name: "..", Mode: syscall.S_IFDIR}}, ents...)
}

// short reports whether the state directory's file system is down to the
// space kept for the index: control files (written by clients into the
// mount) get ENOSPC then, so that they cannot starve the index.
func (r *Root) short() bool {
	if space.Low(r.cfg.StateDir) {
		if !r.warnedShort.Swap(true) {
			slog.Error("the state directory's file system is nearly full: control files get ENOSPC", "dir", r.cfg.StateDir)
		}
		return true
	}
	r.warnedShort.Store(false)
	return false
}

// ownAttr sets the attributes of a control file or directory: the real
// file's, owned by the backend's owner (the state directory belongs to the
// daemon, but the IMAP server writing the files is that owner).
func (r *Root) ownAttr(out *fuse.Attr, st *syscall.Stat_t) {
	out.FromStat(st)
	out.Uid, out.Gid = r.cfg.UID, r.cfg.GID
}

func lstat(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &st, nil
}

func setTime(out *fuse.Attr, t time.Time) {
	out.SetTimes(&t, &t, &t)
}

// folderStateDir is where a folder's control files live.
func (r *Root) folderStateDir(folder string) string { return ControlDir(r.cfg.StateDir, folder) }

// ControlDir is where a folder's control files (dovecot-uidlist,
// dovecot-keywords, …) live under the state directory.
func ControlDir(stateDir, folder string) string {
	return filepath.Join(stateDir, "folders", url.PathEscape(folder))
}

// Access: without default_permissions the kernel leaves permission checks
// to the file system, and vmfs lets through whoever the kernel lets in
// (the mounting user, or everyone with allow_other). With
// default_permissions the kernel checks the modes itself and never asks.
// Operations vmfs refuses (writing a message, say) are refused where they
// happen.
func (r *Root) Access(ctx context.Context, mask uint32) syscall.Errno      { return 0 }
func (p *parentDir) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }
func (d *msgDir) Access(ctx context.Context, mask uint32) syscall.Errno    { return 0 }
func (n *ctlNode) Access(ctx context.Context, mask uint32) syscall.Errno   { return 0 }
func (n *msgNode) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&2 != 0 { // W_OK: messages are immutable
		return syscall.EACCES
	}
	return 0
}

var (
	_ = (gofs.NodeAccesser)((*Root)(nil))
	_ = (gofs.NodeAccesser)((*parentDir)(nil))
	_ = (gofs.NodeAccesser)((*msgDir)(nil))
	_ = (gofs.NodeAccesser)((*ctlNode)(nil))
	_ = (gofs.NodeAccesser)((*msgNode)(nil))
)

// Fsync of cur/ or new/ (Dovecot fdatasyncs them after a delivery): every
// change vmfs makes in the backend is done when the operation returns,
// and deliveries are fsynced, file and directory, by the engine.
func (d *msgDir) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno { return 0 }

// Fsync of a control file or directory syncs the real one.
func (n *ctlNode) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	n.mu.Lock()
	file := n.file
	n.mu.Unlock()
	if file != nil {
		return errnoOf(file.Sync())
	}
	fd, err := syscall.Open(n.path(), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer syscall.Close(fd)
	return errnoOf(syscall.Fsync(fd))
}

// Fsync of the root or a parent-only directory has nothing to sync.
func (r *Root) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno { return 0 }
func (p *parentDir) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// Statfs reports the state directory's file system (where control files
// and tmp/ live), so that clients checking for free space see real figures.
func (r *Root) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.cfg.StateDir, &st); err != nil {
		return errnoOf(err)
	}
	out.FromStatfsT(&st)
	return 0
}

var (
	_ = (gofs.NodeFsyncer)((*msgDir)(nil))
	_ = (gofs.NodeFsyncer)((*ctlNode)(nil))
	_ = (gofs.NodeFsyncer)((*Root)(nil))
	_ = (gofs.NodeFsyncer)((*parentDir)(nil))
	_ = (gofs.NodeStatfser)((*Root)(nil))
)

// entryOf fills a LOOKUP (or MKDIR) answer for one of the view's own
// directories: its attributes, cached as long as its Getattr says, and
// its name for timeout.
func entryOf(ctx context.Context, ch *gofs.Inode, out *fuse.EntryOut, timeout time.Duration) {
	if ga, ok := ch.Operations().(gofs.NodeGetattrer); ok {
		var a fuse.AttrOut
		ga.Getattr(ctx, nil, &a)
		out.Attr = a.Attr
		out.SetAttrTimeout(a.Timeout())
	}
	out.SetEntryTimeout(timeout)
}
