package message

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vmfs/internal/maildir"
	"vmfs/internal/query"
)

// Open opens a backend message file read-only, never following a symbolic
// link and never blocking (see maildir.OpenRegular).
func Open(path string) (*os.File, error) {
	fd, err := maildir.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// fdReader reads a descriptor.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// readers recycles the header readers of Load: one 8 KiB buffer per
// message would dominate a cold index's allocations.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

// Load reads what needs asks for from the message file at path into a
// query.Msg, with the file's size and mtime. Only the header block is read
// unless the query needs body text; then Msg.Text opens the file again when
// called. Mailbox, Flags, Keywords and Recent are the caller's to set.
func Load(path string, needs query.Needs) (*query.Msg, error) {
	if needs.FlagsOnly() && !needs.AllHeaders && !needs.Body {
		// Size and mtime only: one lstat, no open.
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", path)
		}
		return &query.Msg{Received: fi.ModTime(), Size: fi.Size()}, nil
	}
	// The file is read through its descriptor, not an *os.File (which
	// would try to register it with the poller and stat it again), with
	// read-ahead off: only the header block is wanted, and the kernel
	// would otherwise read 32 KiB or more of every big message.
	fd, st, err := maildir.OpenRegularStat(path)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM) // a hint: its failure changes nothing
	m := &query.Msg{Received: time.Unix(st.Mtim.Unix()), Size: st.Size}
	br := readers.Get().(*bufio.Reader)
	br.Reset(fdReader(fd))
	var keep []string // nil: every field
	if !needs.AllHeaders {
		keep = append([]string{}, needs.Headers...)
		if needs.Sent {
			keep = append(keep, "date")
		}
		if needs.Threads {
			keep = append(keep, "message-id", "in-reply-to", "references")
		}
	}
	h, err := ReadHeaderOnly(br, keep)
	br.Reset(nil)
	readers.Put(br)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	Fill(m, h, needs)
	if needs.Body || needs.AllHeaders {
		m.Text = func(headers bool, fn func(string) bool) error { return TextOf(path, headers, fn) }
	}
	return m, nil
}

// Fill sets the header-derived fields of m that needs asks for.
func Fill(m *query.Msg, h Header, needs query.Needs) {
	if len(needs.Headers) > 0 {
		m.Headers = make(map[string][]string, len(needs.Headers))
		for _, name := range needs.Headers {
			if vs := h.Values(name); vs != nil {
				m.Headers[name] = vs
			}
		}
	}
	if needs.Sent {
		if raw := h.Raw("date"); len(raw) > 0 {
			if t, ok := ParseDate(raw[0]); ok {
				m.Sent = t
			}
		}
	}
	if needs.Threads {
		if raw := h.Raw("message-id"); len(raw) > 0 {
			if ids := MessageIDs(raw[0]); len(ids) > 0 {
				m.ID = ids[0]
			}
		}
		for _, name := range []string{"in-reply-to", "references"} {
			for _, raw := range h.Raw(name) {
				m.References = append(m.References, MessageIDs(raw)...)
			}
		}
	}
}

// TextOf streams a message file's decoded text: the header fields as
// "name: value" lines (when headers is true), then the body's text parts.
// fn must not keep what it is given (see WalkText).
func TextOf(path string, headers bool, fn func(string) bool) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return Text(f, headers, fn)
}

// textReaders are the buffered readers Text reads messages through, reused:
// a BODY search reads every message, and a new 32 KiB buffer each time was
// a quarter of what it allocated.
var textReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// Text is TextOf on a reader.
func Text(r io.Reader, headers bool, fn func(string) bool) error {
	br := textReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); textReaders.Put(br) }()
	h, err := ReadHeader(br)
	if err != nil {
		return err
	}
	if headers {
		for _, f := range h {
			if fn(f.Name + ": " + Decode(f.Value) + "\n") {
				return nil
			}
		}
	}
	return WalkText(h, br, fn)
}
