package vsync

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vmfs/index"
	"vmfs/internal/maildir"
)

// Keyword letters (SPEC §5). A backend mailbox maps Dovecot keyword
// letters (a–z in the info part) to names in its dovecot-keywords; two
// mailboxes may give one keyword different letters. Each virtual folder
// has a map of its own, the dovecot-keywords file in its control
// directory (Config.KeywordsFile), which an IMAP server serving the mount
// reads and appends to. Virtual names carry the folder's letters; a flag
// change through the folder is carried to the backend file in the backend
// mailbox's letters, adding the keyword to that mailbox's map when it has
// none, as Dovecot does.

// folderKeywords is a folder's letter map and what its file looked like
// when it was read.
type folderKeywords struct {
	path  string
	m     map[byte]string
	mtime time.Time
	size  int64
	// checked is the engine's op (Engine.ops) in which the file was last
	// looked at: once per op is enough, not once per message.
	checked uint64
}

// kwOf returns the folder's map, read again if its file changed (an IMAP
// server added a keyword) since the last op looked. e.op must be held.
func (e *Engine) kwOf(f *folder) *folderKeywords {
	if f.kw != nil && f.kw.checked == e.ops {
		return f.kw
	}
	if f.kw == nil {
		if e.cfg.KeywordsFile == nil {
			return nil
		}
		f.kw = &folderKeywords{path: e.cfg.KeywordsFile(f.def.Name)}
		// Names are made before the view makes the folder's control
		// directory (at the first sync): the map's letters must stick.
		if err := os.MkdirAll(filepath.Dir(f.kw.path), 0o700); err != nil {
			slog.Warn("folder's keyword map", "folder", f.def.Name, "err", err)
		}
	}
	f.kw.checked = e.ops
	fi, err := os.Stat(f.kw.path)
	switch {
	case err != nil:
		if f.kw.m == nil {
			f.kw.m = map[byte]string{}
		}
	case f.kw.m == nil || !fi.ModTime().Equal(f.kw.mtime) || fi.Size() != f.kw.size:
		if m, err := maildir.ReadKeywordsFile(f.kw.path); err == nil {
			f.kw.m, f.kw.mtime, f.kw.size = m, fi.ModTime(), fi.Size()
		} else if f.kw.m == nil {
			f.kw.m = map[byte]string{}
		}
	}
	return f.kw
}

// hasKeywordLetters reports whether a file name's info part has a
// lowercase letter.
func hasKeywordLetters(name string) (flagsStart, flagsEnd int, ok bool) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 || !strings.HasPrefix(name[i+1:], "2,") {
		return 0, 0, false
	}
	start := i + 3
	end := strings.IndexByte(name[start:], ',')
	if end < 0 {
		end = len(name)
	} else {
		end += start
	}
	for j := start; j < end; j++ {
		if name[j] >= 'a' && name[j] <= 'z' {
			return start, end, true
		}
	}
	return 0, 0, false
}

// folderLetters turns the keyword letters of a virtual name (the backend
// mailbox's) into the folder's. e.op must be held.
func (e *Engine) folderLetters(f *folder, mailbox, name string) string {
	start, end, ok := hasKeywordLetters(name)
	if !ok || e.cfg.KeywordsFile == nil {
		return name
	}
	mb := e.mailboxes[mailbox]
	if mb == nil {
		return name
	}
	kw := e.kwOf(f)
	out := []byte(name[start:end])
	for i, l := range out {
		if l < 'a' || l > 'z' {
			continue
		}
		kname, known := mb.keywords[l]
		if !known {
			continue // a letter without a name: kept, Dovecot shows it so too
		}
		fl := maildir.LetterOf(kw.m, kname)
		if fl == 0 {
			var err error
			if fl, kw.m, err = maildir.AddKeyword(kw.path, kname, nil); err != nil {
				slog.Warn("keyword not added to the folder's map", "folder", f.def.Name, "keyword", kname, "err", err)
				continue
			}
			if fi, err := os.Stat(kw.path); err == nil {
				kw.mtime, kw.size = fi.ModTime(), fi.Size()
			}
		}
		out[i] = fl
	}
	return name[:start] + maildir.NormFlags(string(out)) + name[end:]
}

