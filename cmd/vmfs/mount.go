package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	vfs "vmfs/fs"
	"vmfs/index"
	"vmfs/internal/maildir"
	"vmfs/vsync"
	"vmfs/watch"
)

// mountOpts is what `vmfs mount` is given.
type mountOpts struct {
	Folders    []vsync.Folder
	Linger     time.Duration
	Trash      string
	Maildir    string
	Mountpoint string
	State      string
	Layout     string
	Options    []string // -o
	Verbose    bool
	Poll       time.Duration
	// CfgPath and VirtualDir are where the folders were read from, read
	// again when they change (reload.go).
	CfgPath, VirtualDir string
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "vmfs")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "vmfs")
}

// stateFor is the state directory of one backend root: one index per root.
func stateFor(state, root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(state, filepath.Base(root)+"-"+hex.EncodeToString(sum[:6]))
}

// within reports whether path p lies inside dir (or is dir), comparing
// whole path components: /mail2 is not inside /mail.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

type optList []string

func (o *optList) String() string { return strings.Join(*o, ",") }
func (o *optList) Set(s string) error {
	*o = append(*o, strings.Split(s, ",")...)
	return nil
}

func runMount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mount", "[options] [MAILDIR] MOUNTPOINT",
		"Mount the virtual folders of MAILDIR (default: the configuration's maildir, then $MAILDIR,\n"+
			"then ~/Mail) on MOUNTPOINT and serve them in the foreground until unmounted\n"+
			"(fusermount3 -u MOUNTPOINT) or interrupted.\n"+
			"Examples:\n"+
			"  vmfs mount ~/Mail ~/VMail\n"+
			"  vmfs mount -o allow_other --virtual-dir ~/Mail/virtual ~/Mail ~/VMail", stderr)
	var o mountOpts
	var opts optList
	cfgPath := fs.String("config", "", "configuration file (default $XDG_CONFIG_HOME/vmfs/config.toml)")
	virtualDir := fs.String("virtual-dir", "", "load every DIR/<Name>/dovecot-virtual as a folder")
	fs.StringVar(&o.State, "state", "", "state directory (index and control files; default from the configuration, then ~/.local/state/vmfs)")
	fs.StringVar(&o.Layout, "layout", "fs", "mount layout: fs (MOUNT/A/B/cur) or maildir++ (MOUNT/.A.B/cur)")
	fs.Var(&opts, "o", "FUSE mount options: allow_other, default_permissions, ro")
	fs.BoolVar(&o.Verbose, "v", false, "debug logging")
	fs.DurationVar(&o.Poll, "poll", 30*time.Second, "how often the whole backend is checked, besides watching it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := userConfig(*cfgPath, *virtualDir)
	if err != nil {
		return err
	}
	o.Folders, o.Linger, o.Trash = cfg.Folders, cfg.Linger, cfg.Trash
	o.CfgPath, o.VirtualDir = *cfgPath, *virtualDir
	if o.State == "" {
		o.State = cfg.State
	}
	switch fs.NArg() {
	case 1:
		o.Maildir, o.Mountpoint = cfg.Maildir, fs.Arg(0)
	case 2:
		o.Maildir, o.Mountpoint = fs.Arg(0), fs.Arg(1)
	default:
		return usageErr("want [MAILDIR] MOUNTPOINT")
	}
	if o.Layout != "fs" && o.Layout != "maildir++" {
		return usageErr("--layout must be fs or maildir++, not %q", o.Layout)
	}
	o.Options = opts
	return mount(ctx, o, stderr)
}

