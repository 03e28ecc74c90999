package fs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"vmfs/internal/maildir"
	"vmfs/vsync"
)

// folderDir is a virtual folder's root: cur/ and new/ are the engine's
// listings, tmp/ and every other name are control files under the state
// directory, and nested folders are its other persistent children.
type folderDir struct {
	ctlNode // the folder root is the top of its control tree
	root    *Root
	folder  string
	id      uint64 // the folder's place among the mount's folders, from 1 (see msgIno)

	// A search folder just made by mkdir hides its cur/ new/ tmp/ from
	// the process that made it, for a moment, until it makes them itself:
	// Dovecot's CREATE mkdirs them right after the folder and takes EEXIST
	// for "mailbox already exists". Other processes see them at once.
	mu         sync.Mutex // protects madeBy, madeAt and pendingSub
	madeBy     uint32
	madeAt     time.Time
	pendingSub map[string]bool
}

// search reports whether the folder was made by mkdir (its rights file
// is a control file, see writeRights).
func (fd *folderDir) search() bool {
	return fd.folder != "" && fd.root.cfg.Searches != nil && fd.root.cfg.Searches.Made(fd.folder)
}

// madeSubdirWindow is how long a new search folder hides its cur/ new/
// tmp/ from the process that made it.
const madeSubdirWindow = 2 * time.Second

// hides reports whether name (cur, new or tmp) is still to be made by the
// process asking, which just made the folder.
func (fd *folderDir) hides(ctx context.Context, name string) bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if !fd.pendingSub[name] || time.Since(fd.madeAt) > madeSubdirWindow {
		return false
	}
	c, ok := ctx.(*fuse.Context)
	return ok && tgidOf(c.Caller.Pid) == fd.madeBy
}

// tgidOf returns the process (thread group) of a thread: FUSE names the
// calling thread, and a client's mkdir and its next lookup may come from
// two threads of one process.
func tgidOf(tid uint32) uint32 {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return tid
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				return uint32(n)
			}
		}
	}
	return tid
}

// madeBy records that the process of ctx made the folder with mkdir.
func (fd *folderDir) made(ctx context.Context) {
	c, ok := ctx.(*fuse.Context)
	if !ok || c.Caller.Pid == 0 {
		return
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.madeBy, fd.madeAt = tgidOf(c.Caller.Pid), time.Now()
	fd.pendingSub = map[string]bool{"cur": true, "new": true, "tmp": true}
}

func newFolderDir(r *Root, folder string) *folderDir {
	fd := &folderDir{root: r, folder: folder}
	fd.ctlNode.fd = fd
	return fd
}

// real is the folder's control directory; the mount root's control files
// (folder "") live in "root" beside the folders'.
func (fd *folderDir) real() string {
	if fd.folder == "" {
		return filepath.Join(fd.root.cfg.StateDir, "root")
	}
	return fd.root.folderStateDir(fd.folder)
}

var (
	_ = (gofs.NodeOnAdder)((*folderDir)(nil))
	_ = (gofs.NodeLookuper)((*folderDir)(nil))
	_ = (gofs.NodeReaddirer)((*folderDir)(nil))
	_ = (gofs.NodeGetattrer)((*folderDir)(nil))
	_ = (gofs.NodeCreater)((*folderDir)(nil))
	_ = (gofs.NodeMkdirer)((*folderDir)(nil))
	_ = (gofs.NodeUnlinker)((*folderDir)(nil))
	_ = (gofs.NodeRenamer)((*folderDir)(nil))
)

func (fd *folderDir) OnAdd(ctx context.Context) {
	if err := os.MkdirAll(filepath.Join(fd.real(), "tmp"), 0o700); err != nil {
		slog.Error("control directory", "folder", fd.folder, "err", err)
	}
	cleanTmp(filepath.Join(fd.real(), "tmp"))
	for _, kind := range []string{"cur", "new"} {
		n := fd.NewPersistentInode(ctx, &msgDir{fd: fd, isNew: kind == "new"},
			gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(kind, fd.folder)})
		fd.AddChild(kind, n, true)
		fd.root.register(fd.folder+"\x00"+kind, n)
	}
	fd.root.register(fd.folder+"\x00", &fd.Inode)
	tmp := fd.NewPersistentInode(ctx, &ctlNode{fd: fd}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("tmp", fd.folder)})
	fd.AddChild("tmp", tmp, true)
	if fd.search() {
		if err := writeRights(fd.real()); err != nil {
			slog.Error("rights file of a search folder", "folder", fd.folder, "err", err)
		}
	} else {
		addRights(ctx, &fd.Inode, "folder\x00"+fd.folder, fd.root.cfg.UID, fd.root.cfg.GID)
	}
}

