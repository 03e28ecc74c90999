// Package message extracts from a message file what vmfs queries need:
// header fields decoded to UTF-8 (RFC 2047 encoded words, charsets, folded
// lines), the Date, the thread references, and the decoded text of the
// body's text parts. It never fails on malformed input: a message without a
// header/body separator, binary junk, raw 8-bit headers, broken MIME or
// enormous lines yield best-effort results with bounded memory.
package message

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// Limits that keep memory bounded whatever a message holds.
const (
	// MaxHeader is the most of a header block that is kept; the rest of a
	// larger header block is read past and ignored.
	MaxHeader = 1 << 20
	// MaxField is the most of one header field that is kept.
	MaxField = 64 << 10
)

// Field is one header field: its name in lower case and its raw value with
// folding removed (CRLF/LF before continuation lines dropped).
type Field struct {
	Name  string
	Value string
}

// Header is a message's header block in file order.
type Header []Field

// ReadHeader reads the header block from r, up to and including the empty
// line that ends it (or EOF: a message without a separator is all header).
// Lines that are not fields are skipped. It fails only on I/O errors; r is
// left positioned at the body.
func ReadHeader(r *bufio.Reader) (Header, error) { return ReadHeaderOnly(r, nil) }

// ReadHeaderOnly is ReadHeader keeping only the fields whose names (in
// lower case) are in want; nil keeps every field. Fields it does not keep
// cost no allocation.
func ReadHeaderOnly(r *bufio.Reader, want []string) (Header, error) {
	var h Header
	cur := make([]byte, 0, 256) // the current field, unfolded
	have := false
	total := 0
	flush := func() {
		if !have {
			return
		}
		have = false
		name, val, ok := bytes.Cut(cur, []byte(":"))
		if !ok || len(name) == 0 || !validName(name) {
			return
		}
		if want != nil && !wanted(name, want) {
			return
		}
		h = append(h, Field{Name: strings.ToLower(string(name)), Value: string(bytes.TrimSpace(val))})
	}
	for {
		line, err := readLine(r, MaxField)
		if len(line) == 0 && err != nil {
			flush()
			if err == io.EOF {
				return h, nil
			}
			return h, err
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 && len(line) > 0 { // the empty separator line
			flush()
			return h, nil
		}
		total += len(line)
		if total > MaxHeader {
			continue // keep reading to find the body, keep nothing more
		}
		if (trimmed[0] == ' ' || trimmed[0] == '\t') && have {
			if len(cur) < MaxField {
				cur = append(cur, trimmed...)
			}
		} else {
			flush()
			cur = append(cur[:0], trimmed...)
			have = true
		}
		if err != nil {
			flush()
			if err == io.EOF {
				return h, nil
			}
			return h, err
		}
	}
}

func wanted(name []byte, want []string) bool {
	for _, w := range want {
		if len(w) == len(name) && bytes.EqualFold(name, []byte(w)) {
			return true
		}
	}
	return false
}

// readLine returns one line including its '\n' (without one at EOF),
// truncated to max bytes; the rest of a longer line is consumed. The line
// is only valid until the next read from r.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	chunk, err := r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		if len(chunk) > max {
			chunk = append(chunk[:max:max], '\n')
		}
		return chunk, err // the common case: no copy
	}
	line := append([]byte(nil), chunk...)
	for err == bufio.ErrBufferFull {
		chunk, err = r.ReadSlice('\n')
		if len(line)+len(chunk) <= max {
			line = append(line, chunk...)
		} else if len(line) < max {
			line = append(line, chunk[:max-len(line)]...)
		}
	}
	if err == nil && len(line) > 0 && line[len(line)-1] != '\n' {
		line = append(line, '\n') // truncated line: keep it a line
	}
	return line, err
}

func validName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Raw returns the raw (undecoded) values of the named field.
func (h Header) Raw(name string) []string {
	name = strings.ToLower(name)
	var out []string
	for _, f := range h {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// Has reports whether the header has a field of that name.
func (h Header) Has(name string) bool {
	name = strings.ToLower(name)
	for _, f := range h {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Values returns the decoded values of the named field, one per occurrence.
func (h Header) Values(name string) []string {
	var out []string
	for _, v := range h.Raw(name) {
		out = append(out, Decode(v))
	}
	return out
}

var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// Decode decodes RFC 2047 encoded words of a raw header value to UTF-8.
// Bytes that are not UTF-8 (raw 8-bit headers) become U+FFFD; encoded words
// in unknown charsets are left as they are.
func Decode(raw string) string {
	s := raw
	if strings.Contains(raw, "=?") {
		if d, err := wordDecoder.DecodeHeader(raw); err == nil {
			s = d
		} else {
			s = decodeWords(raw)
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// decodeWords decodes the encoded words it can, one by one, when the header
// as a whole could not be decoded (an unknown charset in one word, say).
func decodeWords(raw string) string {
	fields := strings.Fields(raw)
	var b strings.Builder
	prevEncoded := false
	for i, f := range fields {
		d, err := wordDecoder.Decode(f)
		enc := err == nil
		if !enc {
			d = f
		}
		if i > 0 && !(enc && prevEncoded) {
			b.WriteByte(' ')
		}
		b.WriteString(d)
		prevEncoded = enc
	}
	return b.String()
}

// MessageIDs returns the message ids ("<…>" stripped) found in a
// Message-ID, In-Reply-To or References value, in order. Text that is not
// an id (In-Reply-To often holds a phrase too) is ignored.
func MessageIDs(raw string) []string {
	var ids []string
	for {
		i := strings.IndexByte(raw, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(raw[i:], '>')
		if j < 0 {
			return ids
		}
		id := strings.TrimSpace(raw[i+1 : i+j])
		if id != "" && !strings.ContainsAny(id, " \t<") {
			ids = append(ids, id)
		}
		raw = raw[i+j+1:]
	}
}
