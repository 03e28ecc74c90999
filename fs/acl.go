package fs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// aclFile is Dovecot's per-mailbox rights file (its acl plugin with
// "acl = vfile" reads it from a Maildir mailbox's own directory, also when
// CONTROL= points elsewhere). Every folder and the mount root carry one
// that grants the owner every right but delete-mailbox (x) and admin (a):
// Dovecot deletes a Maildir folder by expunging each of its messages
// first, which through vmfs would delete the real mail, so DELETE must be
// refused before it starts. Messages are still expunged (e) one by one.
const aclFile = "dovecot-acl"

const aclRights = "# Written by vmfs at every mount: deleting a virtual folder through\n" +
	"# Dovecot would expunge (delete) every real message in it first, so the\n" +
	"# delete right (x) is withheld. This file cannot be changed through the mount.\n" +
	"owner lrwstipek\n"

// writeACL (re)writes the rights file in a folder's control directory.
func writeACL(dir string) {
	p := filepath.Join(dir, aclFile)
	if b, err := os.ReadFile(p); err == nil && string(b) == aclRights {
		return
	}
	tmp := p + ".vmfs-tmp"
	err := os.WriteFile(tmp, []byte(aclRights), 0o600)
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		slog.Error("rights file not written: IMAP DELETE of this folder is not refused", "path", p, "err", err)
	}
}

// isACL reports whether a name in a folder's root (or the mount root) is
// the rights file, which clients may read but not change or remove.
func isACL(name string) bool { return name == aclFile }

// rightsFile is the fixed rights file of a parent-only directory: it can
// be read, not changed.
type rightsFile struct{ gofs.MemRegularFile }

var (
	_ = (gofs.NodeOpener)((*rightsFile)(nil))
	_ = (gofs.NodeSetattrer)((*rightsFile)(nil))
)

func newRightsFile(uid, gid uint32) *rightsFile {
	return &rightsFile{gofs.MemRegularFile{Data: []byte(aclRights), Attr: fuse.Attr{Mode: 0o444, Owner: fuse.Owner{Uid: uid, Gid: gid}}}}
}

func (f *rightsFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EACCES
	}
	return f.MemRegularFile.Open(ctx, flags)
}

func (f *rightsFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EACCES
}