// reserved reports names that are part of the folder's structure.
func (fd *folderDir) reserved(name string) *gofs.Inode {
	switch name {
	case "cur", "new", "tmp", aclFile:
		return fd.GetChild(name)
	}
	if ch := fd.GetChild(name); ch != nil {
		switch ch.Operations().(type) {
		case *folderDir, *parentDir:
			return ch
		}
	}
	return nil
}

func (fd *folderDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if fd.hides(ctx, name) {
		return nil, syscall.ENOENT
	}
	if ch := fd.reserved(name); ch != nil {
		entryOf(ctx, ch, out, dirEntryTimeout)
		return ch, 0
	}
	return fd.ctlNode.Lookup(ctx, name, out)
}

func (fd *folderDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents := []fuse.DirEntry{}
	for name, ch := range fd.Children() {
		if fd.reserved(name) != nil {
			ents = append(ents, fuse.DirEntry{Name: name, Mode: ch.StableAttr().Mode, Ino: ch.StableAttr().Ino})
		}
	}
	real, errno := fd.ctlNode.realEntries()
	if errno != 0 {
		return nil, errno
	}
	for _, e := range real {
		if fd.reserved(e.Name) == nil {
			ents = append(ents, e)
		}
	}
	return sortedEntries(ents), 0
}

func (fd *folderDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return folderAttr(fd.root, fd.folder, out)
}

// Setattr accepts utime/touch of the folder (Dovecot touches directories).
func (fd *folderDir) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return touchDir(in, func() syscall.Errno { return folderAttr(fd.root, fd.folder, out) })
}

// folderAttr is the attributes of a folder's directories: its mtime moves
// with every change of its listings.
func folderAttr(r *Root, folder string, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o700
	setTime(&out.Attr, r.mtime(folder))
	out.Uid, out.Gid = r.cfg.UID, r.cfg.GID
	out.Nlink = 2
	// Cached: the view drops them when the folder changes (Changed).
	// With default_permissions (allow_other) every open checks each
	// directory of its path: uncached, that was a GETATTR per directory
	// per message opened.
	out.SetTimeout(dirAttrTimeout)
	return 0
}

// touchDir accepts utime/touch of a folder directory and refuses a size.
func touchDir(in *fuse.SetAttrIn, attr func() syscall.Errno) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	return attr()
}

func (fd *folderDir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if isACL(name) {
		return nil, nil, 0, syscall.EACCES // replaced only by a rename (ctlNode.Rename)
	}
	if fd.reserved(name) != nil {
		return nil, nil, 0, syscall.EEXIST
	}
	return fd.ctlNode.Create(ctx, name, flags, mode, out)
}

func (fd *folderDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if ch := fd.reserved(name); ch != nil {
		if !fd.hides(ctx, name) {
			return nil, syscall.EEXIST
		}
		fd.mu.Lock()
		delete(fd.pendingSub, name)
		fd.mu.Unlock()
		entryOf(ctx, ch, out, dirEntryTimeout)
		return ch, 0
	}
	return fd.ctlNode.Mkdir(ctx, name, mode, out)
}

func (fd *folderDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if isACL(name) {
		return syscall.EACCES
	}
	if fd.reserved(name) != nil {
		return syscall.EISDIR
	}
	return fd.ctlNode.Unlink(ctx, name)
}

