package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

// TestHostileBackend: odd file names, a symlink pointing outside the
// backend, broken MIME and a 100 MB message. vmfs lists what is mail,
// never follows the symlink, serves the right bytes, renames odd names
// correctly, and leaves the backend intact.
func TestHostileBackend(t *testing.T) {
	root := emptyBackend(t)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("Subject: secret\n\nnot mail of this backend\n"), 0o600)
	files := map[string]string{
		"cur/1.new\nline.host:2,":                                     "Subject: newline in the name\n\nx\n",
		"cur/2.\xff\xfe-invalid-utf8.host:2,":                         "Subject: invalid UTF-8 name\n\nx\n",
		"cur/3." + strings.Repeat("x", 249) + ":2,F" /* 255 bytes */ : "Subject: long name\n\nx\n",
		"cur/4.broken.host:2,":                                        "From: golang@x\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nunterminated",
		"cur/.hidden:2,":                                              "Subject: hidden\n\nx\n",
		"new/5.spaces and (parens).host":                              "Subject: spaces\n\nx\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(secret, filepath.Join(root, "cur", "6.symlink.host:2,"))
	// A 100 MB message (the header query reads only its header).
	big, err := os.Create(filepath.Join(root, "cur", "7.big.host:2,"))
	if err != nil {
		t.Fatal(err)
	}
	big.WriteString("From: golang@x\nSubject: big\n\n")
	io.CopyN(big, zeros{}, 100<<20)
	big.Close()

	cfg := configFile(t, "[folder.All]\nquery = \"ALL\"\n[folder.Go]\nquery = \"FROM golang\"\n")
	m := mount(t, root, "--config", cfg)
	all := append(names(t, m.path("All", "cur")), names(t, m.path("All", "new"))...)
	if len(all) != 6 {
		t.Fatalf("All lists %d messages, want 6 (no hidden file, no symlink): %q", len(all), all)
	}
	for _, n := range all {
		if _, err := maildir.ParseName(n); err != nil || strings.ContainsAny(n, "\n\xff") {
			t.Errorf("virtual name %q is not a clean Maildir name", n)
		}
	}
	// No listed file has the symlink target's bytes.
	for _, sub := range []string{"cur", "new"} {
		for _, n := range names(t, m.path("All", sub)) {
			if n == "" {
				continue
			}
			f, err := os.Open(m.path("All", sub, n))
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 64)
			k, _ := f.Read(head)
			f.Close()
			if bytes.Contains(head[:k], []byte("secret")) {
				t.Fatal("the symlink to a file outside the backend was followed")
			}
		}
	}
	if got := len(names(t, m.path("Go", "cur"))); got != 2 {
		t.Errorf("Go (FROM golang) has %d, want the broken-MIME and the 100 MB message", got)
	}
	// Rename the message whose backend name has a newline: flags change,
	// the odd base survives.
	for _, n := range names(t, m.path("All", "cur")) {
		p := m.path("All", "cur", n)
		b, _ := os.ReadFile(p)
		if !bytes.Contains(b, []byte("newline in the name")) {
			continue
		}
		if err := os.Rename(p, p+"S"); err != nil {
			t.Fatalf("rename: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "cur", "1.new\nline.host:2,S")); err != nil {
			t.Fatalf("backend not renamed: %v", err)
		}
	}
	// The backend is intact: same files but the one rename.
	if _, err := os.Lstat(filepath.Join(root, "cur", "6.symlink.host:2,")); err != nil {
		t.Error("symlink touched")
	}
	if _, err := os.Stat(filepath.Join(root, "cur", ".hidden:2,")); err != nil {
		t.Error("hidden file touched")
	}
	if fi, err := os.Stat(filepath.Join(root, "cur", "7.big.host:2,")); err != nil || fi.Size() < 100<<20 {
		t.Error("big message touched")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// TestFIFOsNeverBlock: a FIFO in cur/ or new/ — present at the cold index,
// created live, or put in place of a listed message — never blocks the
// daemon or a reader: it is skipped with a log line, and the rest of the
// folder keeps working.
func TestFIFOsNeverBlock(t *testing.T) {
	root := emptyBackend(t)
	quickDeliver(t, root, "From: golang@x\nSubject: one\n\nx\n")
	quickDeliver(t, root, "From: golang@x\nSubject: two\n\nx\n")
	if err := syscall.Mkfifo(filepath.Join(root, "cur", "1.fifo.host:2,"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := configFile(t, "[folder.All]\nquery = \"ALL\"\n[folder.Go]\nquery = \"FROM golang\"\n")
	m := mount(t, root, "--config", cfg)
	if got := names(t, m.path("Go", "new")); len(got) != 2 {
		t.Fatalf("Go/new = %q", got)
	}
	if !strings.Contains(m.stderr.String(), "1.fifo.host") {
		t.Errorf("the FIFO at the cold index was skipped without a word:\n%s", m.stderr)
	}
	// One created live.
	if err := syscall.Mkfifo(filepath.Join(root, "new", "2.fifo.host"), 0o644); err != nil {
		t.Fatal(err)
	}
	quickDeliver(t, root, "From: golang@x\nSubject: three\n\nx\n")
	eventually(t, 5*time.Second, func() string {
		if n := len(names(t, m.path("Go", "new"))); n != 3 {
			return fmt.Sprintf("Go/new has %d, want 3", n)
		}
		return ""
	})
	// One put in place of a listed message: opening it through the mount
	// fails at once instead of waiting for a writer.
	tmpFifo := filepath.Join(root, "tmp", "fifo")
	syscall.Mkfifo(tmpFifo, 0o644)
	var target string
	ents, _ := os.ReadDir(filepath.Join(root, "new"))
	for _, e := range ents {
		if e.Type().IsRegular() {
			target = filepath.Join(root, "new", e.Name())
		}
	}
	// Find which listed name shows target's bytes, then swap in the FIFO.
	want, _ := os.ReadFile(target)
	var listed string
	for _, n := range names(t, m.path("All", "new")) {
		if b, err := os.ReadFile(m.path("All", "new", n)); err == nil && string(b) == string(want) {
			listed = n
		}
	}
	if listed == "" {
		t.Fatal("no listed name for the target")
	}
	if err := os.Rename(tmpFifo, target); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(m.path("All", "new", listed))
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Unblock it so the test can unmount, then fail.
		if f, err := os.OpenFile(target, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("reading a message replaced by a FIFO blocked")
	}
	if got := names(t, m.path("Go", "new")); len(got) < 2 {
		t.Fatalf("the folder stopped working: Go/new = %q", got)
	}
}
