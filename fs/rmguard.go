package fs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Recursive deletes (rm -r, find -delete) walk a directory and unlink each
// entry while they hold the directory open; mail clients (mutt, neomutt,
// Dovecot, mbsync) list a directory, close it, and later unlink the
// messages they chose by name. Through vmfs, "rm -r MOUNT/Unread" would
// delete the real messages of every mailbox the folder spans, so an
// unlink from a process that has that very cur/ or new/ open is refused
// with EPERM, and the backend keeps every message.

// walking reports whether the process that sent a request holds dir (a
// path in the mount) open. It answers false when it cannot tell (no
// /proc, another pid namespace).
func walking(ctx context.Context, dir string) bool {
	fc, ok := ctx.(*fuse.Context)
	if !ok || fc.Caller.Pid == 0 {
		return false
	}
	fdDir := filepath.Join("/proc", strconv.FormatUint(uint64(fc.Caller.Pid), 10), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && l == dir {
			return true
		}
	}
	return false
}

// logRefusedWalk logs a refused recursive delete once per process and
// directory.
func (r *Root) logRefusedWalk(ctx context.Context, dir string) {
	pid := uint32(0)
	if fc, ok := ctx.(*fuse.Context); ok {
		pid = fc.Caller.Pid
	}
	if _, seen := r.refusedWalks.LoadOrStore(strconv.FormatUint(uint64(pid), 10)+"\x00"+dir, true); seen {
		return
	}
	comm, _ := os.ReadFile(filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), "comm"))
	slog.Warn("refused a recursive delete in a virtual folder: the real messages stay (delete them from a mail client, or rmdir a folder made with mkdir)",
		"dir", dir, "pid", pid, "command", string(trimNL(comm)))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}
