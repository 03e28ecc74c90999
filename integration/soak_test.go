package integration

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
)

// procStat returns a process's resident set size (kB) and open fds.
func procStat(pid int) (rssKB, fds int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rssKB, len(ents)
}

// TestSoak is the long soak of mixed client and backend churn, skipped
// unless VMFS_SOAK gives its duration (e.g. VMFS_SOAK=1h; VMFS_SOAK_N sets
// the corpus size, default 100,000). It reports peak RSS and open file
// descriptors, and requires that no message is lost or duplicated and
// that the descriptors come back to their baseline.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("VMFS_SOAK"))
	if err != nil {
		t.Skip("VMFS_SOAK=duration runs the soak")
	}
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("VMFS_SOAK_N")); err == nil {
		n = v
	}
	root := filepath.Join(t.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: n, Mailboxes: 40, Seed: 99, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg := configFile(t, `linger = "2s"
[folder.Unread]
mailboxes = ["*", "-Trash", "-Junk"]
query = "UNSEEN"
[folder.Flagged]
query = "FLAGGED"
[folder.Go]
query = 'OR HEADER List-Id golang FROM "müller"'
save = "Lists/saved"
`)
	m := mount(t, root, "--config", cfg)
	pid := m.cmd.Process.Pid
	expected := map[string]bool{}
	for _, b := range backend(t, root) {
		id, err := messageID(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		expected[id] = true
	}
	_, baseFDs := procStat(pid)
	peakRSS, peakFDs := 0, 0
	r := rand.New(rand.NewSource(7))
	boxes := map[string]bool{}
	for _, b := range backend(t, root) {
		boxes[filepath.Dir(filepath.Dir(b.Path))] = true
	}
	var boxList []string
	for b := range boxes {
		boxList = append(boxList, b)
	}
	ops, clientOps, lastSample := 0, 0, time.Time{}
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		if time.Since(lastSample) > 10*time.Second {
			lastSample = time.Now()
			rss, fds := procStat(pid)
			peakRSS, peakFDs = max(peakRSS, rss), max(peakFDs, fds)
		}
		switch x := r.Intn(20); {
		case x < 8: // the client, through the mount: read and mark seen
			folder := []string{"Unread", "Flagged", "Go"}[r.Intn(3)]
			names := names(t, m.path(folder, "cur"))
			if len(names) == 0 {
				continue
			}
			name := names[r.Intn(len(names))]
			p := m.path(folder, "cur", name)
			os.ReadFile(p)
			nm, err := maildir.ParseName(name)
			if err != nil {
				t.Fatalf("bad name %q", name)
			}
			nm.Flags = maildir.SetFlags(nm.Flags, "S", "")
			os.Rename(p, m.path(folder, "cur", nm.String())) // ENOENT: raced, fine
			clientOps++
		case x == 8: // the client deletes
			names := names(t, m.path("Unread", "cur"))
			if len(names) == 0 {
				continue
			}
			p := m.path("Unread", "cur", names[r.Intn(len(names))])
			if id, err := messageID(p); err == nil && os.Remove(p) == nil {
				delete(expected, id)
			}
			clientOps++
		case x < 12: // delivery into the backend
			id := fmt.Sprintf("<soak-%d@test>", i)
			quickDeliver(t, boxList[r.Intn(len(boxList))], "Message-ID: "+id+"\nFrom: golang@x\nSubject: soak\n\nbody\n")
			expected[id] = true
		case x < 19: // flag change in the backend
			box := boxList[r.Intn(len(boxList))]
			ents, _ := os.ReadDir(filepath.Join(box, "cur"))
			if len(ents) == 0 {
				continue
			}
			e := ents[r.Intn(len(ents))]
			nm, err := maildir.ParseName(e.Name())
			if err != nil {
				continue
			}
			f := string("FRS"[r.Intn(3)])
			if strings.Contains(nm.Flags, f) {
				nm.Flags = maildir.SetFlags(nm.Flags, "", f)
			} else {
				nm.Flags = maildir.SetFlags(nm.Flags, f, "")
			}
			os.Rename(filepath.Join(box, "cur", e.Name()), filepath.Join(box, "cur", nm.String()))
		default: // delete in the backend
			box := boxList[r.Intn(len(boxList))]
			ents, _ := os.ReadDir(filepath.Join(box, "cur"))
			if len(ents) == 0 {
				continue
			}
			p := filepath.Join(box, "cur", ents[r.Intn(len(ents))].Name())
			if id, err := messageID(p); err == nil && os.Remove(p) == nil {
				delete(expected, id)
			}
		}
		ops++
	}
	time.Sleep(3 * time.Second) // lingers end, the watcher catches up
	rss, fds := procStat(pid)
	peakRSS, peakFDs = max(peakRSS, rss), max(peakFDs, fds)
	seen := map[string]int{}
	for _, b := range backend(t, root) {
		id, err := messageID(b.Path)
		if err != nil {
			t.Fatalf("%s: %v", b.Path, err)
		}
		seen[id]++
	}
	lost, dup, extra := 0, 0, 0
	for id := range expected {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	for id := range seen {
		if !expected[id] {
			extra++
		}
	}
	t.Logf("soak %v over %d messages: %d operations (%d through the mount); peak RSS %d MB, peak fds %d (baseline %d, now %d); lost %d, duplicated %d, unexpected %d",
		d, n, ops, clientOps, peakRSS/1024, peakFDs, baseFDs, fds, lost, dup, extra)
	if lost+dup+extra > 0 {
		t.Fatalf("messages lost %d, duplicated %d, unexpected %d", lost, dup, extra)
	}
	if fds > baseFDs+10 {
		t.Fatalf("open fds %d, baseline %d: a leak", fds, baseFDs)
	}
}
