package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"vmfs/internal/maildir"
	"vmfs/vsync"
)

// mountT mounts a view over an engine in t.TempDir(), always unmounted.
func mountT(t *testing.T, eng Engine, cfg Config) (string, *Root) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs /dev/fuse and root for a direct mount")
	}
	mnt, zero := t.TempDir(), time.Duration(0)
	root := NewRoot(eng, cfg)
	opts := &gofs.Options{EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero}
	opts.DirectMount = true
	opts.DisableReadDirPlus = true
	srv, err := gofs.Mount(mnt, root, opts)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return mnt, root
}

// mountLive mounts a view over a real engine of backend, synced, whose
// changes reach the view as they do in the daemon.
func mountLive(t *testing.T, backend string, folders []vsync.Folder) (string, *vsync.Engine) {
	t.Helper()
	var root atomic.Pointer[Root]
	eng, err := vsync.Open(filepath.Join(t.TempDir(), "index"), vsync.Config{Root: backend, Folders: folders,
		OnChange: func(f []string) {
			if r := root.Load(); r != nil {
				r.Changed(f)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := eng.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	mnt, r := mountT(t, eng, Config{StateDir: t.TempDir()})
	root.Store(r)
	return mnt, eng
}

func TestDirectoryMtimeMovesEveryChange(t *testing.T) {
	backend := filepath.Join(t.TempDir(), "mail")
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(backend, s), 0o755)
	}
	mnt, eng := mountLive(t, backend, vsync.DefaultFolders())
	newDir := filepath.Join(mnt, "Unread", "new")
	prev, _ := os.Stat(newDir)
	// Two changes within one second: the mtime moves each time.
	for i := 0; i < 3; i++ {
		if _, err := maildir.Deliver(backend, strings.NewReader("Subject: x\n\nx\n"), "", false); err != nil {
			t.Fatal(err)
		}
		if err := eng.MailboxChanged(context.Background(), "INBOX"); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(newDir)
		if !fi.ModTime().After(prev.ModTime()) {
			t.Fatalf("change %d: new/ mtime %v did not move past %v", i, fi.ModTime(), prev.ModTime())
		}
		ents, _ := os.ReadDir(newDir)
		if len(ents) != i+1 {
			t.Fatalf("change %d: listing has %d", i, len(ents))
		}
		prev = fi
	}
}

func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.EXDEV, syscall.EXDEV},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, syscall.ENOENT},
		{vsync.ErrNotFound, syscall.ENOENT},
		{vsync.ErrNoSave, syscall.EACCES},
		{errors.Join(errors.New("ctx"), iofs.ErrExist), syscall.EEXIST},
		{context.Canceled, syscall.EINTR},
		{fmt.Errorf("rename x: %w", maildir.ErrExist), syscall.EEXIST},
		{fmt.Errorf("parse: %w", maildir.ErrBadName), syscall.EINVAL},
		{vsync.ErrClosed, syscall.EIO},
		{fmt.Errorf("sync: %w", iofs.ErrPermission), syscall.EACCES},
		{errors.New("something else"), syscall.EIO},
	} {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestReadOnly(t *testing.T) {
	backend := filepath.Join(t.TempDir(), "mail")
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(backend, s), 0o755)
	}
	os.WriteFile(filepath.Join(backend, "cur", "1.a:2,"), []byte("Subject: x\n\nx\n"), 0o644)
	eng, err := vsync.Open(filepath.Join(t.TempDir(), "index"), vsync.Config{Root: backend, Folders: vsync.DefaultFolders()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Sync(context.Background())
	mnt, _ := mountT(t, eng, Config{StateDir: t.TempDir(), ReadOnly: true, Layout: "maildir++"})
	if _, err := os.Stat(filepath.Join(mnt, ".Unread", "cur")); err != nil {
		t.Fatalf("maildir++ layout: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(mnt, ".Unread", "cur"))
	if len(ents) != 1 {
		t.Fatalf("listing %d", len(ents))
	}
	p := filepath.Join(mnt, ".Unread", "cur", ents[0].Name())
	if err := os.Rename(p, p+"S"); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rename on a read-only view: %v", err)
	}
	if err := os.Remove(p); !errors.Is(err, syscall.EROFS) {
		t.Errorf("unlink on a read-only view: %v", err)
	}
	if _, err := os.Stat(filepath.Join(backend, "cur", "1.a:2,")); err != nil {
		t.Error("backend changed")
	}
}

func TestGrantsDelete(t *testing.T) {
	for _, tc := range []struct {
		acl  string
		want bool
	}{
		{aclRights, false},
		{"owner lrwstipek\n", false},
		{"owner lrwstipekx\n", true},
		{"user=alice lra\n", true},
		{"owner :lookup :read :delete\n", true},
		{"# owner x\n\nanyone lr\n", false},
		{"-owner x\nowner lr\n", false},
		{"", false},
	} {
		if got := grantsDelete([]byte(tc.acl)); got != tc.want {
			t.Errorf("grantsDelete(%q) = %v, want %v", tc.acl, got, tc.want)
		}
	}
}
