package maildir

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// ErrNoLetter is returned by AddKeyword when all 26 keyword letters of a
// map are taken (Dovecot keeps further keywords in its index only).
var ErrNoLetter = errors.New("no free keyword letter")

// LetterOf returns the letter a keyword map gives a keyword name (names
// compare case-insensitively, as IMAP keywords do), or 0.
func LetterOf(kw map[byte]string, name string) byte {
	for l, n := range kw {
		if strings.EqualFold(n, name) {
			return l
		}
	}
	return 0
}

// AddKeyword makes sure the dovecot-keywords file at path maps name to a
// letter, adding it under the first free one the way Dovecot does when it
// stores a new keyword (under Dovecot's lock file, path + ".lock"), and
// returns the letter and the map as it is now.
func AddKeyword(path, name string, owner *Owner) (byte, map[byte]string, error) {
	if name == "" || strings.ContainsAny(name, " \n\r\x00") {
		return 0, nil, fmt.Errorf("keyword %q: %w", name, ErrBadName)
	}
	lock := path + ".lock"
	var lf *os.File
	var err error
	for try := 0; try < 200; try++ { // Dovecot holds its dotlock for milliseconds
		lf, err = os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, os.ErrExist) {
			break
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > 2*time.Minute {
			os.Remove(lock) // stale, as Dovecot's dotlock rules judge it
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("lock %s: %w", lock, err)
	}
	defer func() {
		if lf != nil {
			lf.Close()
			os.Remove(lock)
		}
	}()
	kw, err := ReadKeywordsFile(path)
	if err != nil {
		return 0, nil, err
	}
	if l := LetterOf(kw, name); l != 0 {
		return l, kw, nil
	}
	var l byte
	for c := byte('a'); c <= 'z'; c++ {
		if _, taken := kw[c]; !taken {
			l = c
			break
		}
	}
	if l == 0 {
		return 0, kw, fmt.Errorf("%s: %s: %w", path, name, ErrNoLetter)
	}
	kw[l] = name
	letters := make([]byte, 0, len(kw))
	for c := range kw {
		letters = append(letters, c)
	}
	sort.Slice(letters, func(i, j int) bool { return letters[i] < letters[j] })
	var b strings.Builder
	for _, c := range letters {
		fmt.Fprintf(&b, "%d %s\n", c-'a', kw[c])
	}
	if _, err := lf.WriteString(b.String()); err != nil {
		return 0, nil, err
	}
	if err := owner.chown(lock); err != nil {
		return 0, nil, err
	}
	if err := lf.Sync(); err != nil {
		return 0, nil, err
	}
	if err := os.Rename(lock, path); err != nil {
		return 0, nil, err
	}
	lf.Close()
	lf = nil
	return l, kw, nil
}
