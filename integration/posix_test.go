package integration

import (
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosixOnControlFiles runs go-fuse's posixtest checks that apply to a
// Maildir-shaped directory against a virtual folder's tmp/, where IMAP
// servers and delivery agents write real files.
func TestPosixOnControlFiles(t *testing.T) {
	root := genBackend(t, 10)
	m := mount(t, root)
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if skipPosix[name] != "" {
			continue
		}
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			dir := m.path("Unread", "tmp", name)
			if err := mkdirT(dir); err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
}

// Checks that do not apply to a Maildir's control files, and why.
var skipPosix = map[string]string{
	"Link":                "link() answers EXDEV by design (clients fall back to a copy)",
	"LinkUnlinkRename":    "needs link()",
	"NlinkZero":           "needs link()",
	"SymlinkReadlink":     "a Maildir holds no symlinks; vmfs creates none",
	"SetattrSymlink":      "a Maildir holds no symlinks",
	"OpenSymlinkRace":     "needs symlink()",
	"XAttr":               "no extended attributes",
	"XAttrLarge":          "no extended attributes",
	"FcntlFlockLocksFile": "locks are not forwarded (Dovecot uses dotlocks in Maildirs)",
	"FcntlFlockSetLk":     "locks are not forwarded",
	"DirectIO":            "O_DIRECT not needed by mail clients",
	"Fallocate":           "not needed",
	"LseekHoleSeeksToEOF": "not needed",
	"LseekEnxioCheck":     "not needed",
	"RenameOpenDir":       "directory renames are not a Maildir operation",
}
