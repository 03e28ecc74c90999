package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// aclFile is Dovecot's per-mailbox rights file (its acl plugin with
// "acl = vfile" reads it from a Maildir mailbox's own directory, also when
// CONTROL= points elsewhere). Every folder, every parent-only directory
// and the mount root carry one, a fixed node of the view (rightsFile),
// that grants the owner every right but delete-mailbox (x) and admin (a):
// Dovecot deletes a Maildir folder by expunging each of its messages
// first, which through vmfs would delete the real mail, so DELETE must be
// refused before it starts. Messages are still expunged (e) one by one.
const aclFile = "dovecot-acl"

const aclRights = "# Served by vmfs: deleting a virtual folder through\n" +
	"# Dovecot would expunge (delete) every real message in it first, so the\n" +
	"# delete right (x) is withheld. This file cannot be changed through the mount.\n" +
	"owner lrwstipek\n"

// isACL reports whether a name in a folder's root (or the mount root) is
// the rights file, which clients may read but not create, replace, rename
// or remove.
func isACL(name string) bool { return name == aclFile }

// rightsFile is the fixed rights file of a directory of the view: it can
// be read, not changed.
type rightsFile struct{ gofs.MemRegularFile }

var (
	_ = (gofs.NodeOpener)((*rightsFile)(nil))
	_ = (gofs.NodeSetattrer)((*rightsFile)(nil))
	_ = (gofs.NodeWriter)((*rightsFile)(nil))
	_ = (gofs.NodeFlusher)((*rightsFile)(nil))
)

func newRightsFile(uid, gid uint32) *rightsFile {
	return &rightsFile{gofs.MemRegularFile{Data: []byte(aclRights), Attr: fuse.Attr{Mode: 0o444, Owner: fuse.Owner{Uid: uid, Gid: gid}}}}
}

// Open answers ENOSYS as every file of the view does (see msgNode.Open):
// reads come to the node; writes are refused at write(2).
func (f *rightsFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

func (f *rightsFile) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EACCES
}

func (f *rightsFile) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

func (f *rightsFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EACCES
}

// addRights hangs a rights file under a directory node of the view.
func addRights(ctx context.Context, dir *gofs.Inode, path string, uid, gid uint32) {
	acl := dir.NewPersistentInode(ctx, newRightsFile(uid, gid), gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino("acl", path)})
	dir.AddChild(aclFile, acl, true)
}

// grantsDelete reports whether a Dovecot vfile ACL grants someone the
// right to delete the mailbox (x) or to change rights (a): a search
// folder's rights file may be replaced only by one that grants neither.
func grantsDelete(acl []byte) bool {
	for _, line := range strings.Split(string(acl), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, rights, _ := strings.Cut(line, " ")
		if strings.HasPrefix(id, "-") { // negative rights take rights away
			continue
		}
		if strings.ContainsAny(rights, "xa") || strings.Contains(rights, ":delete") || strings.Contains(rights, ":admin") {
			return true
		}
	}
	return false
}

// writeRights gives a search folder its rights file, a control file
// (Dovecot's CREATE copies its parent's rights into it, through a dotlock
// and a rename, which a fixed rights file would refuse).
func writeRights(dir string) error {
	p := filepath.Join(dir, aclFile)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	return os.WriteFile(p, []byte(aclRights), 0o600)
}
