// Package space tells whether a file system is short of free space for
// the state directory: the index (Badger maps its files and dies of
// SIGBUS when a write into them finds no space) and the control files
// clients write into the mount share it.
package space

import "syscall"

// maxReserve is the most space kept free for the index: a few memtables,
// a table flush and a compaction's output.
const maxReserve = 64 << 20

// Reserve is how much of a file system of total bytes is kept free: 64
// MiB, or a quarter of a smaller one.
func Reserve(total uint64) uint64 {
	return min(maxReserve, total/4)
}

// Low reports whether the file system holding dir has less than its
// reserve free (for an unprivileged writer). It answers false when it
// cannot tell.
func Low(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	bs := uint64(st.Bsize)
	return st.Bavail*bs < Reserve(st.Blocks*bs)
}
