package maildir

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// readDir calls fn with every entry of directory d but "." and "..": its
// name and its type (fs.ModeDir, fs.ModeSymlink, …; 0 for a regular file),
// read with getdents64(2) into one buffer. The name is a view of that
// buffer, valid only during the call: os.ReadDir allocates a name and an
// entry for each file (at a million messages, 60 MB of names a cold index
// keeps and 100 MB of entries it drops). Where the file system reports no
// type (DT_UNKNOWN), the file is lstat()ed, as os.ReadDir does.
func readDir(d string, fn func(name []byte, typ fs.FileMode)) error {
	fd, err := syscall.Open(d, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: d, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "readdirent", Path: d, Err: err}
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
		// d_type u8, then the NUL-terminated name.
		for rec := buf[:n]; len(rec) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(rec[16:]))
			if reclen < 19 || reclen > len(rec) {
				return &os.PathError{Op: "readdirent", Path: d, Err: syscall.EIO}
			}
			ino, dtype, name := binary.NativeEndian.Uint64(rec), rec[18], rec[19:reclen]
			rec = rec[reclen:]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if ino == 0 || len(name) == 0 || string(name) == "." || string(name) == ".." {
				continue // a deleted entry, as os.ReadDir skips them
			}
			typ, known := direntType(dtype)
			if !known {
				fi, err := os.Lstat(d + "/" + string(name))
				if err != nil {
					continue // gone since it was listed
				}
				typ = fi.Mode().Type()
			}
			fn(name, typ)
		}
	}
}

// direntType is the type of a d_type; not known for DT_UNKNOWN.
func direntType(t byte) (fs.FileMode, bool) {
	switch t {
	case syscall.DT_REG:
		return 0, true
	case syscall.DT_DIR:
		return fs.ModeDir, true
	case syscall.DT_LNK:
		return fs.ModeSymlink, true
	case syscall.DT_FIFO:
		return fs.ModeNamedPipe, true
	case syscall.DT_SOCK:
		return fs.ModeSocket, true
	case syscall.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case syscall.DT_BLK:
		return fs.ModeDevice, true
	}
	return 0, false
}
