package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"vmfs/vsync"
)

// dirent is one entry of getdents64 with the offset the kernel gives it.
type dirent struct {
	name string
	off  int64
}

// getdents reads entries from fd with a small buffer (so that a listing
// takes many READDIRs), at most max of them.
func getdents(t *testing.T, fd int, max int) []dirent {
	t.Helper()
	var out []dirent
	buf := make([]byte, 1024)
	for len(out) < max {
		n, err := syscall.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			off := *(*int64)(unsafe.Pointer(&b[8]))
			name := b[19:reclen]
			name = name[:slices.Index(name, 0)]
			out = append(out, dirent{string(name), off})
			b = b[reclen:]
		}
	}
	return out
}

func names(ds []dirent) []string {
	var out []string
	for _, d := range ds {
		if d.name != "." && d.name != ".." {
			out = append(out, d.name)
		}
	}
	return out
}

// TestListingInPieces: a folder much bigger than one READDIR is listed
// whole, each name once, cur/ and new/ apart; a listing read while the
// folder changes is the picture it started from (no message missing, none
// twice); an offset handed out earlier (telldir) goes on from the same
// entry after seekdir; rewinddir shows the change.
func TestListingInPieces(t *testing.T) {
	backend := filepath.Join(t.TempDir(), "mail")
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(backend, s), 0o755)
	}
	const n = 1500
	var inCur, inNew int
	for i := range n {
		sub, name := "cur", fmt.Sprintf("%d.M%dP1.host:2,S", 1700000000+i, i)
		if i%7 == 3 {
			sub, name = "new", fmt.Sprintf("%d.M%dP1.host", 1700000000+i, i)
			inNew++
		} else {
			inCur++
		}
		os.WriteFile(filepath.Join(backend, sub, name), []byte("Subject: x\n\nx\n"), 0o644)
	}
	mnt, eng := mountLive(t, backend, []vsync.Folder{{Name: "All", Mailboxes: []string{"*"}, Query: "ALL"}})
	cur := filepath.Join(mnt, "All", "cur")

	open := func() int {
		fd, err := syscall.Open(cur, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	fd := open()
	defer func() { syscall.Close(fd) }()
	whole := getdents(t, fd, 1<<30)
	if len(whole) < 2 || whole[0].name != "." || whole[1].name != ".." {
		t.Fatalf("listing starts with %v", whole[:min(2, len(whole))])
	}
	all := names(whole)
	if len(all) != inCur || len(slices.Compact(slices.Sorted(slices.Values(all)))) != inCur {
		t.Fatalf("cur/ lists %d names (%d distinct), want %d", len(all), len(slices.Compact(slices.Sorted(slices.Values(all)))), inCur)
	}
	if l, _ := os.ReadDir(filepath.Join(mnt, "All", "new")); len(l) != inNew {
		t.Fatalf("new/ lists %d, want %d", len(l), inNew)
	}

	// seekdir to an offset of the middle of the listing: it goes on from
	// the entry after it.
	mid := whole[700]
	if _, err := syscall.Seek(fd, mid.off, 0); err != nil {
		t.Fatal(err)
	}
	if rest := names(getdents(t, fd, 1<<30)); !slices.Equal(rest, names(whole[701:])) {
		t.Fatalf("after seekdir to %d: %d names, first %q; want %d from %q", mid.off, len(rest), rest[:min(1, len(rest))], len(whole)-701, whole[701].name)
	}

	// A listing read in pieces while a message is delivered and another
	// is renamed (a flag change in the backend) is one picture.
	syscall.Close(fd)
	fd = open()
	first := getdents(t, fd, 300)
	old := fmt.Sprintf("%d.M%dP1.host:2,S", 1700000000+1400, 1400)
	os.Rename(filepath.Join(backend, "cur", old), filepath.Join(backend, "cur", old+"F"))
	os.WriteFile(filepath.Join(backend, "cur", "1800000000.Mnew.host:2,S"), []byte("Subject: y\n\ny\n"), 0o644)
	if err := eng.MailboxChanged(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	got := append(names(first), names(getdents(t, fd, 1<<30))...)
	if !slices.Equal(got, all) {
		t.Fatalf("a listing read across a change: %d names, want the %d it started with", len(got), len(all))
	}
	// rewinddir: the folder as it is now.
	if _, err := syscall.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	now := names(getdents(t, fd, 1<<30))
	if len(now) != inCur+1 || slices.Contains(now, all[slices.IndexFunc(all, func(s string) bool { return s[:10] == "1700001400" })]) {
		t.Fatalf("after rewinddir: %d names, want %d with the renamed one's new name", len(now), inCur+1)
	}
}
