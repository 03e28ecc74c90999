package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestViewSpeed measures what users feel of the view (SPEC §10's view
// rows), side by side with a real Maildir holding copies of exactly the
// same files, as medians of VMFS_VIEWSPEED_RUNS (default 3) runs that
// alternate between the two, and prints the ratios:
//
//	VMFS_VIEWSPEED=1 go test -count=1 ./integration -run ViewSpeed -v -timeout 2h
//
// The corpus is `vmfs demo -n VMFS_VIEWSPEED_N` (default 20,000 messages);
// the folder is its Unread. Rows: neomutt and mutt opening the folder
// until they quit from its index (no header cache, read-only, warm and
// with the page cache dropped), `cat` of every message (warm, cold),
// Dovecot serving each (fresh index every run) fetching every message's
// header and whole body, and `ls -f`. Then one warm `cat` pass and one
// cold neomutt open through a mount that logs every FUSE request, counted
// per message. Root only (page cache drops, Dovecot as uid 65534).
func TestViewSpeed(t *testing.T) {
	if os.Getenv("VMFS_VIEWSPEED") == "" {
		t.Skip("VMFS_VIEWSPEED=1 runs the measurement")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for tool, pkg := range map[string]string{"neomutt": "neomutt", "mutt": "mutt", "tmux": "tmux", "doveadm": "dovecot-core", "/usr/lib/dovecot/imap": "dovecot-imapd", "fusermount3": "fuse3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if out, err := exec.Command("apt-get", "install", "-y", "-q", pkg).CombinedOutput(); err != nil {
				t.Fatalf("apt-get install %s: %v %s", pkg, err, out)
			}
		}
	}
	n, runs := 20000, 3
	if v, err := strconv.Atoi(os.Getenv("VMFS_VIEWSPEED_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("VMFS_VIEWSPEED_RUNS")); err == nil && v > 0 {
		runs = v
	}
	c := &comparison{t: t, runs: runs, top: t.TempDir()}
	os.Chmod(c.top, 0o755)
	os.Chmod(filepath.Dir(c.top), 0o755)
	c.root = filepath.Join(c.top, "mail")
	if out, err := exec.Command(vmfsBin, "demo", "-n", strconv.Itoa(n), c.root).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v %s", err, out)
	}
	exec.Command("chown", "-R", "65534:65534", c.root).Run()
	unseen := len(unreadTruth(t, c.root))
	cfg := c.writeConfig("config.toml", "[folder.Unread]\nmailboxes = [\"*\", \"-Trash\", \"-Junk\", \"-Spam\"]\nquery = \"UNSEEN\"\n")
	c.mountArgs = []string{"-o", "allow_other"} // Dovecot runs as uid 65534
	_, p, mnt := c.startVmfs(c.root, filepath.Join(c.top, "state"), cfg, "Unread", unseen)
	defer func() {
		if p != nil {
			c.stopVmfs(p, mnt)
		}
	}()
	// The real copy: the same files under the same names and mtimes.
	realRoot := filepath.Join(c.top, "real")
	real := filepath.Join(realRoot, "Unread")
	os.MkdirAll(filepath.Join(real, "tmp"), 0o755)
	if out, err := exec.Command("cp", "-a", filepath.Join(mnt, "Unread", "cur"), filepath.Join(mnt, "Unread", "new"), real).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	exec.Command("chown", "-R", "65534:65534", realRoot).Run()
	virt := filepath.Join(mnt, "Unread")
	t.Logf("corpus: %d messages, Unread %d (cur %d, new %d)", n, unseen, len(names(t, filepath.Join(real, "cur"))), len(names(t, filepath.Join(real, "new"))))

	// pair runs a measurement on vmfs and on the real copy, alternating.
	pair := func(what string, cold bool, f func(dir string) float64) {
		var vs, rs []float64
		f(virt) // once each, unmeasured: caches and the kernel's entries as a user's second open finds them
		f(real)
		for i := 0; i < runs; i++ {
			if cold {
				c.drop()
			}
			vs = append(vs, f(virt))
			if cold {
				c.drop()
			}
			rs = append(rs, f(real))
		}
		c.add(what, "s", false, median(vs), map[string]float64{"real files": median(rs)})
	}
	for _, client := range []string{"neomutt", "mutt"} {
		client := client
		open := func(dir string) float64 { return c.openFolder(client, dir, unseen) }
		pair(client+" opens Unread, no header cache, warm", false, open)
		pair(client+" opens Unread, page cache dropped", true, open)
	}
	cat := func(dir string) float64 {
		start := time.Now()
		if out, err := exec.Command("sh", "-c", "cd "+dir+" && cat cur/* new/* > /dev/null").CombinedOutput(); err != nil {
			t.Fatalf("cat in %s: %v %s", dir, err, out)
		}
		return time.Since(start).Seconds()
	}
	pair("`cat` of every message, warm", false, cat)
	pair("`cat` of every message, page cache dropped", true, cat)
	lsF := func(dir string) float64 {
		start := time.Now()
		out, err := exec.Command("ls", "-f", filepath.Join(dir, "cur"), filepath.Join(dir, "new")).Output()
		if err != nil || bytes.Count(out, []byte("\n")) < unseen {
			t.Fatalf("ls -f %s: %v", dir, err)
		}
		return time.Since(start).Seconds()
	}
	pair("`ls -f` of cur/ and new/", false, lsF)

	// Dovecot on each, a fresh index every run (so that it reads the
	// files, not its cache).
	for _, body := range []bool{false, true} {
		what := "Dovecot `FETCH 1:* BODY.PEEK[HEADER]`"
		if body {
			what = "Dovecot `FETCH 1:* BODY.PEEK[]`"
		}
		dirs := map[string]string{virt: filepath.Join(c.top, "dovecot-vmfs"), real: filepath.Join(c.top, "dovecot-real")}
		pair(what, false, func(dir string) float64 {
			ddir := dirs[dir]
			os.RemoveAll(ddir)
			d := startDovecot(t, filepath.Dir(dir), ddir, false)
			defer d.close()
			start := time.Now()
			// EXAMINE: read-only, so that Dovecot moves nothing from new/ to cur/.
			sel, err := d.c.Select("Unread", &imap.SelectOptions{ReadOnly: true}).Wait()
			if err != nil || int(sel.NumMessages) != unseen {
				t.Fatalf("SELECT Unread in %s: %v (%d messages, want %d)", dir, err, sel.NumMessages, unseen)
			}
			sec := &imap.FetchItemBodySection{Peek: true}
			if !body {
				sec.Specifier = imap.PartSpecifierHeader
			}
			msgs, err := d.c.Fetch(seqAll(sel.NumMessages), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
			if err != nil || len(msgs) != unseen {
				t.Fatalf("FETCH in %s: %v (%d)", dir, err, len(msgs))
			}
			return time.Since(start).Seconds()
		})
	}
	c.print()
	c.stopVmfs(p, mnt)
	p = nil

	// What remains: FUSE requests per message, counted from the log of a
	// mount that logs them.
	c.mountArgs = []string{"-v"}
	_, p, mnt = c.startVmfs(c.root, filepath.Join(c.top, "state"), cfg, "Unread", unseen, "VMFS_FUSE_DEBUG=1")
	virt = filepath.Join(mnt, "Unread")
	cat(virt)
	c.counts("warm `cat` of every message", p, func() { cat(virt) }, unseen)
	c.counts("neomutt opens Unread, page cache dropped", p, func() { c.drop(); c.openFolder("neomutt", virt, unseen) }, unseen)
}

// openFolder opens dir in client (neomutt or mutt) on a terminal (a pty
// from script(1)), read-only and without a header cache, and quits as soon
// as the index is up (the pushed quit runs once the folder is read); it
// returns how long the client ran, checking that it showed the folder.
func (c *comparison) openFolder(client, dir string, want int) float64 {
	t := c.t
	rc := filepath.Join(c.top, client+"rc")
	os.WriteFile(rc, []byte("set header_cache=\"\"\nset mark_old=no\nset quit=yes\nset move=no\nset read_inc=0\nset sleep_time=0\n"+
		"set mbox_type=Maildir\nset folder=\""+dir+"\"\nset spoolfile=\""+dir+"\"\n"), 0o644)
	timing := filepath.Join(c.top, client+".time")
	inner := fmt.Sprintf("TIMEFORMAT=%%R; { time %s -n -R -F %s -f %s -e 'push <quit>'; } 2> %s", client, rc, dir, timing)
	cmd := exec.Command("script", "-qec", "bash -c \""+inner+"\"", "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=xterm", "COLUMNS=160", "LINES=40")
	screen, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s on %s: %v", client, dir, err)
	}
	if !bytes.Contains(screen, []byte("Msgs:"+strconv.Itoa(want))) {
		t.Fatalf("%s did not show %d messages of %s:\n%q", client, want, dir, screen[max(0, len(screen)-600):])
	}
	b, err := os.ReadFile(timing)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatalf("%s timing %q", client, b)
	}
	return v
}

var fuseRequest = regexp.MustCompile(`rx \d+: ([A-Z_]+) `)

// counts runs f and logs the FUSE requests the daemon got meanwhile, per
// message.
func (c *comparison) counts(what string, p *vmfsProc, f func(), msgs int) {
	p.log.Reset()
	start := time.Now()
	f()
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond) // the last requests' log lines
	got := map[string]int{}
	for _, m := range fuseRequest.FindAllStringSubmatch(p.log.String(), -1) {
		got[m[1]]++
	}
	var ops []string
	for op := range got {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return got[ops[i]] > got[ops[j]] })
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, " %s %d (%.2f/message)", op, got[op], float64(got[op])/float64(msgs))
	}
	c.t.Logf("FUSE requests, %s, %d messages (%s, logging every request):%s", what, msgs, took.Round(time.Millisecond), b.String())
}
