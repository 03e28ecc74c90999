// Package maildir owns everything vmfs knows about Maildir on disk: message
// file names (base, ":2," info, flags, ",S=" / ",W=" / ",U=" fields),
// mailbox discovery in the Maildir++ and nested layouts, and read-only
// listing of a mailbox's messages. Nothing in this package ever modifies a
// backend Maildir.
package maildir

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// ErrBadName is wrapped by every error ParseName returns; it wraps
// fs.ErrInvalid.
var ErrBadName = fmt.Errorf("not a Maildir message name: %w", fs.ErrInvalid)

// Name is a parsed Maildir message file name: Base + ":2," + Flags + Extra.
//
// Base is the unique part up to the info (it keeps mbsync's ",U=" and
// Dovecot's ",S=" / ",W=" fields). Flags holds the flag letters after ":2,"
// in ASCII order without duplicates: standard flags (D F P R S T), Dovecot
// keyword letters (a-z) and any other letter, all preserved. Extra is
// whatever followed the flags after a comma, kept verbatim including the
// comma. HasInfo reports whether the name had a ":2," part at all (files in
// new/ usually do not).
type Name struct {
	Base    string
	Flags   string
	Extra   string
	HasInfo bool
}

// ParseName splits a message file name. It rejects names that cannot be a
// Maildir message: empty, starting with '.', containing '/' or NUL, or
// with an info part of another version than "2" (":1,..." is experimental
// and never written by real clients).
func ParseName(s string) (Name, error) {
	if s == "" || s[0] == '.' || strings.IndexByte(s, '/') >= 0 || strings.IndexByte(s, 0) >= 0 {
		return Name{}, fmt.Errorf("%w: %q", ErrBadName, s)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Name{Base: s}, nil
	}
	base, info := s[:i], s[i+1:]
	if base == "" || strings.IndexByte(base, ':') >= 0 {
		return Name{}, fmt.Errorf("%w: %q has more than one ':'", ErrBadName, s)
	}
	if !strings.HasPrefix(info, "2,") {
		return Name{}, fmt.Errorf("%w: %q has an info part that is not \":2,\"", ErrBadName, s)
	}
	flags, extra := info[2:], ""
	if j := strings.IndexByte(flags, ','); j >= 0 {
		flags, extra = flags[:j], flags[j:]
	}
	return Name{Base: base, Flags: NormFlags(flags), Extra: extra, HasInfo: true}, nil
}

// String formats the name. A name with flags or extra data always gets an
// info part; one without keeps the form it was parsed from.
func (n Name) String() string {
	if !n.HasInfo && n.Flags == "" && n.Extra == "" {
		return n.Base
	}
	return n.Base + ":2," + NormFlags(n.Flags) + n.Extra
}

// BaseOf returns the base name of a message file name (up to ":2,"), or the
// whole name when it has no info part. It never fails; it is what the index
// uses to find a message again after a rename.
func BaseOf(s string) string {
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		return s[:i]
	}
	return s
}

// NormFlags returns the flag letters of s in ASCII order, each once.
// Only ',' (it starts the extra part), ':' , '/', spaces and control or
// non-ASCII bytes are dropped: they cannot be flags, and keeping them would
// break the name. Every other character is an unknown flag and is kept.
func NormFlags(s string) string {
	sorted := true // the common case: already normal, returned without a copy
	for i := 0; i < len(s) && sorted; i++ {
		sorted = isFlagChar(s[i]) && (i == 0 || s[i] > s[i-1])
	}
	if sorted {
		return s
	}
	var seen [128]bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 128 && isFlagChar(c) {
			seen[c] = true
		}
	}
	var b strings.Builder
	for c := 0; c < 128; c++ {
		if seen[c] {
			b.WriteByte(byte(c))
		}
	}
	return b.String()
}

func isFlagChar(c byte) bool {
	return c > ' ' && c < 0x7f && c != ',' && c != ':' && c != '/'
}

// HasFlag reports whether the flag letter f is in flags.
func HasFlag(flags string, f byte) bool { return strings.IndexByte(flags, f) >= 0 }

// SetFlags returns flags with add added and del removed, normalised.
func SetFlags(flags, add, del string) string {
	var out []byte
	for i := 0; i < len(flags); i++ {
		if strings.IndexByte(del, flags[i]) < 0 {
			out = append(out, flags[i])
		}
	}
	return NormFlags(string(out) + add)
}

// Field returns the value of a ",K=value" field of a base name (Dovecot's
// ",S=" and ",W=", mbsync's ",U="), and whether it was present.
func Field(base string, key byte) (string, bool) {
	for _, part := range strings.Split(base, ",")[1:] {
		if len(part) >= 2 && part[0] == key && part[1] == '=' {
			return part[2:], true
		}
	}
	return "", false
}

// Size returns the ",S=" size of a base name, or -1.
func Size(base string) int64 { return intField(base, 'S') }

// VSize returns the ",W=" size (with CRLF line ends) of a base name, or -1.
func VSize(base string) int64 { return intField(base, 'W') }

func intField(base string, key byte) int64 {
	v, ok := Field(base, key)
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Standard Maildir flag letters.
const (
	FlagDraft   = 'D'
	FlagFlagged = 'F'
	FlagPassed  = 'P'
	FlagReplied = 'R'
	FlagSeen    = 'S'
	FlagTrashed = 'T'
)

// KeywordLetters returns the Dovecot keyword letters (a-z) among flags.
func KeywordLetters(flags string) []byte {
	var ks []byte
	for i := 0; i < len(flags); i++ {
		if flags[i] >= 'a' && flags[i] <= 'z' {
			ks = append(ks, flags[i])
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}
