package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

// TestCompare measures SPEC §10's table side by side with Dovecot's
// virtual plugin, notmuch and mairix on one generated corpus, as medians of
// VMFS_COMPARE_RUNS runs (default 3), and prints it:
//
//	VMFS_COMPARE=1 VMFS_BENCH_N=100000 go test ./integration -run Compare -v -timeout 6h
//
// It installs notmuch and mairix with apt-get when they are missing, and
// drops the page cache before every cold measurement (root only).
func TestCompare(t *testing.T) {
	if os.Getenv("VMFS_COMPARE") == "" {
		t.Skip("VMFS_COMPARE=1 runs the comparison")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (page cache drops, Dovecot as uid 65534)")
	}
	for _, tool := range []string{"notmuch", "mairix"} {
		if _, err := exec.LookPath(tool); err != nil {
			if out, err := exec.Command("apt-get", "install", "-y", "-q", tool).CombinedOutput(); err != nil {
				t.Fatalf("apt-get install %s: %v %s", tool, err, out)
			}
		}
	}
	n, runs := benchN(), 3
	if v, err := strconv.Atoi(os.Getenv("VMFS_COMPARE_RUNS")); err == nil && v > 0 {
		runs = v
	}
	top := t.TempDir()
	os.Chmod(top, 0o755)
	os.Chmod(filepath.Dir(top), 0o755)
	root := filepath.Join(top, "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: n, Mailboxes: 40, Seed: 1, Now: time.Now(), BodyScale: 8}); err != nil {
		t.Fatal(err)
	}
	exec.Command("chown", "-R", "65534:65534", root).Run()
	unseen := len(unreadTruth(t, root))
	var size int64
	for _, b := range backend(t, root) {
		if fi, err := os.Stat(b.Path); err == nil {
			size += fi.Size()
		}
	}
	t.Logf("corpus: %d messages, %d MB, %d unseen outside Trash/Junk", n, size>>20, unseen)

	drop := func() {
		exec.Command("sync").Run()
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o644)
	}
	median := func(f func() time.Duration) time.Duration {
		var ds []time.Duration
		for i := 0; i < runs; i++ {
			ds = append(ds, f())
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	type row struct {
		what   string
		vmfs   time.Duration
		others map[string]time.Duration
	}
	var rows []row

	// vmfs: a fresh state each cold run; time until Unread lists completely.
	cfgHeader := filepath.Join(top, "header.toml")
	os.WriteFile(cfgHeader, []byte("[folder.Muller]\nquery = 'FROM \"müller\"'\n"), 0o644)
	var lastState string
	vmfsCold := func(cfg, folder string, want int) time.Duration {
		drop()
		state := filepath.Join(top, fmt.Sprintf("state-%d", time.Now().UnixNano()))
		lastState = state
		mnt := t.TempDir()
		args := []string{"mount", "--state", state}
		if cfg != "" {
			args = append(args, "--config", cfg)
		}
		start := time.Now()
		cmd := exec.Command(vmfsBin, append(args, root, mnt)...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+top)
		cmd.Start()
		for {
			a, _ := os.ReadDir(filepath.Join(mnt, folder, "cur"))
			b, _ := os.ReadDir(filepath.Join(mnt, folder, "new"))
			if want < 0 && (len(a)+len(b) > 0) || len(a)+len(b) == want {
				break
			}
			if time.Since(start) > 30*time.Minute {
				t.Fatal("vmfs never listed the folder")
			}
			time.Sleep(2 * time.Millisecond)
		}
		d := time.Since(start)
		exec.Command("fusermount3", "-u", mnt).Run()
		cmd.Wait()
		return d
	}

	// Dovecot's virtual plugin through doveadm, with fresh indexes per cold run.
	vdir := filepath.Join(top, "virtual")
	os.MkdirAll(filepath.Join(vdir, "Unread"), 0o755)
	os.MkdirAll(filepath.Join(vdir, "Muller"), 0o755)
	os.WriteFile(filepath.Join(vdir, "Unread", "dovecot-virtual"), []byte("-Trash\n-Junk\n-Spam\n*\n  unseen\n"), 0o644)
	os.WriteFile(filepath.Join(vdir, "Muller", "dovecot-virtual"), []byte("*\n  from \"müller\"\n"), 0o644)
	exec.Command("chown", "-R", "65534:65534", vdir).Run()
	dovecotState := ""
	newDovecot := func() {
		dovecotState = filepath.Join(top, fmt.Sprintf("dovecot-%d", time.Now().UnixNano()))
		writeVirtualDovecotConf(root, dovecotState, vdir)
		exec.Command("chown", "-R", "65534:65534", dovecotState).Run()
	}
	doveStatus := func(box string) time.Duration {
		cmd := exec.Command("doveadm", "-c", filepath.Join(dovecotState, "dovecot.conf"), "mailbox", "status", "messages", box)
		cmd.Env = append(os.Environ(), "USER=nobody", "HOME="+filepath.Join(dovecotState, "home"))
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("doveadm: %v %s", err, out)
		}
		return time.Since(start)
	}
	doveCold := func(box string) time.Duration { newDovecot(); drop(); return doveStatus(box) }

	// notmuch and mairix: fresh databases per cold run.
	notmuch := func() time.Duration {
		db := filepath.Join(top, fmt.Sprintf("notmuch-%d", time.Now().UnixNano()))
		os.MkdirAll(db, 0o755)
		cfg := filepath.Join(db, "config")
		os.WriteFile(cfg, []byte(fmt.Sprintf("[database]\npath=%s\nmail_root=%s\n[maildir]\nsynchronize_flags=true\n", db, root)), 0o644)
		drop()
		start := time.Now()
		env := append(os.Environ(), "NOTMUCH_CONFIG="+cfg)
		for _, args := range [][]string{{"new", "--quiet"}, {"count", "tag:unread"}} {
			c := exec.Command("notmuch", args...)
			c.Env = env
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("notmuch %v: %v %s", args, err, out)
			}
		}
		return time.Since(start)
	}
	mairix := func() time.Duration {
		db := filepath.Join(top, fmt.Sprintf("mairix-%d", time.Now().UnixNano()))
		os.MkdirAll(db, 0o755)
		var folders []string
		tr, _ := maildir.Discover(root)
		for _, mb := range tr.Mailboxes {
			rel, _ := filepath.Rel(root, mb.Path)
			folders = append(folders, rel)
		}
		rc := filepath.Join(db, "mairixrc")
		os.WriteFile(rc, []byte(fmt.Sprintf("base=%s\nmaildir=%s\nmfolder=%s/results\ndatabase=%s/db\n", root, strings.Join(folders, ":"), db, db)), 0o644)
		drop()
		start := time.Now()
		for _, args := range [][]string{{"-f", rc}, {"-f", rc, "F:-s"}} {
			if out, err := exec.Command("mairix", args...).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("Matched")) {
				t.Fatalf("mairix %v: %v %s", args, err, out)
			}
		}
		return time.Since(start)
	}
	floor := func() time.Duration {
		drop()
		start := time.Now()
		paths := make(chan string, 1024)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 8<<10)
				for p := range paths {
					if f, err := os.Open(p); err == nil {
						io.ReadFull(f, buf)
						f.Close()
					}
				}
			}()
		}
		for _, b := range backend(t, root) {
			paths <- b.Path
		}
		close(paths)
		wg.Wait()
		return time.Since(start)
	}

	rows = append(rows, row{"cold: until Unread lists completely", median(func() time.Duration { return vmfsCold("", "Unread", unseen) }),
		map[string]time.Duration{"dovecot": median(func() time.Duration { return doveCold("Virtual.Unread") }), "notmuch": notmuch(), "mairix": mairix()}})
	// Warm: vmfs remount of the last state; Dovecot's second STATUS.
	warmVmfs := median(func() time.Duration {
		mnt := t.TempDir()
		start := time.Now()
		cmd := exec.Command(vmfsBin, "mount", "--state", lastState, root, mnt)
		cmd.Start()
		for {
			a, _ := os.ReadDir(filepath.Join(mnt, "Unread", "cur"))
			b, _ := os.ReadDir(filepath.Join(mnt, "Unread", "new"))
			if len(a)+len(b) == unseen {
				break
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(start)
		exec.Command("fusermount3", "-u", mnt).Run()
		cmd.Wait()
		return d
	})
	rows = append(rows, row{"warm: remount, nothing changed", warmVmfs, map[string]time.Duration{"dovecot": median(func() time.Duration { return doveStatus("Virtual.Unread") })}})
	rows = append(rows, row{"cold with a header query (FROM)", median(func() time.Duration { return vmfsCold(cfgHeader, "Muller", -1) }),
		map[string]time.Duration{"dovecot": median(func() time.Duration { return doveCold("Virtual.Muller") }), "8KiB floor": median(floor)}})

	t.Logf("%-40s %12s %12s %12s %12s %12s %8s", "what", "vmfs", "dovecot", "notmuch", "mairix", "8KiB floor", "ratio")
	for _, r := range rows {
		best := time.Duration(0)
		cells := []string{}
		for _, k := range []string{"dovecot", "notmuch", "mairix", "8KiB floor"} {
			if d, ok := r.others[k]; ok {
				cells = append(cells, d.Round(time.Millisecond).String())
				if best == 0 || d < best {
					best = d
				}
			} else {
				cells = append(cells, "—")
			}
		}
		t.Logf("%-40s %12s %12s %12s %12s %12s %7.2fx", r.what, r.vmfs.Round(time.Millisecond), cells[0], cells[1], cells[2], cells[3], float64(r.vmfs)/float64(best))
	}
}