// Rmdir of cur/, new/, tmp/ or a nested folder: EBUSY, they stay as long
// as the folder's definition does.
func (fd *folderDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if fd.reserved(name) != nil {
		return syscall.EBUSY
	}
	return fd.ctlNode.Rmdir(ctx, name)
}

func (fd *folderDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if fd.reserved(name) != nil {
		return syscall.EXDEV // renaming a folder's structure
	}
	return fd.ctlNode.Rename(ctx, name, newParent, newName, flags)
}

// msgDir is a folder's cur/ or new/.
type msgDir struct {
	gofs.Inode
	fd    *folderDir
	isNew bool

	pf prefetch // reading ahead of clients (prefetch.go)
}

var (
	_ = (gofs.NodeLookuper)((*msgDir)(nil))
	_ = (gofs.NodeReaddirer)((*msgDir)(nil))
	_ = (gofs.NodeGetattrer)((*msgDir)(nil))
	_ = (gofs.NodeSetattrer)((*msgDir)(nil))
	_ = (gofs.NodeUnlinker)((*msgDir)(nil))
	_ = (gofs.NodeRenamer)((*msgDir)(nil))
	_ = (gofs.NodeCreater)((*msgDir)(nil))
	_ = (gofs.NodeMkdirer)((*msgDir)(nil))
	_ = (gofs.NodeLinker)((*msgDir)(nil))
	_ = (gofs.NodeRmdirer)((*msgDir)(nil))
)

// Rmdir in cur/ or new/: they hold only message files. (Without this
// method go-fuse would answer 0 and drop the node.)
func (d *msgDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if _, err := d.eng().Lookup(d.folder(), name, d.isNew); err == nil {
		return syscall.ENOTDIR
	}
	return syscall.ENOENT
}

func (d *msgDir) eng() Engine { return d.fd.root.eng }

// mountPath is the directory's path as processes see it, "" when the
// mount point is not known.
func (d *msgDir) mountPath() string {
	if d.fd.root.cfg.Mountpoint == "" {
		return ""
	}
	return filepath.Join(d.fd.root.cfg.Mountpoint, d.Path(nil))
}
func (d *msgDir) folder() string { return d.fd.folder }

func (d *msgDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return folderAttr(d.fd.root, d.folder(), out)
}

// Setattr accepts utime/touch.
func (d *msgDir) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return touchDir(in, func() syscall.Errno { return folderAttr(d.fd.root, d.folder(), out) })
}

// Readdir lists the folder's messages in UID order, read from the
// engine's published View of the folder a few at a time: nothing is copied
// or kept per directory (a folder of 234,000 messages kept 11 MB).
func (d *msgDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	s := &viewStream{d: d}
	if errno := s.rewind(); errno != 0 {
		return nil, errno
	}
	return s, 0
}

// viewStream is a directory stream over one View of a folder: the whole
// listing is one picture of it, also when the kernel reads it in many
// pieces while the folder changes. Offsets are positions in UID order
// (telldir/seekdir keep working across pieces): 1 and 2 are after "."
// and "..", and 2+u is after the message of UID u. Seeking to 0
// (rewinddir) takes the folder's current View.
type viewStream struct {
	d     *msgDir
	v     *vsync.View
	pos   uint64            // offset of the last entry handed out
	buf   []vsync.NameEntry // read ahead; buf[next:] not handed out yet
	next  int
	ended bool // the View has no entry after buf
}

var _ = (gofs.FileSeekdirer)((*viewStream)(nil))

const streamBatch = 256 // entries read from the View at a time

func (s *viewStream) rewind() syscall.Errno {
	v, err := s.d.eng().View(s.d.folder())
	if err != nil {
		return errnoOf(err)
	}
	s.v, s.pos, s.buf, s.next, s.ended = v, 0, s.buf[:0], 0, false
	return 0
}

