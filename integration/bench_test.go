package integration

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"vmfs/internal/corpus"
)

// benchN is the message count for the listing benchmark: VMFS_BENCH_N
// (default 20,000; SPEC §10 quotes 100,000).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("VMFS_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 20000
}

func allConfig(b *testing.B) string {
	cfg := filepath.Join(b.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("[folder.All]\nmailboxes = [\"*\"]\nquery = \"ALL\"\n"), 0o644)
	return cfg
}

// BenchmarkLsF compares `ls -f` of a virtual folder's cur/ with `ls -f` of
// a real directory holding the same number of files. Ratio = Mount/Real.
func BenchmarkLsF(b *testing.B) {
	n := benchN()
	root := filepath.Join(b.TempDir(), "mail")
	msgs, err := corpus.Generate(root, corpus.Options{Messages: n, Mailboxes: 1, Seed: 2, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	cur := 0
	for _, m := range msgs {
		if !m.New {
			cur++
		}
	}
	real := b.TempDir()
	for i := 0; i < cur; i++ {
		os.WriteFile(filepath.Join(real, fmt.Sprintf("%d.M%dP1.host,S=1000:2,S", 1700000000+i, i)), nil, 0o600)
	}
	m := mountB(b, root, "--config", allConfig(b))
	run := func(b *testing.B, dir string) {
		for i := 0; i < b.N; i++ {
			out, err := exec.Command("ls", "-f", dir).Output()
			if err != nil {
				b.Fatal(err)
			}
			if got := bytes.Count(out, []byte("\n")); got != cur+2 {
				b.Fatalf("ls -f %s: %d lines, want %d", dir, got, cur+2)
			}
		}
	}
	b.Run("Real", func(b *testing.B) { run(b, real) })
	b.Run("Mount", func(b *testing.B) { run(b, m.path("All", "cur")) })
}

// BenchmarkRead10MB compares reading 10 MB messages through the mount
// with reading the backend files directly (warm page cache).
func BenchmarkRead10MB(b *testing.B) {
	root := filepath.Join(b.TempDir(), "mail")
	for _, s := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, s), 0o755)
	}
	body := make([]byte, 10<<20)
	rand.Read(body)
	var paths []string
	for i := 0; i < 8; i++ {
		p := filepath.Join(root, "cur", fmt.Sprintf("%d.big%d.host:2,", 1700000000+i, i))
		os.WriteFile(p, append([]byte("Subject: big\n\n"), body...), 0o600)
		paths = append(paths, p)
	}
	m := mountB(b, root, "--config", allConfig(b))
	mounted, _ := filepath.Glob(m.path("All", "cur", "*"))
	if len(mounted) != len(paths) {
		b.Fatalf("mount lists %d of %d", len(mounted), len(paths))
	}
	read := func(b *testing.B, ps []string) {
		b.SetBytes(int64(len(body)))
		buf := make([]byte, 1<<20)
		for i := 0; i < b.N; i++ {
			f, err := os.Open(ps[i%len(ps)])
			if err != nil {
				b.Fatal(err)
			}
			io.CopyBuffer(io.Discard, f, buf)
			f.Close()
		}
	}
	b.Run("Direct", func(b *testing.B) { read(b, paths) })
	b.Run("Mount", func(b *testing.B) { read(b, mounted) })
}