func mount(ctx context.Context, o mountOpts, stderr io.Writer) error {
	level := slog.LevelInfo
	if o.Verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	root, err := filepath.Abs(o.Maildir)
	if err != nil {
		return err
	}
	mnt, err := filepath.Abs(o.Mountpoint)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("backend %s is not a directory", root)
	}
	if fi, err := os.Stat(mnt); errors.Is(err, syscall.ENOTCONN) {
		return fmt.Errorf("mount point %s is a dead FUSE mount (its daemon exited): run fusermount3 -u %s first", mnt, mnt)
	} else if err != nil || !fi.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", mnt)
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if m, err := filepath.EvalSymlinks(mnt); err == nil {
		mnt = m
	}
	if within(mnt, root) {
		return fmt.Errorf("mount point %s is inside the backend %s", mnt, root)
	}
	if within(root, mnt) {
		return fmt.Errorf("backend %s is inside the mount point %s", root, mnt)
	}
	if err := validateMountpoint(mnt); err != nil {
		return err
	}
	fopts, err := parseMountOptions(o.Options)
	if err != nil {
		return err
	}
	state := stateFor(o.State, root)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	folders, kept, err := withSearches(o.Folders, state)
	if err != nil {
		return err
	}
	// The backend root's owner owns what the mount shows and what vmfs
	// creates in the backend (as root over another user's Maildir).
	var rootSt syscall.Stat_t
	if err := syscall.Stat(root, &rootSt); err != nil {
		return fmt.Errorf("backend %s: %w", root, err)
	}
	var owner *maildir.Owner
	if os.Geteuid() == 0 && rootSt.Uid != 0 {
		owner = &maildir.Owner{UID: int(rootSt.Uid), GID: int(rootSt.Gid)}
	}
	memCtx, stopMem := context.WithCancel(ctx)
	memDone, loaded, built := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { governMemory(memCtx, loaded, built, dev.PeakProfile); close(memDone) }()
	defer func() { stopMem(); <-memDone }()
	// Live updates: the watcher's batches, one at a time. Its watches are
	// set before the first sync, so that nothing that happens from then on
	// is missed.
	wctx, stopWatch := context.WithCancel(ctx)
	// Barriers for the watcher (watch.Watcher.Recheck): a private
	// directory, emptied of a previous run's.
	wopts := watch.Options{MarkDir: filepath.Join(state, "watch")}
	os.RemoveAll(wopts.MarkDir)
	if err := os.MkdirAll(wopts.MarkDir, 0o700); err != nil {
		slog.Warn("watch: no barrier directory; renames in progress are waited for by time", "err", err)
		wopts.MarkDir = ""
	}
	if dev.MaxWatches > 0 {
		wopts.MaxWatches = dev.MaxWatches
	}
	// The watches are set while the index loads (they need nothing of
	// it); the callback runs once the watcher runs, after eng is set.
	var eng *vsync.Engine
	type newWatcher struct {
		w   *watch.Watcher
		err error
	}
	watchReady := make(chan newWatcher, 1)
	go func() {
		w, err := watch.New(root, wopts, func(b watch.Batch) {
			var err error
			if b.Rescan || b.Tree {
				err = eng.Sync(wctx)
			} else {
				if len(b.Files) > 0 {
					err = eng.FilesChanged(wctx, b.Files)
				}
				if err == nil && len(b.Dirs) > 0 {
					err = eng.DirsChanged(wctx, b.Dirs)
				}
			}
			if err != nil && wctx.Err() == nil {
				slog.Error("sync", "err", err)
			}
		})
		watchReady <- newWatcher{w, err}
	}()
	// view is set once mounted; the engine's OnChange, called from the
	// watcher's goroutine, reads it.
	var viewPtr atomic.Pointer[vfs.Root]
	// watcher is set once watching; the engine asks it to report again
	// files that vanished in the middle of a rename (Config.Recheck).
	var watcher atomic.Pointer[watch.Watcher]
	eng, err = vsync.Open(filepath.Join(state, "index"), vsync.Config{
		Root:    root,
		Folders: folders,
		Linger:  o.Linger,
		Trash:   o.Trash,
		Owner:   owner,
		KeywordsFile: func(folder string) string {
			return filepath.Join(vfs.ControlDir(state, folder), maildir.KeywordsFile)
		},
		OnChange: func(folders []string) {
			if v := viewPtr.Load(); v != nil {
				v.Changed(folders)
			}
		},
		Recheck: func(files map[string][]string) {
			if w := watcher.Load(); w != nil {
				w.Recheck(files)
			}
		},
		Progress:   newProgress(stderr),
		CrashPoint: testCrashPoint,
	})
	close(loaded)
	nw := <-watchReady
	if err != nil && nw.w != nil {
		nw.w.Close()
	}
	if errors.Is(err, index.ErrLocked) {
		stopWatch()
		return fmt.Errorf("another vmfs is already serving %s (state directory %s is locked)", root, state)
	}
	if err != nil {
		stopWatch()
		return err
	}
	defer eng.Close()
	if nw.err != nil {
		stopWatch()
		return fmt.Errorf("watch %s: %w", root, nw.err)
	}
	w := nw.w
	watcher.Store(w)
	watching := make(chan struct{})
	go func() { w.Run(wctx); close(watching) }()
	defer func() { stopWatch(); <-watching }()

	start := time.Now()
	if err := eng.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			slog.Info("interrupted before mounting; the index keeps what was done")
			return nil
		}
		return fmt.Errorf("index %s: %w", root, err)
	}
	slog.Info("index ready", "backend", root, "took", time.Since(start).Round(time.Millisecond))
	if p := dev.MemProfile; p != "" {
		defer func() {
			if f, err := os.Create(p); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}()
	}
	stopControl, err := serveControl(ctx, state, eng)
	if err != nil {
		return err
	}
	defer stopControl()

	view := vfs.NewRoot(eng, vfs.Config{Layout: o.Layout, StateDir: state, ReadOnly: fopts.readOnly, Mountpoint: mnt,
		Searches: &searches{state: state, eng: eng, names: kept},
		UID:      rootSt.Uid, GID: rootSt.Gid})
	viewPtr.Store(view)
	zero := time.Duration(0)
	srv, err := gofs.Mount(mnt, view, &gofs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:      "vmfs",
			Name:        "vmfs",
			AllowOther:  fopts.allowOther,
			Options:     fopts.kernel,
			DirectMount: os.Geteuid() == 0,
			// READDIRPLUS would cost a lookup (and a backend lstat) per
			// message in every listing, also for `ls -f`.
			DisableReadDirPlus: true,
			Debug:              o.Verbose && dev.FUSEDebug,
		},
	})
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	slog.Info("mounted", "mountpoint", mnt, "folders", len(eng.Folders()))

	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()

	reloadCtx, stopReload := context.WithCancel(ctx)
	reloading := make(chan struct{})
	rl := &reloader{cfgPath: o.CfgPath, virtualDir: o.VirtualDir, eng: eng, view: view, folders: o.Folders}
	go func() { rl.watchConfig(reloadCtx); close(reloading) }()
	defer func() { stopReload(); <-reloading }()

	// Sizes and dates that a big sync left for later (folders with
	// YOUNGER, SINCE, LARGER, … fill in from them), now and after every
	// rescan.
	fillCtx, stopFill := context.WithCancel(ctx)
	filling := make(chan struct{})
	go func() {
		defer close(filling)
		for first := true; ; first = false {
			if err := eng.Fill(fillCtx); err != nil && fillCtx.Err() == nil {
				slog.Error("reading sizes and dates", "err", err)
			}
			if first {
				close(built) // the index is complete
			}
			select {
			case <-fillCtx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { stopFill(); <-filling }()

	poll := time.NewTicker(o.Poll)
	defer poll.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	maintain := time.NewTicker(10 * time.Minute)
	defer maintain.Stop()
	for {
		select {
		case <-done:
			slog.Info("unmounted", "mountpoint", mnt)
			return nil
		case <-ctx.Done():
			slog.Info("signal: unmounting", "mountpoint", mnt)
			shutdown(srv, mnt, done)
			return nil
		case <-poll.C:
			if err := eng.Sync(ctx); err != nil && ctx.Err() == nil {
				slog.Error("sync", "err", err)
			}
		case <-tick.C:
			if err := eng.Tick(); err != nil {
				slog.Error("tick", "err", err)
			}
		case <-maintain.C:
			eng.Maintain()
		}
	}
}

// fuseOpts are the checked -o options.
type fuseOpts struct {
	readOnly, allowOther bool
	kernel               []string // passed to the kernel
}

// parseMountOptions checks -o before anything is indexed.
func parseMountOptions(opts []string) (fuseOpts, error) {
	var f fuseOpts
	for _, opt := range opts {
		switch opt {
		case "ro":
			f.readOnly = true
			f.kernel = append(f.kernel, "ro")
		case "allow_other":
			f.allowOther = true
		case "default_permissions": // added below, always with allow_other
		case "":
		default:
			return f, usageErr("unsupported mount option %q (allow_other, default_permissions, ro)", opt)
		}
	}
	if f.allowOther || slices.Contains(opts, "default_permissions") {
		// Other users get in only as the modes allow: the kernel checks
		// the backend's owners and modes that the mount shows.
		f.kernel = append(f.kernel, "default_permissions")
	}
	return f, nil
}

// validateMountpoint refuses mount points that would hide something: one
// that is already a mount (a second vmfs would stack on the first), one
// that is a Maildir (MAILDIR and MOUNTPOINT swapped: the real mail would
// vanish under an empty mount), and one that is not empty.
func validateMountpoint(mnt string) error {
	if mounted, err := isMountpoint(mnt); err == nil && mounted {
		return fmt.Errorf("mount point %s is already a mount point (another vmfs?): unmount it first with fusermount3 -u %s", mnt, mnt)
	}
	if isMaildir(mnt) {
		return fmt.Errorf("mount point %s is a Maildir (it has cur/ and new/): did you swap MAILDIR and MOUNTPOINT? (vmfs mount MAILDIR MOUNTPOINT)", mnt)
	}
	ents, err := os.ReadDir(mnt)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", mnt, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("mount point %s is not empty (it holds %s): vmfs mounts only on an empty directory", mnt, ents[0].Name())
	}
	return nil
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// isMountpoint reports whether dir is the mount point of a mount in this
// process's namespace (/proc/self/mountinfo, field 5, octal escapes).
func isMountpoint(dir string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Shutdown timing: how often and how long an unmount is retried while a
// client keeps the mount busy, and how long a lazily detached mount may
// keep serving its last users before vmfs exits anyway.
const (
	unmountTries   = 5
	unmountBackoff = 200 * time.Millisecond
	detachGrace    = 2 * time.Second
)

// shutdown unmounts on a signal. A busy mount (a shell inside it, a file
// open) is retried, then detached lazily: it vanishes from the namespace
// at once, and its last users get errors once vmfs exits. It returns
// within about unmountTries*unmountBackoff + detachGrace.
func shutdown(srv *fuse.Server, mnt string, done <-chan struct{}) {
	var err error
	for try := 0; try < unmountTries; try++ {
		if err = srv.Unmount(); err == nil {
			<-done
			return
		}
		select {
		case <-done:
			return
		case <-time.After(unmountBackoff):
		}
	}
	slog.Warn("mount point busy: detaching it lazily; the processes still using it get errors once vmfs exits", "mountpoint", mnt, "err", err)
	if err := detach(mnt); err != nil {
		slog.Error("lazy unmount failed", "mountpoint", mnt, "err", err)
	}
	select {
	case <-done:
	case <-time.After(detachGrace):
	}
}

// detach unmounts mnt lazily (MNT_DETACH), as root directly, otherwise
// through fusermount3 -u -z.
func detach(mnt string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	bin := "fusermount3"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "fusermount"
	}
	if out, err := exec.Command(bin, "-u", "-z", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("%s -u -z: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// testCrashPoint ends the process at the engine's crash point named by
// VMFS_TEST_CRASH (the crash tests), and does nothing otherwise.
func testCrashPoint(name string) {
	if dev.Crash == name {
		slog.Error("test crash point reached", "point", name)
		os.Exit(137)
	}
}