func (s *viewStream) HasNext() bool {
	if s.pos < 2 {
		return true // "." and ".."
	}
	if s.next == len(s.buf) && !s.ended {
		if s.buf == nil {
			s.buf = make([]vsync.NameEntry, 0, streamBatch)
		}
		var more bool
		s.buf, more = s.v.List(uint32(min(s.pos-2, uint64(^uint32(0)))), s.d.isNew, s.buf[:0])
		s.next, s.ended = 0, !more
	}
	return s.next < len(s.buf)
}

func (s *viewStream) Next() (fuse.DirEntry, syscall.Errno) {
	switch s.pos {
	case 0:
		s.pos = 1
		return fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Off: 1}, 0
	case 1:
		s.pos = 2
		return fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Off: 2}, 0
	}
	e := &s.buf[s.next]
	s.next++
	s.pos = 2 + uint64(e.UID)
	return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFREG, Ino: s.d.fd.msgIno(e.UID), Off: s.pos}, 0
}

func (s *viewStream) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		return s.rewind()
	}
	s.pos, s.buf, s.next, s.ended = off, s.buf[:0], 0, false
	return 0
}

func (s *viewStream) Close() {}

// Lookup of a message name: only its current name (see vsync's Lookup),
// one inode number for the message whatever its flags.
func (d *msgDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	e, err := d.eng().Lookup(d.folder(), name, d.isNew)
	if err != nil {
		return nil, errnoOf(err)
	}
	vbase := maildir.BaseOf(e.Name)
	n := &msgNode{d: d, vbase: vbase, mode: 0o600, uid: d.fd.root.cfg.UID, gid: d.fd.root.cfg.GID}
	if st, err := lstat(e.Path); err == nil { // the backend file's owner and mode
		n.mode, n.uid, n.gid = st.Mode&0o7777, st.Uid, st.Gid
	}
	n.fill(e, &out.Attr)
	n.last = e
	// The kernel caches the name and the attributes (a message's size and
	// mtime never change), for msgEntryTimeout, and is not told when the
	// engine retires the name (see Root.invalidator). A client acting on a
	// retired name it still has reaches vmfs all the same: the kernel
	// sends the rename or unlink, which answers ENOENT (the client
	// rescans); and it looks up every rename's target afresh
	// (LOOKUP_RENAME_TARGET), so a rename onto a retired name — "mark
	// unread" right after another program marked the message read — is a
	// flag change, not a rename between two names of one inode (which
	// rename(2) would end without asking vmfs).
	out.SetAttrTimeout(msgAttrTimeout)
	out.SetEntryTimeout(msgEntryTimeout)
	d.readAheadOf(vbase)
	return d.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: d.fd.msgIno(e.UID)}), 0
}

// msgIno is a message's inode number: the folder's id, then its UID.
// Unique in the mount (UIDs are never reused in a folder), the same for
// the message whatever its name, and ascending in listing order: mutt
// reads a folder's messages sorted by inode number (to follow the disk),
// which then is the backend's delivery order — with hashed numbers it was
// a random walk over the disk, and the read-ahead (prefetch.go) guessed
// wrong. Below 1<<62: control files' numbers have bit 62 set (ctlIno).
func (fd *folderDir) msgIno(uid uint32) uint64 {
	return fd.id<<40 | uint64(uid)
}

func (d *msgDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if d.fd.root.cfg.ReadOnly {
		return syscall.EROFS
	}
	if dir := d.mountPath(); dir != "" && walking(ctx, dir) {
		if _, err := d.eng().Lookup(d.folder(), name, d.isNew); err == nil {
			d.fd.root.logRefusedWalk(ctx, dir)
			return syscall.EPERM
		}
	}
	// A process may hold the message open (the kernel sends no OPEN, see
	// msgNode.Open): its reads and fstat go on from a descriptor taken
	// before the backend file goes, as on a disk.
	var held *msgNode
	if ch := d.GetChild(name); ch != nil {
		if mn, ok := ch.Operations().(*msgNode); ok && mn.hold() {
			held = mn
		}
	}
	if err := d.eng().Delete(ctx, d.folder(), name, d.isNew); err != nil {
		if held != nil {
			held.unhold()
		}
		return errnoOf(err)
	}
	return 0
}

