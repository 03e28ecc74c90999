package fs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"vmfs/internal/maildir"
)

// staleTmp is how old a file in a folder's tmp/ may get before it is
// removed (Courier's rule).
const staleTmp = 36 * time.Hour

// ctlNode is a control file or directory of a folder (dovecot-uidlist,
// dovecot.index*, lock files, courierimapkeywords/, tmp/…), kept in the
// folder's directory under the state dir. It behaves as a file on a disk:
// create (O_EXCL too), write, fsync, rename over, unlink, stat.
type ctlNode struct {
	gofs.Inode
	fd *folderDir

	mu sync.Mutex // protects file
	// file is the real file, opened at the first read or write (the
	// kernel sends no OPEN: see msgNode.Open) and kept until the kernel
	// forgets the node, so that a file renamed over or unlinked while a
	// process has it open reads on as on a disk.
	file     *os.File
	readOnly bool // file could only be opened for reading
}

var (
	_ = (gofs.NodeLookuper)((*ctlNode)(nil))
	_ = (gofs.NodeReaddirer)((*ctlNode)(nil))
	_ = (gofs.NodeGetattrer)((*ctlNode)(nil))
	_ = (gofs.NodeSetattrer)((*ctlNode)(nil))
	_ = (gofs.NodeOpener)((*ctlNode)(nil))
	_ = (gofs.NodeCreater)((*ctlNode)(nil))
	_ = (gofs.NodeMkdirer)((*ctlNode)(nil))
	_ = (gofs.NodeUnlinker)((*ctlNode)(nil))
	_ = (gofs.NodeRmdirer)((*ctlNode)(nil))
	_ = (gofs.NodeRenamer)((*ctlNode)(nil))
	_ = (gofs.NodeLinker)((*ctlNode)(nil))
	_ = (gofs.NodeReader)((*ctlNode)(nil))
	_ = (gofs.NodeWriter)((*ctlNode)(nil))
	_ = (gofs.NodeAllocater)((*ctlNode)(nil))
	_ = (gofs.NodeFlusher)((*ctlNode)(nil))
	_ = (gofs.NodeOnForgetter)((*ctlNode)(nil))
)

// path is the real path of the node under the folder's control directory.
// For control files at the mount root (fd.folder == ""), paths are
// relative to the mount root.
func (n *ctlNode) path() string {
	if n == &n.fd.ctlNode {
		return n.fd.real()
	}
	if n.fd.folder == "" {
		return filepath.Join(n.fd.real(), n.Path(nil))
	}
	return filepath.Join(n.fd.real(), n.Path(&n.fd.Inode))
}

// self is the inode new children hang from: the node itself, or the mount
// root for the root's control directory (which is not in the tree).
func (n *ctlNode) self() *gofs.Inode {
	if n == &n.fd.ctlNode && n.fd.folder == "" {
		return &n.fd.root.Inode
	}
	return &n.Inode
}

// top reports whether n is a folder's (or the mount root's) control root.
func (n *ctlNode) top() bool { return n == &n.fd.ctlNode }

func ctlIno(st *syscall.Stat_t) uint64 { return st.Ino ^ 0x4000_0000_0000_0000 }

func (n *ctlNode) child(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	st, err := lstat(filepath.Join(n.path(), name))
	if err != nil {
		return nil, errnoOf(err)
	}
	n.fd.root.ownAttr(&out.Attr, st)
	mode := st.Mode & syscall.S_IFMT
	if mode != syscall.S_IFREG && mode != syscall.S_IFDIR {
		return nil, syscall.ENOENT // only files and directories are control data
	}
	return n.self().NewInode(ctx, &ctlNode{fd: n.fd}, gofs.StableAttr{Mode: mode, Ino: ctlIno(st)}), 0
}

func (n *ctlNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.child(ctx, name, out)
}

// realEntries lists the control directory.
func (n *ctlNode) realEntries() ([]fuse.DirEntry, syscall.Errno) {
	ents, err := os.ReadDir(n.path())
	if err != nil {
		return nil, errnoOf(err)
	}
	out := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || (!e.IsDir() && !e.Type().IsRegular()) {
			continue
		}
		out = append(out, fuse.DirEntry{Name: e.Name(), Mode: st.Mode & syscall.S_IFMT, Ino: ctlIno(st)})
	}
	return out, 0
}

func (n *ctlNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, errno := n.realEntries()
	if errno != 0 {
		return nil, errno
	}
	return sortedEntries(ents), 0
}

