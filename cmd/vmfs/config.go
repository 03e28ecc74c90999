package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"vmfs/internal/dvirtual"
	"vmfs/internal/query"
	"vmfs/vsync"
)

// fileConfig is the TOML configuration (SPEC §3).
type fileConfig struct {
	Maildir string                  `toml:"maildir"`
	State   string                  `toml:"state"`
	Linger  string                  `toml:"linger"`
	Trash   string                  `toml:"trash"`
	Folder  map[string]folderConfig `toml:"folder"`
	// DovecotSeparator is the hierarchy separator of the mailbox names in
	// dovecot-virtual files: "." (Dovecot's default for Maildir++) or "/".
	DovecotSeparator string `toml:"dovecot_separator"`
}

type folderConfig struct {
	Mailboxes      []string `toml:"mailboxes"`
	Query          string   `toml:"query"`
	Save           string   `toml:"save"`
	DovecotVirtual string   `toml:"dovecot_virtual"`
}

// config is the result of loading: plain values for the rest of the
// program.
type config struct {
	Path    string // "" when the built-in defaults are used
	Maildir string
	State   string
	Linger  time.Duration // 0: the engine's default (10 minutes)
	Trash   string        // mailbox that deleted messages move to; "" deletes
	Folders []vsync.Folder
	sep     byte // hierarchy separator of dovecot-virtual files
}

// dovecotFolder reads one dovecot-virtual file as a folder.
func dovecotFolder(name, path string, sep byte) (vsync.Folder, error) {
	f, err := os.Open(path)
	if err != nil {
		return vsync.Folder{}, fmt.Errorf("folder %s: %w", name, err)
	}
	defer f.Close()
	d, err := dvirtual.Parse(f, path, sep)
	if err != nil {
		return vsync.Folder{}, err
	}
	return vsync.Folder{Name: name, Dovecot: d, Save: d.SaveMailbox()}, nil
}

// addVirtualDir adds a folder for every DIR/<Name>/dovecot-virtual, as
// Dovecot's virtual storage lays them out; nested names are allowed.
func (c *config) addVirtualDir(dir string) error {
	seen := map[string]bool{}
	for _, f := range c.Folders {
		seen[f.Name] = true
	}
	if c.Path == "" {
		c.Folders = nil // the built-in folders give way to the user's
		seen = map[string]bool{}
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "dovecot-virtual" {
			return nil
		}
		rel, err := filepath.Rel(dir, filepath.Dir(p))
		if err != nil || rel == "." {
			return fmt.Errorf("%s: a dovecot-virtual file belongs in a folder's directory", p)
		}
		name := filepath.ToSlash(rel)
		if err := validFolderName(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if seen[name] {
			return fmt.Errorf("%s: folder %q is defined twice", p, name)
		}
		seen[name] = true
		f, err := dovecotFolder(name, p, c.sep)
		if err != nil {
			return err
		}
		c.Folders = append(c.Folders, f)
		return nil
	})
	if err != nil {
		return err
	}
	if len(c.Folders) == 0 {
		return fmt.Errorf("--virtual-dir %s: no dovecot-virtual files found", dir)
	}
	return nil
}

func defaultConfigPath() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "vmfs", "config.toml")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "vmfs", "config.toml")
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, _ := os.UserHomeDir()
		return filepath.Join(home, p[1:])
	}
	return p
}

