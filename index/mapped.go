package index

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// releaseInterval is how often releaseEvery releases the index's mapped
// pages: Badger's compactions map the tables they read and write between
// commits (at 1,000,000 messages, up to 130 MB of them after a cold index).
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

// releaseMapped drops this process's mappings of the pages of the
// index's files. Badger maps every table it writes (it copies a new table
// into a shared mapping of its file) and every memtable's log, and what it
// just wrote stays counted in the daemon's resident size until the
// mapping goes: 21 MB of tables and logs after a cold index of 100,000
// messages, a sixth of the peak. The engine keeps what it reads in memory,
// so Badger reads its tables again only to compact them.
//
// MADV_DONTNEED on a shared file mapping only unmaps: the pages stay in
// the page cache, dirty ones are written back by the kernel as usual, and
// the next access maps them again from the file's current contents.
// Private mappings (whose pages would be discarded) are left alone. Linux
// only; on any error nothing is released.
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
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(a), uintptr(b-a), syscall.MADV_DONTNEED)
	}
}