func (n *ctlNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if g, ok := fh.(gofs.FileGetattrer); ok {
		errno := g.Getattr(ctx, out)
		out.Uid, out.Gid = n.fd.root.cfg.UID, n.fd.root.cfg.GID
		return errno
	}
	n.mu.Lock()
	f := n.file
	n.mu.Unlock()
	if f != nil { // the node's own file, wherever its name went
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return errnoOf(err)
		}
		n.fd.root.ownAttr(&out.Attr, &st)
		return 0
	}
	st, err := lstat(n.path())
	if err != nil {
		return errnoOf(err)
	}
	n.fd.root.ownAttr(&out.Attr, st)
	return 0
}

// real returns the node's real file, opened on first use.
func (n *ctlNode) real() (*os.File, bool, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.file == nil {
		p := n.path()
		fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		ro := false
		if err == syscall.EACCES || err == syscall.EROFS {
			fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
			ro = true
		}
		if err != nil {
			return nil, false, errnoOf(err)
		}
		n.file, n.readOnly = os.NewFile(uintptr(fd), p), ro
	}
	return n.file, n.readOnly, 0
}

// Read reads the file: through the handle CREATE made, else the node's.
func (n *ctlNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if r, ok := fh.(gofs.FileReader); ok {
		return r.Read(ctx, dest, off)
	}
	f, _, errno := n.real()
	if errno != 0 {
		return nil, errno
	}
	return preadResult(int(f.Fd()), dest, off)
}

// Write writes the file; ENOSPC while the state directory is short.
func (n *ctlNode) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.fd.root.cfg.ReadOnly {
		return 0, syscall.EROFS
	}
	if n.fd.root.short() {
		return 0, syscall.ENOSPC
	}
	if n.isRights() {
		return 0, syscall.EACCES
	}
	if w, ok := fh.(gofs.FileWriter); ok {
		return w.Write(ctx, data, off)
	}
	f, ro, errno := n.real()
	if errno != 0 {
		return 0, errno
	}
	if ro {
		return 0, syscall.EACCES
	}
	k, err := syscall.Pwrite(int(f.Fd()), data, off)
	if err != nil {
		return 0, errnoOf(err)
	}
	return uint32(k), 0
}

// Allocate is fallocate(2) on the node's file.
func (n *ctlNode) Allocate(ctx context.Context, fh gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if n.fd.root.short() {
		return syscall.ENOSPC
	}
	f, ro, errno := n.real()
	if errno != 0 {
		return errno
	}
	if ro {
		return syscall.EACCES
	}
	return errnoOf(unix.Fallocate(int(f.Fd()), mode, int64(off), int64(size)))
}

// Flush: nothing is buffered (see msgNode.Flush).
func (n *ctlNode) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// OnForget closes the node's file: no process has it open any more.
func (n *ctlNode) OnForget() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.file != nil {
		n.file.Close()
		n.file = nil
	}
}

