package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"vmfs/internal/maildir"
)

// TestListingsDuringBackendRenames: while another program renames backend
// messages as mbsync does when it syncs flags (within cur/), every listing
// of the folder shows every message, under its old or its new name, never
// neither, always with the same inode number (an IMAP server on the mount
// takes a missing message for an expunge and gives it a new UID when it
// comes back); and a client renaming other messages through the mount at
// the same time never gets ENOENT for a name it just listed.
func TestListingsDuringBackendRenames(t *testing.T) {
	root := genBackend(t, 300)
	cfg := configFile(t, allFolderConfig)
	m := mount(t, root, "--config", cfg)

	all := backend(t, root)
	var cur []backendMsg
	for _, b := range all {
		if !b.New {
			cur = append(cur, b)
		}
	}
	if len(cur) < 100 {
		t.Fatalf("only %d messages in cur/", len(cur))
	}
	mine, theirs := cur[:len(cur)/2], cur[len(cur)/2:] // the client's, the backend writer's

	// The inode number of every message, by virtual base name.
	inoOf := func() (map[string]uint64, error) {
		out := map[string]uint64{}
		for _, sub := range []string{"cur", "new"} {
			ents, err := readDirInos(m.path("All", sub))
			if err != nil {
				return nil, err
			}
			for name, ino := range ents {
				out[maildir.BaseOf(name)] = ino
			}
		}
		return out, nil
	}
	want, err := inoOf()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(all) {
		t.Fatalf("All lists %d messages, the backend has %d", len(want), len(all))
	}
	// The client's messages, found through the mount by their bytes.
	own := ownNames(t, m.path("All", "cur"), ls(t, m.path("All", "cur")), mine)
	if len(own) != len(mine) {
		t.Fatalf("found %d of the client's %d messages in All/cur", len(own), len(mine))
	}

	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex // protects the counters and failures below
	var listings, missing, wrongIno, renames, enoent int
	var failures []string
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}

	wg.Add(3)
	go func() { // the backend writer: flags set and cleared as mbsync does
		defer wg.Done()
		r := rand.New(rand.NewSource(1))
		paths := make([]string, len(theirs))
		for i, b := range theirs {
			paths[i] = b.Path
		}
		for time.Now().Before(stop) {
			i := r.Intn(len(paths))
			dst, err := flipFlag(paths[i], "F")
			if err != nil {
				fail("backend rename: %v", err)
				return
			}
			paths[i] = dst
		}
	}()
	go func() { // a reader listing the folder over and over
		defer wg.Done()
		for time.Now().Before(stop) {
			got, err := inoOf()
			if err != nil {
				fail("list: %v", err)
				return
			}
			mu.Lock()
			listings++
			for vb, ino := range want {
				switch g, ok := got[vb]; {
				case !ok:
					missing++
				case g != ino:
					wrongIno++
				}
			}
			mu.Unlock()
		}
	}()
	go func() { // a client flagging its own messages through the mount
		defer wg.Done()
		r := rand.New(rand.NewSource(2))
		dir := m.path("All", "cur")
		for time.Now().Before(stop) && len(own) > 0 {
			i := r.Intn(len(own))
			dst, err := flipFlag(filepath.Join(dir, own[i]), "S")
			mu.Lock()
			renames++
			if errors.Is(err, syscall.ENOENT) {
				enoent++
			}
			mu.Unlock()
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				fail("client rename: %v", err)
				return
			}
			if err == nil {
				own[i] = filepath.Base(dst)
			}
		}
	}()
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d listings, %d client renames", listings, renames)
	if listings < 5 || renames < 50 {
		t.Fatalf("too little done to tell: %d listings, %d renames", listings, renames)
	}
	if missing > 0 {
		t.Errorf("%d times a message was missing from a listing while it was renamed in the backend", missing)
	}
	if wrongIno > 0 {
		t.Errorf("%d times a message was listed with another inode number (a new UID)", wrongIno)
	}
	if enoent > 0 {
		t.Errorf("%d of %d renames through the mount of names just listed got ENOENT", enoent, renames)
	}
	// And afterwards: every message is there, once.
	eventually(t, 5*time.Second, func() string {
		got, err := inoOf()
		if err != nil {
			return err.Error()
		}
		if len(got) != len(all) {
			return fmt.Sprintf("All lists %d messages, want %d", len(got), len(all))
		}
		for vb, ino := range want {
			if got[vb] != ino {
				return fmt.Sprintf("%s: inode %d, want %d", vb, got[vb], ino)
			}
		}
		return ""
	})
}

