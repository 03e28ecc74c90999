package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"vmfs/internal/query"
	"vmfs/vsync"
)

// Search folders: `mkdir MOUNT/QUERY` makes a folder whose query is its
// name, over the default mailboxes (a MAILBOX key narrows them); `rmdir`
// removes it. They are kept in the state directory (searchesFile), one
// JSON list of names, and come back at every mount.
const searchesFile = "searches.json"

// searchMailboxes are the mailboxes a search folder looks at.
var searchMailboxes = []string{"*", "-Trash", "-Junk", "-Spam"}

// searchFolder is the definition of the search folder name: its query
// is the last component ("Lists/FROM alice" searches FROM alice).
func searchFolder(name string) vsync.Folder {
	return vsync.Folder{Name: name, Mailboxes: searchMailboxes, Query: path.Base(name)}
}

// loadSearches returns the search folders kept in a state directory.
func loadSearches(state string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(state, searchesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(state, searchesFile), err)
	}
	return names, nil
}

// withSearches adds the kept search folders to the configured ones (a
// name the configuration defines too is the configuration's).
func withSearches(folders []vsync.Folder, state string) ([]vsync.Folder, []string, error) {
	names, err := loadSearches(state)
	if err != nil {
		return folders, nil, err
	}
	out := slices.Clone(folders)
	var kept []string
	for _, n := range names {
		if slices.ContainsFunc(folders, func(f vsync.Folder) bool { return f.Name == n }) {
			slog.Warn("search folder shadowed by a configured folder of that name", "name", n)
			continue
		}
		if _, err := query.Compile(path.Base(n)); err != nil {
			slog.Warn("kept search folder is not a valid query; skipped", "name", n, "err", err)
			continue
		}
		out = append(out, searchFolder(n))
		kept = append(kept, n)
	}
	return out, kept, nil
}

// searches makes and removes search folders for the view (fs.Searches).
type searches struct {
	state string
	eng   *vsync.Engine

	mu    sync.Mutex // protects names; serializes changes
	names []string
}

// Make adds the search folder name: EINVAL (iofs.ErrInvalid) with one log
// line when name is not a query.
func (s *searches) Make(ctx context.Context, name string) error {
	if _, err := query.Compile(path.Base(name)); err != nil {
		slog.Warn("mkdir: not a search query", "name", name, "err", err)
		return fmt.Errorf("%q: %w: %v", name, iofs.ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Not cut short by the client's signals: a mkdir is not restarted but
	// retried (Go's os.Mkdir does on EINTR, and Go's runtime signals its
	// own threads all the time), and the retry would find the folder made
	// and answer EEXIST. A folder whose search fails is not kept.
	if err := s.eng.AddFolder(context.WithoutCancel(ctx), searchFolder(name)); err != nil {
		return err
	}
	names := append(slices.Clone(s.names), name)
	if err := s.save(names); err != nil {
		s.eng.RemoveFolder(name)
		return err
	}
	s.names = names
	slog.Info("search folder made", "name", name)
	return nil
}

// Remove removes the search folder name (never a backend message).
func (s *searches) Remove(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.names, name)
	if i < 0 {
		return fmt.Errorf("%q is not a search folder: %w", name, iofs.ErrPermission)
	}
	names := slices.Delete(slices.Clone(s.names), i, i+1)
	if err := s.save(names); err != nil {
		return err
	}
	s.names = names
	if err := s.eng.RemoveFolder(name); err != nil {
		return err
	}
	slog.Info("search folder removed", "name", name)
	return nil
}

// Made reports whether name is a search folder.
func (s *searches) Made(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.names, name)
}

// save writes the list, atomically.
func (s *searches) save(names []string) error {
	b, err := json.Marshal(names)
	if err != nil {
		return err
	}
	p := filepath.Join(s.state, searchesFile)
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keeping the search folders: %w", err)
	}
	return nil
}
