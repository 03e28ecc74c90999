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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vmfs/vsync"
)

// Engine is what the view needs from the sync engine.
type Engine interface {
	Folders() []string
	List(folder string) ([]vsync.Entry, error)
	Gen(folder string) uint64
	Lookup(folder, name string) (vsync.Entry, error)
	Get(folder, vbase string) (vsync.Entry, error)
	SetFlags(ctx context.Context, folder, name, flags string, toNew bool) (vsync.Entry, error)
	Delete(ctx context.Context, folder, name string) error
	Deliver(ctx context.Context, folder, name string, r io.Reader, flags string, toCur bool) (vsync.Entry, error)
}

// Config is the plain options struct the command line hands the view.
type Config struct {
	// Layout is "fs" (MOUNT/A/B/cur) or "maildir++" (MOUNT/.A.B/cur).
	Layout string
	// StateDir holds per-folder control files and tmp/ files.
	StateDir string
	// ReadOnly refuses every change.
	ReadOnly bool
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
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, iofs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES
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

	mu      sync.Mutex           // protects mtimes and dirs
	mtimes  map[string]time.Time // folder → mtime of its cur/ and new/
	dirs    map[string]*gofs.Inode
	changes chan []string
	done    chan struct{}
}

var _ = (gofs.NodeOnAdder)((*Root)(nil))

// NewRoot builds the view over an engine. Call Changed (from the engine's
// OnChange) when listings change, and Close when unmounted.
func NewRoot(eng Engine, cfg Config) *Root {
	if cfg.Layout == "" {
		cfg.Layout = "fs"
	}
	r := &Root{eng: eng, cfg: cfg, mtimes: map[string]time.Time{}, dirs: map[string]*gofs.Inode{},
		changes: make(chan []string, 1024), done: make(chan struct{})}
	return r
}

// OnAdd builds the static part of the tree: folder directories and the
// parent directories of nested names.
func (r *Root) OnAdd(ctx context.Context) {
	now := time.Now()
	for _, name := range r.eng.Folders() {
		r.mtimes[name] = now
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
					node = newFolderDir(r, name)
				}
				ch = parent.NewPersistentInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("dir", path)})
				parent.AddChild(p, ch, false)
			} else if i == len(parts)-1 {
				// "A" was created as a parent of "A/B" and is a folder too.
				fd := newFolderDir(r, name)
				nch := parent.NewPersistentInode(ctx, fd, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("dir", path)})
				for cn, c := range ch.Children() {
					nch.AddChild(cn, c, true)
				}
				parent.AddChild(p, nch, true)
				ch = nch
			}
			parent = ch
		}
	}
	go r.invalidator()
}

// Changed records that the listings of folders changed: their cur/ and
// new/ mtimes move forward at once, and the kernel's caches are dropped by
// a goroutine of the view (never from inside a FUSE handler).
func (r *Root) Changed(folders []string) {
	r.bump(folders)
	select {
	case r.changes <- folders:
	default: // the invalidator is behind; zero cache timeouts keep us correct
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

func (r *Root) invalidator() {
	for {
		select {
		case <-r.done:
			return
		case folders := <-r.changes:
			for _, f := range folders {
				for _, kind := range []string{"cur", "new"} {
					r.mu.Lock()
					n := r.dirs[f+"\x00"+kind]
					r.mu.Unlock()
					if n != nil {
						n.NotifyContent(0, 0)
					}
				}
			}
		}
	}
}

// Close stops the view's goroutine.
func (r *Root) Close() { close(r.done) }

// Getattr of the root.
func (r *Root) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o755
	return 0
}

var _ = (gofs.NodeGetattrer)((*Root)(nil))

// Mkdir at the root: folder creation is not supported by configuration.
func (r *Root) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EACCES
}

var _ = (gofs.NodeMkdirer)((*Root)(nil))

// parentDir is a directory that only holds other folders (no cur/).
type parentDir struct{ gofs.Inode }

var _ = (gofs.NodeGetattrer)((*parentDir)(nil))

func (p *parentDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o755
	return 0
}

func (p *parentDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EACCES
}

var _ = (gofs.NodeMkdirer)((*parentDir)(nil))

// sortedEntries turns names into a deterministic DirStream, with "." and
// "..", as a disk's directory lists them.
func sortedEntries(ents []fuse.DirEntry) gofs.DirStream {
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return gofs.NewListDirStream(withDots(ents))
}

func withDots(ents []fuse.DirEntry) []fuse.DirEntry {
	return append([]fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR}, {Name: "..", Mode: syscall.S_IFDIR}}, ents...)
}

func attrFromStat(st *syscall.Stat_t, out *fuse.Attr) {
	out.FromStat(st)
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
func (r *Root) folderStateDir(folder string) string {
	return filepath.Join(r.cfg.StateDir, "folders", url.PathEscape(folder))
}
