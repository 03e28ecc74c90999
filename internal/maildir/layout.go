package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
	"unsafe"
)

// Inbox is the name of the mailbox at the backend root.
const Inbox = "INBOX"

// Mailbox is one backend Maildir: a directory holding cur/ and new/.
type Mailbox struct {
	Name string // hierarchy separated by '/', e.g. "INBOX", "Lists/Go"
	Path string // absolute directory holding cur/ and new/
}

// Tree is what Discover finds under a backend root.
type Tree struct {
	Mailboxes []Mailbox // sorted by Name
	// Dirs are the directories in which a new mailbox may appear (the root
	// and every directory of the nested layout); a watcher watches these.
	Dirs []string
}

// maxDepth bounds the nested layout; no real mail tree is deeper.
const maxDepth = 64

// IsMaildir reports whether dir holds both cur/ and new/ directories
// (symbolic links are not followed).
func IsMaildir(dir string) bool {
	return isDir(filepath.Join(dir, "cur")) && isDir(filepath.Join(dir, "new"))
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// Discover finds every mailbox under root, in both layouts at once:
//
//   - root itself, when it holds cur/ and new/, is INBOX;
//   - Maildir++: a directory ".A.B" directly under root is mailbox "A/B",
//     its name decoded from IMAP modified UTF-7;
//   - nested: "A/B/{cur,new}" is mailbox "A/B" (as mbsync's SubFolders
//     Verbatim writes); every directory of that tree is searched.
//
// Symbolic links are never followed. Entries that cannot be used (unreadable
// directories, names that are not UTF-8, two directories giving one mailbox
// name) are skipped and reported together in the returned error; the Tree is
// complete for everything else.
func Discover(root string) (Tree, error) {
	root = filepath.Clean(root)
	var t Tree
	var errs []error
	seen := map[string]string{}
	add := func(name, path string) {
		key := name
		if strings.EqualFold(name, Inbox) {
			key, name = Inbox, Inbox
		}
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("mailbox %q: both %s and %s; using the first", name, prev, path))
			return
		}
		seen[key] = path
		t.Mailboxes = append(t.Mailboxes, Mailbox{Name: name, Path: path})
	}
	if IsMaildir(root) {
		add(Inbox, root)
	}
	var walk func(dir, prefix string, depth int)
	walk = func(dir, prefix string, depth int) {
		t.Dirs = append(t.Dirs, dir)
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", dir, err))
			return
		}
		for _, e := range ents {
			n := e.Name()
			if !e.IsDir() || n == "cur" || n == "new" || n == "tmp" {
				continue
			}
			p := filepath.Join(dir, n)
			if n[0] == '.' {
				if depth == 0 && len(n) > 1 && n != ".." && IsMaildir(p) {
					name, err := plusPlusName(n)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", p, err))
						continue
					}
					add(name, p)
				}
				continue // hidden directories (.notmuch, .mu, …) are not mail
			}
			if !utf8.ValidString(n) {
				errs = append(errs, fmt.Errorf("%q: directory name is not UTF-8; skipped", p))
				continue
			}
			name := prefix + n
			if IsMaildir(p) {
				add(name, p)
			}
			if depth+1 < maxDepth {
				walk(p, name+"/", depth+1)
			}
		}
	}
	walk(root, "", 0)
	sort.Slice(t.Mailboxes, func(i, j int) bool { return t.Mailboxes[i].Name < t.Mailboxes[j].Name })
	return t, errors.Join(errs...)
}

// plusPlusName turns a Maildir++ directory name (".A.B", modified UTF-7)
// into a mailbox name ("A/B").
func plusPlusName(dir string) (string, error) {
	s := dir[1:]
	dec, err := DecodeUTF7(s)
	if err != nil {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("Maildir++ folder name is neither modified UTF-7 nor UTF-8")
		}
		dec = s // some writers store UTF-8 directly; show it as it is
	}
	parts := strings.Split(dec, ".")
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("Maildir++ folder name has an empty component")
		}
	}
	return strings.Join(parts, "/"), nil
}

