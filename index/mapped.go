package index

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// releaseInterval is how often releaseEvery releases the index's mapped
// pages (and a big commit after each of its parts): Badger's compactions
// map the tables they read and write in the background (at 1,000,000
// messages, up to 130 MB of them after a cold index). A small commit (a
// delivery, a flag) writes a few KiB and does not read /proc/self/maps.
const releaseInterval = time.Second

// releaseEvery calls releaseMapped every d until Close.
func (s *Store) releaseEvery(d time.Duration) {
	defer close(s.released)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.releasing:
			return
		case <-t.C:
			s.releaseMapped()
		}
	}
}

// stopReleasing stops releaseEvery and waits for it.
func (s *Store) stopReleasing() {
	s.stopRelease.Do(func() { close(s.releasing); <-s.released })
}

// releaseMapped asks the kernel to reclaim the pages of the index's
// files mapped in this process. Badger maps every table it writes (it
// copies a new table into a shared mapping of its file) and reads, and
// those pages stay counted in the daemon's resident size until the mapping
// goes: 20 MB of tables after a cold index of 100,000 messages, a sixth of
// the peak, and up to 130 MB while compacting at 1,000,000. The engine
// keeps what it reads in memory; Badger reads its tables again only to
// compact them (from the disk then).
//
// MADV_PAGEOUT never loses data, whatever the range holds by the time the
// call is made (the list of mappings is read first, and Badger may unmap
// a table meanwhile, and the range be reused): clean file pages are
// dropped, dirty ones are left to writeback, and anonymous memory would
// only be swapped out. (MADV_DONTNEED would zero anonymous memory that
// came to occupy such a range.) Linux 5.4 or later; on any error nothing
// is released.
func (s *Store) releaseMapped() {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	dir := []byte(s.mapDir + "/")
	for line := range bytes.Lines(maps) {
		// start-end perms offset dev inode path (the first '/' starts the
		// path: the other fields have none)
		i := bytes.IndexByte(line, '/')
		f := strings.Fields(string(line[:max(i, 0)]))
		if i < 0 || len(f) != 5 || len(f[1]) != 4 || f[1][3] != 's' || !bytes.HasPrefix(line[i:], dir) {
			continue
		}
		start, end, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(start, 16, 64)
		b, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_PAGEOUT)
	}
}
