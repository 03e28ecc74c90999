package vsync

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

// benchN is the corpus size: VMFS_BENCH_N (default 20,000; the SPEC §10
// figures use 100000).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("VMFS_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 20000
}

var (
	benchOnce sync.Once
	benchRoot string
)

// benchCorpus is generated once per process, in a directory that is
// removed when the process ends... or reused via VMFS_BENCH_DIR.
func benchCorpus(b *testing.B) string {
	benchOnce.Do(func() {
		dir := os.Getenv("VMFS_BENCH_DIR")
		if dir == "" {
			dir, _ = os.MkdirTemp("", "vmfs-bench")
		}
		benchRoot = filepath.Join(dir, "mail-"+strconv.Itoa(benchN()))
		if _, err := os.Stat(benchRoot); err == nil {
			return
		}
		if _, err := corpus.Generate(benchRoot, corpus.Options{Messages: benchN(), Mailboxes: 40, Seed: 1, Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
	})
	return benchRoot
}

var benchFolders = []Folder{
	{Name: "Unread", Mailboxes: []string{"*", "-Trash", "-Junk"}, Query: "UNSEEN"},
	{Name: "Flagged", Mailboxes: []string{"*", "-Trash", "-Junk"}, Query: "FLAGGED"},
	{Name: "Go", Mailboxes: []string{"*"}, Query: `OR HEADER List-Id golang FROM müller`},
}

// BenchmarkPlainRead reads every message's first 8 KiB: the floor that a
// header index cannot beat.
func BenchmarkPlainRead(b *testing.B) {
	root := benchCorpus(b)
	tr, _ := maildir.Discover(root)
	buf := make([]byte, 8<<10)
	for i := 0; i < b.N; i++ {
		n := 0
		for _, mb := range tr.Mailboxes {
			ents, _ := maildir.List(mb.Path)
			for _, e := range ents {
				sub := map[bool]string{true: "new", false: "cur"}[e.New]
				f, err := os.Open(filepath.Join(mb.Path, sub, e.Name))
				if err != nil {
					b.Fatal(err)
				}
				io.ReadFull(f, buf)
				f.Close()
				n++
			}
		}
		b.ReportMetric(float64(n), "msgs")
	}
}

func BenchmarkColdIndex(b *testing.B) {
	root := benchCorpus(b)
	for i := 0; i < b.N; i++ {
		state := b.TempDir()
		e, err := Open(state, Config{Root: root, Folders: benchFolders})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
}

func BenchmarkWarmStart(b *testing.B) {
	root := benchCorpus(b)
	state := b.TempDir()
	e, err := Open(state, Config{Root: root, Folders: benchFolders})
	if err != nil {
		b.Fatal(err)
	}
	e.Sync(context.Background())
	e.Close()
	time.Sleep(settleTime) // let the directories' mtimes settle
	e, _ = Open(state, Config{Root: root, Folders: benchFolders})
	e.Sync(context.Background())
	e.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := Open(state, Config{Root: root, Folders: benchFolders})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		if l, _ := e.List("Unread"); len(l) == 0 {
			b.Fatal("empty Unread")
		}
		e.Close()
	}
}

// benchIncremental times sync after one delivery into INBOX of the
// indexed corpus; the delivery itself is not timed.
func benchIncremental(b *testing.B, sync func(e *Engine, root, rel string) error) {
	root := benchCorpus(b)
	e, err := Open(b.TempDir(), Config{Root: root, Folders: benchFolders})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	e.Sync(context.Background())
	var delivered []string
	defer func() {
		for _, p := range delivered {
			os.Remove(p)
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rel, err := maildir.Deliver(root, strings.NewReader("From: golang@x\nSubject: new\n\nbody\n"), "", false)
		if err != nil {
			b.Fatal(err)
		}
		delivered = append(delivered, filepath.Join(root, rel))
		b.StartTimer()
		if err := sync(e, root, rel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncrementalOneDelivery lists the whole mailbox again.
func BenchmarkIncrementalOneDelivery(b *testing.B) {
	benchIncremental(b, func(e *Engine, root, rel string) error {
		return e.MailboxChanged(context.Background(), maildir.Inbox)
	})
}

// BenchmarkIncrementalOneFile is the watcher's path: one delivered file
// named by its event, no directory listed.
func BenchmarkIncrementalOneFile(b *testing.B) {
	benchIncremental(b, func(e *Engine, root, rel string) error {
		return e.FilesChanged(context.Background(), map[string][]string{root: {rel}})
	})
}
