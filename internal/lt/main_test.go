package lt

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"vmfs/vsync"
)

func TestWarm(t *testing.T) {
	dirs, _ := filepath.Glob("/tmp/m100k/st/*/index")
	f, _ := os.Create("/tmp/warm3.prof")
	pprof.StartCPUProfile(f)
	t0 := time.Now()
	e, err := vsync.Open(dirs[0], vsync.Config{Root: "/tmp/m100k/mail", Folders: vsync.DefaultFolders()})
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	e.Sync(context.Background())
	t2 := time.Now()
	l, _ := e.List("Unread")
	t3 := time.Now()
	pprof.StopCPUProfile()
	t.Logf("open %v sync %v list %v (%d)", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), len(l))
	e.Close()
}