func (d *msgDir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EACCES // messages are written in tmp/ and renamed here
}

func (d *msgDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EACCES
}

func (d *msgDir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EXDEV // clients fall back to a copy
}

// Rename of a message: only its info part (flags) may change, within one
// folder, between cur/ and new/. The source must be the message's current
// name (an old one answers ENOENT: the client rescans).
func (d *msgDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if d.fd.root.cfg.ReadOnly {
		return syscall.EROFS
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		return syscall.EINVAL
	}
	dst, ok := newParent.(*msgDir)
	if !ok || dst.fd != d.fd {
		return syscall.EXDEV
	}
	n, err := maildir.ParseName(newName)
	if err != nil {
		return syscall.EINVAL
	}
	if n.Base != maildir.BaseOf(name) {
		return syscall.EXDEV // not a flag change: copy and delete instead
	}
	if flags&unix.RENAME_NOREPLACE != 0 && newName == name && dst == d {
		return syscall.EEXIST
	}
	_, err = d.eng().SetFlags(ctx, d.folder(), name, d.isNew, newName, dst.isNew)
	return errnoOf(err)
}

// msgNode is one message file.
type msgNode struct {
	gofs.Inode
	d     *msgDir
	vbase string
	// mode, uid, gid are the backend file's, read at lookup.
	mode, uid, gid uint32

	mu sync.Mutex // protects last and held
	// last is the engine's last entry of the message: an open file whose
	// message left the folder answers with it.
	last vsyncEntry
	// held is the backend file, kept open from before a delete through
	// the mount until the kernel forgets the node (see msgDir.Unlink).
	held *os.File
}

var (
	_ = (gofs.NodeGetattrer)((*msgNode)(nil))
	_ = (gofs.NodeSetattrer)((*msgNode)(nil))
	_ = (gofs.NodeOpener)((*msgNode)(nil))
	_ = (gofs.NodeReader)((*msgNode)(nil))
	_ = (gofs.NodeWriter)((*msgNode)(nil))
	_ = (gofs.NodeFlusher)((*msgNode)(nil))
	_ = (gofs.NodeOnForgetter)((*msgNode)(nil))
)

func (n *msgNode) fill(e vsyncEntry, out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | n.mode
	out.Size = uint64(e.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	out.Uid, out.Gid = n.uid, n.gid
	out.SetTimes(&e.MTime, &e.MTime, &e.MTime)
}

func (n *msgNode) entry() (vsyncEntry, syscall.Errno) {
	e, err := n.d.eng().Get(n.d.folder(), n.vbase)
	if err != nil {
		return e, errnoOf(err)
	}
	n.mu.Lock()
	n.last = e
	n.mu.Unlock()
	return e, 0
}

// hold opens the backend file before a delete through the mount, for the
// processes that may have it open; it reports whether it did.
func (n *msgNode) hold() bool {
	e, errno := n.entry()
	if errno != 0 {
		return false
	}
	fd, err := maildir.OpenRegular(e.Path)
	if err != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held != nil {
		syscall.Close(fd)
		return false
	}
	n.held = os.NewFile(uintptr(fd), e.Path)
	return true
}

// unhold closes what hold opened (the delete failed).
func (n *msgNode) unhold() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held != nil {
		n.held.Close()
		n.held = nil
	}
}

// OnForget: the kernel has no reference left (no name, no open file).
func (n *msgNode) OnForget() { n.unhold() }