// shownName is a member's name in its folder: the folder's keyword
// letters, and those still pending. e.op must be held.
func (e *Engine) shownName(f *folder, mem *index.Member, m *index.Message, k vkey) string {
	name := e.folderLetters(f, mem.Mailbox, virtualName(f, mem, m, k))
	if len(f.pendingKw) == 0 {
		return name
	}
	if p := f.pendingKw[key{mem.Mailbox, mem.Base}]; p != "" {
		n, err := maildir.ParseName(name)
		if err == nil {
			n.Flags, n.HasInfo = maildir.NormFlags(n.Flags+p), true
			name = n.String()
		}
	}
	return name
}

// backendLetters turns the keyword letters of flags a client wrote in a
// folder into the backend mailbox's, adding keywords the mailbox's map
// lacks. Letters the folder's map does not name are left out and
// returned as pending. e.op must be held (the backend map is the
// engine's).
func (e *Engine) backendLetters(f *folder, mb *mailbox, flags string) (string, string) {
	if e.cfg.KeywordsFile == nil || !strings.ContainsAny(flags, "abcdefghijklmnopqrstuvwxyz") {
		return flags, ""
	}
	kw := e.kwOf(f)
	out := []byte(flags)
	var pending []byte
	for i, l := range out {
		if l < 'a' || l > 'z' {
			continue
		}
		kname, known := kw.m[l]
		if !known {
			pending = append(pending, l)
			out[i] = ' ' // dropped by NormFlags
			continue
		}
		bl := maildir.LetterOf(mb.keywords, kname)
		if bl == 0 {
			var m map[byte]string
			var err error
			if bl, m, err = maildir.AddKeyword(filepath.Join(mb.Path, maildir.KeywordsFile), kname, e.cfg.Owner); err != nil {
				slog.Warn("keyword not added to the mailbox's map", "mailbox", mb.Name, "keyword", kname, "err", err)
				continue
			}
			mb.keywords = m
		}
		out[i] = bl
	}
	return maildir.NormFlags(string(out)), string(pending)
}

// KeywordsChanged is called when a client rewrote a folder's keyword map
// (an IMAP server stored a new keyword): letters set before the map named
// them are carried to the backend files now.
func (e *Engine) KeywordsChanged(ctx context.Context, folderName string) error {
	if err := e.lockOp(); err != nil {
		return err
	}
	defer e.op.Unlock()
	f := e.folders[folderName]
	if f == nil || len(f.pendingKw) == 0 {
		return nil
	}
	b := e.store.NewBatch()
	changed := map[key]bool{}
	for k, letters := range f.pendingKw {
		m, mb := e.msgs[k.mailbox].Get(k.base), e.mailboxes[k.mailbox]
		if m == nil || mb == nil {
			delete(f.pendingKw, k)
			continue
		}
		add, still := e.backendLetters(f, mb, letters)
		if add == "" {
			continue
		}
		n, err := maildir.ParseName(m.Name)
		if err != nil {
			continue
		}
		n.Flags, n.HasInfo = maildir.NormFlags(n.Flags+add), true
		src := e.pathOf(k.mailbox, m)
		dst := filepath.Join(filepath.Dir(src), n.String())
		if err := maildir.Rename(src, dst); err != nil {
			slog.Warn("keyword not carried to the backend", "path", src, "err", err)
			continue
		}
		m.Name = n.String()
		b.PutMessage(k.mailbox, m)
		changed[k] = true
		if still == "" {
			delete(f.pendingKw, k)
		} else {
			f.pendingKw[k] = still
		}
	}
	return e.commitLocked(b, changed, nil)
}