// flipFlag sets or clears one flag of the message file at p by renaming it
// in its directory, as a client or mbsync does, and returns its new path.
func flipFlag(p, flag string) (string, error) {
	n, err := maildir.ParseName(filepath.Base(p))
	if err != nil {
		return "", err
	}
	if strings.Contains(n.Flags, flag) {
		n.Flags = maildir.SetFlags(n.Flags, "", flag)
	} else {
		n.Flags = maildir.SetFlags(n.Flags, flag, "")
	}
	n.HasInfo = true
	dst := filepath.Join(filepath.Dir(p), n.String())
	return dst, os.Rename(p, dst)
}

// readDirInos lists a directory with each entry's inode number (d_ino).
func readDirInos(dir string) (map[string]uint64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.ReadDirent(int(f.Fd()), buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		b := buf[:n]
		for len(b) > 0 {
			reclen := int(uint16(b[16]) | uint16(b[17])<<8)
			ino := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
				uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				out[s] = ino
			}
			b = b[reclen:]
		}
	}
}

// ownNames returns the names in dir (of the mount) whose files have the
// same bytes as one of msgs' backend files.
func ownNames(t *testing.T, dir string, names []string, msgs []backendMsg) []string {
	want := map[string]bool{}
	for _, b := range msgs {
		want[hashFile(t, b.Path)] = true
	}
	var out []string
	for _, n := range names {
		if want[hashFile(t, filepath.Join(dir, n))] {
			out = append(out, n)
		}
	}
	return out
}

// TestDovecotThroughBackendRenames: Dovecot serving the mount, with a
// session polling (NOOP) while another program sets and clears flags in
// the backend as mbsync does, never sees a message expunged, and every
// message keeps its UID (a message missing from one listing would be
// expunged, and given a new UID when it came back).
func TestDovecotThroughBackendRenames(t *testing.T) {
	root := genBackend(t, 200)
	cfg := configFile(t, allFolderConfig)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	d := startDovecot(t, m.mnt, t.TempDir(), false)
	sel, err := d.c.Select("All", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	n := sel.NumMessages
	uids := func() []imap.UID {
		t.Helper()
		msgs, err := d.c.Fetch(seqAll(n), &imap.FetchOptions{UID: true}).Collect()
		if err != nil {
			t.Fatalf("FETCH UID: %v", err)
		}
		var out []imap.UID
		for _, msg := range msgs {
			out = append(out, msg.UID)
		}
		return out
	}
	before := uids()
	if len(before) != len(backend(t, root)) || n == 0 {
		t.Fatalf("All has %d messages, the backend %d", len(before), len(backend(t, root)))
	}

	var cur []string
	for _, b := range backend(t, root) {
		if !b.New {
			cur = append(cur, b.Path)
		}
	}
	stop := time.Now().Add(3 * time.Second)
	done := make(chan error, 1)
	go func() { // the other program
		r := rand.New(rand.NewSource(3))
		for time.Now().Before(stop) {
			i := r.Intn(len(cur))
			dst, err := flipFlag(cur[i], "F")
			if err != nil {
				done <- err
				return
			}
			cur[i] = dst
			time.Sleep(200 * time.Microsecond)
		}
		done <- nil
	}()
	noops := 0
	for time.Now().Before(stop) {
		if err := d.c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP: %v", err)
		}
		noops++
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("backend rename: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := d.c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d NOOPs", noops)
	if x := d.expunged.Load(); x > 0 {
		t.Errorf("Dovecot expunged %d messages that were only renamed in the backend", x)
	}
	if after := uids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("UIDs changed: %d before, %d after\nbefore %v\nafter  %v", len(before), len(after), before, after)
	}
	if strings.Contains(d.stderr.String(), "reappeared") {
		t.Errorf("Dovecot: %s", d.stderr)
	}
}