// Getattr of a message. An open file whose message was deleted meanwhile
// answers as on a disk: its attributes, with st_nlink 0 (Dovecot fstat()s
// files it keeps open, and aborts on ENOENT).
//
// The kernel sends no OPEN (see Open), so a GETATTR does not tell an
// fstat() of an open file from a stat() through a name: a message that
// left the folder answers with its last attributes and st_nlink 0 (the
// kernel dropped its names when it left, so only open files reach it).
func (n *msgNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, errno := n.entry()
	if errno == syscall.ENOENT {
		n.mu.Lock()
		last, held := n.last, n.held
		n.mu.Unlock()
		if held != nil {
			var st syscall.Stat_t
			if err := syscall.Fstat(int(held.Fd()), &st); err == nil {
				last.Size, last.MTime = st.Size, time.Unix(st.Mtim.Unix())
			}
		}
		if last.Path == "" {
			return errno
		}
		n.fill(last, &out.Attr)
		out.Nlink = 0
		return 0
	}
	if errno != 0 {
		return errno
	}
	n.fill(e, &out.Attr)
	out.SetTimeout(msgAttrTimeout)
	return 0
}

// Setattr: messages are immutable (truncate, chmod, chown, utime: EACCES).
func (n *msgNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EACCES
}

// Open answers ENOSYS: the kernel then sends no OPEN and no RELEASE for
// any file of the mount (FUSE's no-open mode; control files work the same
// way, see ctlNode), keeps message contents in its page cache between
// opens (a name's bytes never change), and sends READs to the node, which
// reads the backend file. Two round trips fewer per message opened: 1.1×
// the time of reading a real copy, warm, against 3.5× with OPEN (SPEC
// §10). A write is refused at write(2) rather than open(2).
func (n *msgNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

// Read reads the backend file: the one held after a delete, else the
// message's current file. A file renamed in the backend meanwhile is
// found again once the engine has seen the rename (the watcher needs
// milliseconds). A message deleted from the backend by another program
// after the reader opened it answers ENOENT: without an OPEN the view
// cannot have kept it (deletes through the mount keep it, see Unlink).
func (n *msgNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.mu.Lock()
	held := n.held
	n.mu.Unlock()
	if held != nil {
		return preadResult(int(held.Fd()), dest, off)
	}
	if off == 0 {
		n.d.readAheadOf(n.vbase) // not in the page cache: maybe the next ones neither
	}
	wait := time.Millisecond
	for try := 0; ; try++ {
		e, errno := n.entry()
		gone := errno == syscall.ENOENT
		if gone {
			// Left the folder while open: its last file, if still there.
			n.mu.Lock()
			e = n.last
			n.mu.Unlock()
		} else if errno != 0 {
			return nil, errno
		}
		fd, err := maildir.OpenRegular(e.Path)
		if err == nil {
			res, rerrno := preadResult(fd, dest, off)
			syscall.Close(fd)
			return res, rerrno
		}
		if !errors.Is(err, syscall.ENOENT) {
			return nil, errnoOf(err)
		}
		if gone || try == 6 {
			return nil, syscall.ENOENT
		}
		time.Sleep(wait) // renamed meanwhile: the engine catches up
		wait *= 2
	}
}

func preadResult(fd int, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := syscall.Pread(fd, dest, off)
	if err != nil {
		return nil, errnoOf(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Write: messages are immutable.
func (n *msgNode) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EACCES
}

// Flush answers ENOSYS: nothing is buffered, and the kernel then stops
// sending a FLUSH (one round trip) for every close of every file.
func (n *msgNode) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// Kernel cache lifetimes. What else is shown is not cached: other
// processes change the backend.
const (
	dirEntryTimeout  = time.Hour   // a folder's cur/ new/ tmp/ exist as long as the folder
	rootEntryTimeout = time.Second // folders come and go with the configuration
	dirAttrTimeout   = time.Minute // a bound, should a folder's invalidation be missed
	msgAttrTimeout   = time.Minute // a message's size and mtime never change
	// msgEntryTimeout is how long the kernel keeps a message's name: a
	// retired one can be stat()ed and read that long (listings are never
	// cached). One minute keeps a folder that a client reopens warm: a
	// LOOKUP per message made neomutt's warm open 3.2× a real Maildir's,
	// against 1.1× with the names cached.
	msgEntryTimeout = time.Minute
)
