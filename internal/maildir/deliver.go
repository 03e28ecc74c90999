package maildir

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	gomaildir "github.com/emersion/go-maildir"
	"golang.org/x/sys/unix"
)

var deliveries atomic.Uint64

// UniqueName returns a new Maildir unique name:
// "<seconds>.M<microseconds>P<pid>Q<counter>.<host>", the form Dovecot and
// qmail write, with ',' '/' and ':' removed from the host name.
func UniqueName() string {
	now := time.Now()
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", "\\057", ":", "\\072", ",", "").Replace(host)
	if host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), deliveries.Add(1), host)
}

// Owner is who files vmfs creates in a backend belong to: the backend's
// owner, when vmfs runs as root over another user's Maildir. A nil *Owner
// leaves them to the running user.
type Owner struct{ UID, GID int }

func (o *Owner) chown(p string) error {
	if o == nil {
		return nil
	}
	return os.Lchown(p, o.UID, o.GID)
}

// Init creates a mailbox directory with cur/, new/ and tmp/ if it does
// not exist yet; every directory it creates belongs to owner.
func Init(dir string, owner *Owner) error {
	var made []string
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		made = append(made, d)
	}
	for _, d := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if _, err := os.Lstat(d); err != nil {
			made = append(made, d)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := gomaildir.Dir(dir).Init(); err != nil {
		return err
	}
	for _, d := range made {
		if err := owner.chown(d); err != nil {
			return err
		}
	}
	return nil
}

// Deliver writes a new message into the mailbox at dir the Maildir way:
// into tmp/, fsync, then link()ed into new/ (or cur/ with flags, when cur
// is set) under a name no other file has, tmp/ file removed, directory
// fsynced. It returns the new file name. Nothing is left in tmp/ on error.
func Deliver(dir string, r io.Reader, flags string, cur bool) (string, error) {
	return DeliverAs(dir, "", r, flags, cur, time.Time{}, nil)
}

// DeliverAs is Deliver with the base name chosen by the caller (empty: a
// new unique name; ",S=<size>" is added unless base has it) and the file's
// mtime (zero: now), which IMAP servers take as the INTERNALDATE, and its
// owner. When a file of that name already exists the error wraps ErrExist
// and nothing is written.
func DeliverAs(dir, base string, r io.Reader, flags string, cur bool, mtime time.Time, owner *Owner) (string, error) {
	chosen := base != ""
	if !chosen {
		base = UniqueName()
	}
	tmp := filepath.Join(dir, "tmp", UniqueName())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrNotExist) { // a mailbox without tmp/ (some writers omit it)
		if err = os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err == nil || errors.Is(err, os.ErrExist) {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return "", fmt.Errorf("deliver: %w", err)
	}
	size, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("deliver: %w", err)
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(tmp, mtime, mtime)
	}
	if err == nil {
		err = owner.chown(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("deliver: %w", err)
	}
	name, sub := base, "new"
	if Size(base) < 0 {
		name = fmt.Sprintf("%s,S=%d", base, size)
	}
	if cur {
		name, sub = Name{Base: name, Flags: flags, HasInfo: true}.String(), "cur"
	}
	dst := filepath.Join(dir, sub, name)
	err = os.Link(tmp, dst)
	os.Remove(tmp)
	if errors.Is(err, os.ErrExist) {
		return filepath.Join(sub, name), fmt.Errorf("deliver %s: %w", name, ErrExist)
	}
	if err != nil {
		return "", fmt.Errorf("deliver: %w", err)
	}
	syncDir(filepath.Join(dir, sub))
	return filepath.Join(sub, name), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ErrExist is returned by Rename and DeliverAs when the target name is
// taken; it wraps fs.ErrExist.
var ErrExist = fmt.Errorf("target exists: %w", iofs.ErrExist)

// Rename renames a message file without ever replacing another file
// (renameat2 RENAME_NOREPLACE): a Maildir rename must not lose a message
// that happens to have the target name.
func Rename(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("rename %s: %w", to, ErrExist)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// A file system without RENAME_NOREPLACE: link + unlink keeps
		// the no-replace guarantee.
		lerr := os.Link(from, to)
		if lerr == nil {
			return os.Remove(from)
		}
		if errors.Is(lerr, os.ErrExist) {
			return fmt.Errorf("rename %s: %w", to, ErrExist)
		}
		// No hard links either (FAT, some network file systems): check,
		// then rename; the window between the two is as small as it gets.
		if _, serr := os.Lstat(to); serr == nil {
			return fmt.Errorf("rename %s: %w", to, ErrExist)
		}
		return os.Rename(from, to)
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}
