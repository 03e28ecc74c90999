package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/vsync"
)

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func pct(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkDeliveryLatency measures, with VMFS_BENCH_N messages indexed
// (default 20,000), the time from a backend delivery (rename tmp → new)
// or flag rename (new → cur with S) to the new virtual name answering
// stat() through the mount, over 1,000 events each, and the daemon's CPU
// time per event.
func BenchmarkDeliveryLatency(b *testing.B) {
	root := filepath.Join(b.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: benchN(), Mailboxes: 40, Seed: 9, Now: time.Now()}); err != nil {
		b.Fatal(err)
	}
	m := mountB(b, root, "-v")
	const events = 1000
	for i := 0; i < b.N; i++ {
		var deliver, rename []time.Duration
		cpu0 := cpuTicks(m.cmd.Process.Pid)
		for j := 0; j < events; j++ {
			name := fmt.Sprintf("%d.L%dP%d.bench", time.Now().Unix(), j+i*events, os.Getpid())
			vname := vsync.VirtualBase("INBOX", name)
			os.WriteFile(filepath.Join(root, "tmp", name), []byte("Subject: latency\n\nbody\n"), 0o600)
			t0 := time.Now()
			os.Rename(filepath.Join(root, "tmp", name), filepath.Join(root, "new", name))
			deliver = append(deliver, waitStat(b, m, m.path("Unread", "new", vname), t0))
			t0 = time.Now()
			os.Rename(filepath.Join(root, "new", name), filepath.Join(root, "cur", name+":2,S"))
			rename = append(rename, waitStat(b, m, m.path("Unread", "cur", vname+":2,S"), t0))
		}
		cpu := time.Duration(cpuTicks(m.cmd.Process.Pid)-cpu0) * 10 * time.Millisecond // USER_HZ = 100
		b.ReportMetric(float64(pct(deliver, 0.5).Microseconds())/1000, "deliver-p50-ms")
		b.ReportMetric(float64(pct(deliver, 0.99).Microseconds())/1000, "deliver-p99-ms")
		b.ReportMetric(float64(pct(rename, 0.5).Microseconds())/1000, "rename-p50-ms")
		b.ReportMetric(float64(pct(rename, 0.99).Microseconds())/1000, "rename-p99-ms")
		b.ReportMetric(float64(cpu.Microseconds())/1000/(2*events), "cpu-ms/event")
	}
}

func waitStat(b *testing.B, m *mounted, p string, t0 time.Time) time.Duration {
	for {
		if _, err := os.Stat(p); err == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > 10*time.Second {
			ents, _ := os.ReadDir(filepath.Dir(p))
			listed := false
			for _, e := range ents {
				listed = listed || e.Name() == filepath.Base(p)
			}
			_, err := os.Stat(p)
			os.WriteFile("/tmp/vmfs-lat-stderr.log", m.stderr.Bytes(), 0o644)
			var log []string
			for _, l := range strings.Split(m.stderr.String(), "\n") {
				if strings.Contains(l, "file changed") && len(log) < 1000 {
					log = append(log, l)
				}
			}
			if len(log) > 12 {
				log = log[len(log)-12:]
			}
			b.Fatalf("%s not visible after 10 s (listed: %v of %d; stat now: %v)\n%s", p, listed, len(ents), err, strings.Join(log, "\n"))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkLookupDuringSearch measures the latency of FUSE LOOKUP and
// READDIR (a stat of a message and a listing of Unread, each through the
// kernel with nothing cached: the mount runs with zero entry timeouts for
// folders, and each stat names a message not looked up before) while the
// engine builds a search folder that reads every message: `mkdir` of
// VMFS_BENCH_QUERY (default `BODY zzyzx`, matching nothing) at the mount
// root, with VMFS_BENCH_N messages indexed (default 20,000). It reports
// p50/p99 of each and how long the mkdir took.
func BenchmarkLookupDuringSearch(b *testing.B) {
	root := filepath.Join(b.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: benchN(), Mailboxes: 40, Seed: 9, Now: time.Now()}); err != nil {
		b.Fatal(err)
	}
	q := os.Getenv("VMFS_BENCH_QUERY")
	if q == "" {
		q = "BODY zzyzx"
	}
	m := mountB(b, root)
	var names []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(m.path("Unread", sub))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range ents {
			names = append(names, filepath.Join(sub, e.Name()))
		}
	}
	for i := 0; i < b.N; i++ {
		exec.Command("sh", "-c", "echo 3 > /proc/sys/vm/drop_caches").Run()
		dir := m.path(q + strings.Repeat(" ALL", i)) // a new folder each time
		done := make(chan time.Duration)
		go func() {
			t0 := time.Now()
			if err := os.Mkdir(dir, 0o700); err != nil {
				b.Error(err)
			}
			done <- time.Since(t0)
		}()
		var lookup, readdir []time.Duration
		var took time.Duration
		for j := 0; ; j++ {
			select {
			case took = <-done:
			default:
			}
			if took != 0 {
				break
			}
			t0 := time.Now()
			os.Stat(m.path("Unread", names[j%len(names)]))
			lookup = append(lookup, time.Since(t0))
			if j%10 == 0 {
				t0 = time.Now()
				os.ReadDir(m.path("Unread", "new"))
				readdir = append(readdir, time.Since(t0))
			}
		}
		b.ReportMetric(took.Seconds(), "mkdir-s")
		b.ReportMetric(float64(pct(lookup, 0.5).Microseconds())/1000, "lookup-p50-ms")
		b.ReportMetric(float64(pct(lookup, 0.99).Microseconds())/1000, "lookup-p99-ms")
		b.ReportMetric(float64(pct(readdir, 0.5).Microseconds())/1000, "readdir-p50-ms")
		b.ReportMetric(float64(pct(readdir, 0.99).Microseconds())/1000, "readdir-p99-ms")
		b.ReportMetric(float64(pct(lookup, 1).Microseconds())/1000, "lookup-max-ms")
		b.ReportMetric(float64(len(lookup)), "lookups")
		os.Remove(dir)
	}
}