func (n *ctlNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p := n.path()
	if n.isRights() {
		return syscall.EACCES
	}
	if sz, ok := in.GetSize(); ok {
		if st, err := lstat(p); err == nil && int64(sz) > st.Size && n.fd.root.short() {
			return syscall.ENOSPC
		}
		n.mu.Lock()
		f := n.file
		n.mu.Unlock()
		var err error
		if f != nil {
			err = syscall.Ftruncate(int(f.Fd()), int64(sz))
		} else {
			err = syscall.Truncate(p, int64(sz))
		}
		if err != nil {
			return errnoOf(err)
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, m&0o7777); err != nil {
			return errnoOf(err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return errnoOf(err)
		}
	}
	// chown is accepted and ignored: the state dir belongs to the daemon.
	return n.Getattr(ctx, nil, out)
}

// Open answers ENOSYS, as for messages (see msgNode.Open): reads and
// writes come to the node without a handle.
func (n *ctlNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

func (n *ctlNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if n.fd.root.cfg.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	if n.fd.root.short() {
		return nil, nil, 0, syscall.ENOSPC
	}
	p := filepath.Join(n.path(), name)
	// Opened for reading and writing whatever the client asked: the
	// node's file serves every later open too (they send no OPEN).
	fl := int(flags)&^syscall.O_ACCMODE | syscall.O_RDWR | syscall.O_CREAT | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	fd, err := syscall.Open(p, fl, mode&0o777) // the state dir is 0700: modes inside it expose nothing
	if err != nil {
		return nil, nil, 0, errnoOf(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, 0, errnoOf(err)
	}
	n.fd.root.ownAttr(&out.Attr, &st)
	node := &ctlNode{fd: n.fd, file: os.NewFile(uintptr(fd), p)}
	ch := n.self().NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ctlIno(&st)})
	if other, ok := ch.Operations().(*ctlNode); ok && other != node {
		// A node of the same real inode lives on (its file number was
		// reused): it takes the file.
		other.mu.Lock()
		if other.file == nil {
			other.file, other.readOnly = node.file, false
		} else {
			node.file.Close()
		}
		other.mu.Unlock()
	}
	return ch, ctlHandle{}, 0, 0
}

// ctlHandle is the handle CREATE returns: reads and writes go to the
// node's file, as for files opened later. It must not offer passthrough:
// the kernel refuses (EIO) to open one inode both with and without it.
type ctlHandle struct{}

func (ctlHandle) PassthroughFd() (int, bool) { return 0, false }

var _ = (gofs.FilePassthroughFder)(ctlHandle{})

func (n *ctlNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.fd.root.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.fd.root.short() {
		return nil, syscall.ENOSPC
	}
	if err := os.Mkdir(filepath.Join(n.path(), name), 0o700); err != nil {
		return nil, errnoOf(err)
	}
	return n.child(ctx, name, out)
}

func (n *ctlNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return errnoOf(syscall.Unlink(filepath.Join(n.path(), name)))
}

func (n *ctlNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return errnoOf(syscall.Rmdir(filepath.Join(n.path(), name)))
}

// Link inside a folder's control tree is a real link (Dovecot's dotlocks
// link a temporary file to NAME.lock); anything else answers EXDEV.
func (n *ctlNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, ok := target.(*ctlNode)
	if !ok || t.fd != n.fd || t.top() {
		return nil, syscall.EXDEV
	}
	if n.fd.root.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.top() && isACL(name) {
		return nil, syscall.EACCES
	}
	if n.fd.root.short() {
		return nil, syscall.ENOSPC
	}
	if err := os.Link(t.path(), filepath.Join(n.path(), name)); err != nil {
		return nil, errnoOf(err)
	}
	return n.child(ctx, name, out)
}

// isRights reports whether the node is a search folder's rights file
// (written only by renaming another file over it).
func (n *ctlNode) isRights() bool {
	if n.top() {
		return false
	}
	name, parent := n.Parent()
	return parent == &n.fd.Inode && isACL(name)
}

// ctlOf returns the control node behind a directory of the same folder.
func (n *ctlNode) ctlOf(p gofs.InodeEmbedder) *ctlNode {
	switch d := p.(type) {
	case *ctlNode:
		if d.fd == n.fd {
			return d
		}
	case *folderDir:
		if d == n.fd {
			return &d.ctlNode
		}
	case *Root:
		if d.ctl == n.fd {
			return &d.ctl.ctlNode
		}
	}
	return nil
}

// Rename inside the control tree is a real rename (tmp/X → dovecot-uidlist
// replaces it, as Courier and Dovecot expect); from the control tree into
// the folder's cur/ or new/ it is a delivery into the save mailbox.
func (n *ctlNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.fd.root.cfg.ReadOnly {
		return syscall.EROFS
	}
	src := filepath.Join(n.path(), name)
	if dst, ok := newParent.(*msgDir); ok {
		if dst.fd != n.fd {
			return syscall.EXDEV
		}
		return n.deliver(ctx, src, dst, newName)
	}
	dst := n.ctlOf(newParent)
	if dst == nil {
		return syscall.EXDEV
	}
	if dst.top() && isACL(newName) { // tmp/X → the folder's rights file
		// A search folder's may be replaced by one that grants no one
		// the delete or admin right (Dovecot's CREATE copies the parent's
		// rights); a configured folder's is fixed.
		b, err := os.ReadFile(src)
		if !dst.fd.search() || err != nil || grantsDelete(b) {
			return syscall.EACCES
		}
	}
	if isACL(name) && n.top() {
		return syscall.EACCES
	}
	if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, filepath.Join(dst.path(), newName), uint(flags)); err != nil {
		return errnoOf(err)
	}
	if dst.top() && newName == maildir.KeywordsFile && n.fd.folder != "" {
		// Dovecot stored a new keyword: letters it set before are
		// carried to the backend now.
		if err := n.fd.root.eng.KeywordsChanged(ctx, n.fd.folder); err != nil {
			slog.Warn("keywords", "folder", n.fd.folder, "err", err)
		}
	}
	return 0
}

func (n *ctlNode) deliver(ctx context.Context, src string, dst *msgDir, newName string) syscall.Errno {
	nm, err := maildir.ParseName(newName)
	if err != nil {
		return syscall.EINVAL
	}
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return syscall.EISDIR
	}
	// The tmp file's mtime is the message's date (Dovecot's APPEND sets
	// it with utime() before the rename).
	if _, err := n.fd.root.eng.Deliver(ctx, n.fd.folder, nm.Base, f, nm.Flags, !dst.isNew, fi.ModTime()); err != nil {
		return errnoOf(err)
	}
	os.Remove(src)
	return 0
}

// cleanTmp removes stale files from a folder's tmp/.
func cleanTmp(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		// By ctime, not mtime: a client may have set an old mtime on
		// purpose (Dovecot's APPEND with a date) just before a crash.
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && time.Since(time.Unix(st.Ctim.Unix())) > staleTmp {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