// userConfig loads the configuration a command was given (--config, or
// the default file if it exists) and the folders of --virtual-dir.
func userConfig(cfgPath, virtualDir string) (*config, error) {
	path, explicit := cfgPath, cfgPath != ""
	if !explicit {
		path = defaultConfigPath()
	}
	cfg, err := loadConfig(path, explicit)
	if err != nil {
		return nil, err
	}
	if virtualDir != "" {
		if err := cfg.addVirtualDir(virtualDir); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// loadConfig reads the configuration at path; explicit says whether the
// user named it (then it must exist). Without a file the built-in folders
// are used.
func loadConfig(path string, explicit bool) (*config, error) {
	c := &config{Maildir: defaultMaildir(), State: defaultStateDir(), sep: '.'}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		c.Folders = vsync.DefaultFolders()
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	c.Path = path
	var fc fileConfig
	md, err := toml.Decode(string(b), &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d:%d: %s", path, pe.Position.Line, pe.Position.Col, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data := string(b)
	if und := md.Undecoded(); len(und) > 0 {
		return nil, unknownKey(path, data, und[0])
	}
	if fc.Maildir != "" {
		c.Maildir = expandHome(fc.Maildir)
	}
	if fc.State != "" {
		c.State = expandHome(fc.State)
	}
	c.Trash = fc.Trash
	if fc.Linger != "" {
		d, err := time.ParseDuration(fc.Linger)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%slinger: %q is not a duration like \"10m\" or \"30s\"", at(path, data, "linger"), fc.Linger)
		}
		c.Linger = d
	}
	sep := byte('.')
	switch fc.DovecotSeparator {
	case "", ".":
	case "/":
		sep = '/'
	default:
		return nil, fmt.Errorf("%sdovecot_separator must be \".\" or \"/\", not %q", at(path, data, "dovecot_separator"), fc.DovecotSeparator)
	}
	c.sep = sep
	names := make([]string, 0, len(fc.Folder))
	for n := range fc.Folder {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fc.Folder[n]
		if err := validFolderName(n); err != nil {
			return nil, fmt.Errorf("%s: [folder.%q]: %w", path, n, err)
		}
		for _, p := range f.Mailboxes {
			if p == "" || p == "-" {
				return nil, fmt.Errorf("%s[folder.%q] mailboxes: an empty mailbox pattern", at(path, data, "mailboxes", "folder", n), n)
			}
		}
		if f.DovecotVirtual != "" {
			if len(f.Mailboxes) > 0 || f.Query != "" {
				return nil, fmt.Errorf("%s[folder.%q]: dovecot_virtual replaces mailboxes and query; give one or the other", at(path, data, "dovecot_virtual", "folder", n), n)
			}
			p := expandHome(f.DovecotVirtual)
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			vf, err := dovecotFolder(n, p, sep)
			if err != nil {
				return nil, err
			}
			if f.Save != "" {
				vf.Save = f.Save
			}
			c.Folders = append(c.Folders, vf)
			continue
		}
		if len(f.Mailboxes) == 0 {
			f.Mailboxes = []string{"*"}
		}
		if _, err := query.Compile(f.Query); err != nil {
			var qe *query.Error
			if l, c := keyPos(data, "query", "folder", n); l > 0 && errors.As(err, &qe) {
				// Point at the error inside the query string (one-line
				// strings: the value starts with its quote).
				return nil, fmt.Errorf("%s:%d:%d: [folder.%q] query: %s", path, l, c+qe.Pos, n, qe.Msg)
			}
			return nil, fmt.Errorf("%s[folder.%q] query: %w", at(path, data, "query", "folder", n), n, err)
		}
		c.Folders = append(c.Folders, vsync.Folder{Name: n, Mailboxes: f.Mailboxes, Query: f.Query, Save: f.Save})
	}
	if len(c.Folders) == 0 {
		c.Folders = vsync.DefaultFolders()
	}
	return c, nil
}

func validFolderName(n string) error {
	if n == "" || strings.HasPrefix(n, "/") || strings.HasSuffix(n, "/") {
		return errors.New("a folder name must not be empty or start or end with '/'")
	}
	for _, p := range strings.Split(n, "/") {
		if p == "" || p == "." || p == ".." || strings.HasPrefix(p, ".") {
			return fmt.Errorf("folder name component %q is not allowed", p)
		}
		if p == "cur" || p == "new" || p == "tmp" {
			return fmt.Errorf("folder name component %q would clash with a Maildir directory", p)
		}
	}
	return nil
}
