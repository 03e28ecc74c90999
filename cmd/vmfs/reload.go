package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	vfs "vmfs/fs"
	"vmfs/vsync"
)

// Live configuration (SPEC §3): the configuration file and the
// --virtual-dir files are read again when they change and on SIGHUP;
// added folders appear, removed ones go, changed ones rebuild their
// membership (names and UIDs of the messages that still match stay). A
// broken edit changes nothing and is logged once.
type reloader struct {
	cfgPath, virtualDir string
	eng                 *vsync.Engine
	view                *vfs.Root
	folders             []vsync.Folder // the configured folders in effect
	lastErr             string
}

// watchConfig reloads on changes and SIGHUP until ctx ends.
func (r *reloader) watchConfig(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		slog.Warn("configuration changes are applied on SIGHUP only", "err", err)
	} else {
		defer w.Close()
		path := r.cfgPath
		if path == "" {
			path = defaultConfigPath()
		}
		for _, dir := range r.watched(path) {
			if err := w.Add(dir); err != nil && !os.IsNotExist(err) {
				slog.Warn("configuration directory not watched", "dir", dir, "err", err)
			}
		}
	}
	// An edit made between the mount and the watches above is seen now.
	r.reload(ctx)
	var events chan fsnotify.Event
	var errs chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	var settle <-chan time.Time // edits come in bursts (write, rename)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			slog.Info("SIGHUP: reading the configuration again")
			r.reload(ctx)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && r.virtualDir != "" {
					w.Add(ev.Name) // a new DIR/<Name>/ of --virtual-dir
				}
			}
			settle = time.After(200 * time.Millisecond)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			slog.Warn("watching the configuration", "err", err)
		case <-settle:
			settle = nil
			r.reload(ctx)
		}
	}
}

// watched are the directories whose changes may change the folders: the
// configuration file's, and --virtual-dir with its subdirectories.
func (r *reloader) watched(cfgPath string) []string {
	dirs := []string{filepath.Dir(cfgPath)}
	if r.virtualDir != "" {
		dirs = append(dirs, r.virtualDir)
		if ents, err := os.ReadDir(r.virtualDir); err == nil {
			for _, e := range ents {
				if e.IsDir() {
					dirs = append(dirs, filepath.Join(r.virtualDir, e.Name()))
				}
			}
		}
	}
	return dirs
}

// reload reads the configuration and applies what changed in its folders.
func (r *reloader) reload(ctx context.Context) {
	cfg, err := userConfig(r.cfgPath, r.virtualDir)
	if err != nil {
		if msg := err.Error(); msg != r.lastErr {
			slog.Error("configuration not applied; the running folders stay", "err", err)
			r.lastErr = msg
		}
		return
	}
	r.lastErr = ""
	old := map[string]vsync.Folder{}
	for _, f := range r.folders {
		old[f.Name] = f
	}
	now := map[string]bool{}
	var applied []vsync.Folder // what is in effect afterwards
	for _, f := range cfg.Folders {
		now[f.Name] = true
		prev, had := old[f.Name]
		switch {
		case !had:
			if err := r.eng.AddFolder(ctx, f); err != nil {
				slog.Error("folder not added", "folder", f.Name, "err", err)
				continue
			}
			r.view.AddFolder(f.Name)
			slog.Info("folder added", "folder", f.Name)
		case !reflect.DeepEqual(prev, f):
			if err := r.eng.RedefineFolder(ctx, f); err != nil {
				slog.Error("folder not changed", "folder", f.Name, "err", err)
				applied = append(applied, prev)
				continue
			}
			slog.Info("folder changed", "folder", f.Name)
		}
		applied = append(applied, f)
	}
	for _, f := range r.folders {
		if now[f.Name] {
			continue
		}
		r.view.RemoveFolder(f.Name)
		if err := r.eng.RemoveFolder(f.Name); err != nil {
			slog.Error("folder not removed", "folder", f.Name, "err", err)
		}
		slog.Info("folder removed", "folder", f.Name)
	}
	r.folders = applied
}
