package index

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// mappedRss is the resident size (KiB) of this process's mappings of files
// under dir.
func mappedRss(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if f := strings.Fields(l); len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// a mapping's first line: start-end perms offset dev inode [path]
			i := strings.IndexByte(l, '/')
			in = i >= 0 && strings.HasPrefix(l[i:], dir+"/")
			continue
		}
		if in && strings.HasPrefix(l, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			total += n
		}
	}
	return total
}

// TestCommitReleasesMappedPages: after commits that write Badger tables
// (while Badger flushes and compacts in the background, and releases run
// with every commit), every record reads back, also after a reopen; and a
// release takes the pages of the index's files that reading mapped out of
// the process.
func TestCommitReleasesMappedPages(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000    // about 9 MB of records: two memtables flushed to tables
	for w := range 2 { // small commits, then one big one (written in parts)
		step := 1000
		if w == 1 {
			step = n / 2
		}
		for c := 0; c < n/2; c += step {
			b := s.NewBatch()
			for i := c; i < c+step; i++ {
				b.PutMessage(fmt.Sprintf("Box%d", w), &Message{Name: fmt.Sprintf("%d.M%dP%d.%s:2,S", 1700000000+i, i, w, strings.Repeat("h", 100)), Size: int64(i)})
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := s.NewBatch()
	b.PutMessage("Box0", &Message{Name: "last:2,"})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		snap, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if a, b := snap.Messages["Box0"].Len(), snap.Messages["Box1"].Len(); a != n/2+1 || b != n/2 {
			t.Fatalf("read back %d and %d messages, want %d and %d", a, b, n/2+1, n/2)
		}
		for i := 0; i < n/2; i += 997 {
			m := snap.Messages["Box1"].Get(fmt.Sprintf("%d.M%dP1.%s", 1700000000+i, i, strings.Repeat("h", 100)))
			if m == nil || m.Size != int64(i) {
				t.Fatalf("message %d read back as %+v", i, m)
			}
		}
	}
	s.stopReleasing() // no release every second from here: this test's
	check(s)          // reads every table through its mapping
	// Written back (MADV_PAGEOUT leaves dirty pages to writeback), the
	// pages read are resident until released.
	s.db.Sync()
	syscall.Sync()
	before := mappedRss(t, s.mapDir)
	s.releaseMapped()
	if after := mappedRss(t, s.mapDir); before < 2048 || after > before/4 {
		t.Errorf("%d KiB of the index's files resident after a release, %d before", after, before)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}
