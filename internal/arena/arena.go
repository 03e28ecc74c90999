// Package arena keeps many small strings in shared blocks: one allocation
// per block instead of one per string, and no rounding up to an allocation
// size class (Maildir names of 49-64 bytes take 64 each). A string kept
// keeps its whole block in memory: for strings that are kept together (a
// snapshot's, a mailbox's first listing), not for a few out of many.
package arena

import "unsafe"

// Strings copies strings into blocks of BlockSize bytes (the zero value:
// 64 KiB). A block is only ever appended to within its capacity, so the
// strings cut from it never change.
type Strings struct {
	BlockSize int
	cur       []byte
}

const defaultBlock = 64 << 10

// Copy returns b as a string kept in the current block; a string longer
// than a quarter of a block gets an allocation of its own.
func (a *Strings) Copy(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	size := a.BlockSize
	if size <= 0 {
		size = defaultBlock
	}
	if len(b) > cap(a.cur)-len(a.cur) {
		if len(b) > size/4 {
			return string(b)
		}
		a.cur = make([]byte, 0, size)
	}
	start := len(a.cur)
	a.cur = append(a.cur, b...)
	return unsafe.String(&a.cur[start], len(b))
}
