package message

import (
	"bufio"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charsets for text parts
	"github.com/emersion/go-message/textproto"
)

// mime converts a Header for go-message. Its Get returns the field added
// last, so fields are added in reverse to make the first one win, as in
// Dovecot.
func (h Header) mime() gomessage.Header {
	var th textproto.Header
	for i := len(h) - 1; i >= 0; i-- {
		th.Add(h[i].Name, h[i].Value)
	}
	return gomessage.Header{Header: th}
}

// maxDepth bounds MIME nesting; deeper parts are skipped.
const maxDepth = 32

// chunkSize is how much decoded text WalkText hands over at a time.
const chunkSize = 32 << 10

// WalkText streams the decoded text of a message's body to fn, part by
// part: text/* parts (and a body without Content-Type), transfer encoding
// and charset decoded, nested multiparts and message/rfc822 followed.
// Other parts (attachments, images) are skipped. fn gets chunks of at most
// 32 KiB, each starting at a part or a previous chunk's end; a new part
// starts with a "\n" so that text of two parts never runs together. fn
// returns true to stop; a chunk is valid only during the call (it may be
// a view of a buffer that is reused). h is the message's already-read top-level header
// and r is positioned at the body. Broken MIME ends the walk quietly with
// whatever was decoded so far.
func WalkText(h Header, r io.Reader, fn func(text string) (stop bool)) error {
	e, err := gomessage.New(h.mime(), r)
	if e == nil {
		return nil // unparseable: nothing to search, not an error
	}
	_ = err // an unknown charset or encoding: the body is walked raw
	buf := chunks.Get().(*[]byte)
	defer chunks.Put(buf)
	w := walker{fn: fn, buf: *buf}
	w.entity(e, 0)
	return w.ioErr
}

// chunks are WalkText's chunk buffers, reused from one message to the next.
var chunks = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

type walker struct {
	fn    func(string) bool
	buf   []byte
	stop  bool
	ioErr error
}

func (w *walker) entity(e *gomessage.Entity, depth int) {
	if w.stop || depth > maxDepth {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for !w.stop {
			p, err := mr.NextPart()
			if err != nil {
				return // io.EOF, or broken MIME: keep what we have
			}
			w.entity(p, depth+1)
		}
		return
	}
	t, _, err := e.Header.ContentType()
	if err != nil && e.Header.Get("Content-Type") != "" {
		t = "text/plain" // an unparseable type: search it like Dovecot's default
	}
	switch {
	case t == "" || strings.HasPrefix(t, "text/"):
		w.text(e.Body)
	case t == "message/rfc822" || t == "message/global":
		br := bufio.NewReader(e.Body)
		sub, err := ReadHeader(br)
		if err != nil {
			return
		}
		// The embedded message's header is text of the outer body.
		for _, f := range sub {
			if w.send("\n" + f.Name + ": " + Decode(f.Value)) {
				return
			}
		}
		inner, _ := gomessage.New(sub.mime(), br)
		if inner != nil {
			w.entity(inner, depth+1)
		}
	}
}

func (w *walker) send(s string) bool {
	if w.fn(s) {
		w.stop = true
	}
	return w.stop
}

func (w *walker) text(r io.Reader) {
	if w.send("\n") {
		return
	}
	var carry []byte // an incomplete UTF-8 sequence at a chunk's end
	for !w.stop {
		n := copy(w.buf, carry)
		m, err := r.Read(w.buf[n:])
		n += m
		chunk := w.buf[:n]
		cut := validPrefix(chunk)
		carry = append(carry[:0], chunk[cut:]...)
		if cut > 0 {
			if valid := chunk[:cut]; utf8.Valid(valid) {
				// A view of the buffer, not a copy: fn gets it only for
				// the call (see WalkText).
				w.send(unsafe.String(&valid[0], len(valid)))
			} else {
				w.send(strings.ToValidUTF8(string(valid), "\uFFFD"))
			}
		}
		if err != nil {
			if len(carry) > 0 && !w.stop {
				w.send("\uFFFD")
			}
			return // io.EOF or a decoding error: the part ends here
		}
	}
}

// validPrefix returns how much of b can be converted without splitting a
// UTF-8 sequence that continues in the next read.
func validPrefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		c := b[i]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 { // a lead byte: is its sequence complete?
			need := 2
			if c >= 0xE0 {
				need = 3
			}
			if c >= 0xF0 {
				need = 4
			}
			if len(b)-i < need {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