// PlusPlusDir returns the Maildir++ directory name (".A.B") of mailbox "A/B".
func PlusPlusDir(name string) string {
	return "." + EncodeUTF7(strings.ReplaceAll(name, "/", "."))
}

// Entry is one message file of a mailbox.
type Entry struct {
	New  bool   // in new/ rather than cur/
	Name string // file name
}

// List returns the message files of a mailbox's cur/ and new/ (never tmp/),
// from directory entries alone: no file is opened or stat()ed unless the
// file system does not report entry types. Hidden files, directories,
// symbolic links and names that are not Maildir message names are left
// out; the latter are reported in the error, the list is complete without
// them. A missing cur/ or new/ is an error wrapping fs.ErrNotExist.
func List(dir string) ([]Entry, error) { return list(dir, func(b []byte) string { return string(b) }) }

// ListWith is List with each name made by keep from the bytes read from
// the directory (valid only during the call); List allocates each. A
// caller that keeps every name (a mailbox's first listing) can keep them
// in shared blocks.
func ListWith(dir string, keep func([]byte) string) ([]Entry, error) { return list(dir, keep) }

func list(dir string, keep func([]byte) string) ([]Entry, error) {
	var out []Entry
	var errs []error
	// new/ first: a message moved from new/ to cur/ while they are listed
	// is seen in one or both, never in neither.
	for _, sub := range [...]string{"new", "cur"} {
		d := filepath.Join(dir, sub)
		err := readDir(d, func(b []byte, t fs.FileMode) {
			if b[0] == '.' {
				return
			}
			if t&fs.ModeDir != 0 {
				return
			} else if t&(fs.ModeSymlink|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice) != 0 {
				errs = append(errs, fmt.Errorf("%s/%s: %w (skipped)", d, b, ErrNotRegular))
				return
			}
			if _, err := ParseName(unsafe.String(&b[0], len(b))); err != nil { // not kept
				errs = append(errs, fmt.Errorf("%s: %w", d, err))
				return
			}
			out = append(out, Entry{New: sub == "new", Name: keep(b)})
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", d, err)
		}
	}
	return out, errors.Join(errs...)
}

// KeywordsFile is the name of Dovecot's keyword map in a Maildir.
const KeywordsFile = "dovecot-keywords"

// ReadKeywords reads a mailbox's dovecot-keywords file: letter 'a'+N stands
// for the keyword on line "N name". A missing file gives an empty map.
func ReadKeywords(dir string) (map[byte]string, error) {
	return ReadKeywordsFile(filepath.Join(dir, KeywordsFile))
}

// ReadKeywordsFile reads a keyword map from a file of that format (a
// virtual folder keeps its map in its control directory).
func ReadKeywordsFile(path string) (map[byte]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[byte]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[byte]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		num, name, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= 26 || name == "" {
			continue // Dovecot ignores such lines too
		}
		m[byte('a'+n)] = name
	}
	return m, sc.Err()
}

// ErrNotRegular is returned by OpenRegular for a name that is no regular
// file (a FIFO, socket or device in cur/ or new/): reading one would block
// or have effects. It wraps fs.ErrInvalid.
var ErrNotRegular = fmt.Errorf("not a regular file: %w", fs.ErrInvalid)

// OpenRegular opens a message file read-only without ever blocking or
// following a symbolic link: the open does not wait for a FIFO's writer,
// and anything but a regular file is refused with ErrNotRegular. It
// returns a raw, close-on-exec descriptor.
func OpenRegular(path string) (int, error) {
	fd, _, err := OpenRegularStat(path)
	return fd, err
}

// OpenRegularStat is OpenRegular, also returning the file's fstat(2) (by
// value: no allocation per message opened).
func OpenRegularStat(path string) (int, syscall.Stat_t, error) {
	var st syscall.Stat_t
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return -1, st, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return -1, st, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	return fd, st, nil
}
