package integration

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
	"vmfs/vsync"
)

// TestBurstOfDeliveriesAndFlags: 100 deliveries and 100 flag renames made
// in the backend as fast as a program can make them (as the comparison's
// incremental row does) all show in Unread: the deliveries under their
// names, the messages marked seen with their new flags (lingering). Keyword
// letters are left out of the comparison: each folder has letters of its
// own (SPEC §5).
func TestBurstOfDeliveriesAndFlags(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: 3000, Mailboxes: 40, Seed: 1, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m := mount(t, root)
	for run := 0; run < 3; run++ {
		want := burst(t, root, run)
		eventually(t, 10*time.Second, func() string {
			seen := map[string]bool{}
			for _, sub := range []string{"new", "cur"} {
				ents, _ := os.ReadDir(m.path("Unread", sub))
				for _, e := range ents {
					seen[sub+"/"+withoutKeywords(e.Name())] = true
				}
			}
			var missing []string
			for w := range want {
				if !seen[w] {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 {
				return fmt.Sprintf("run %d: %d of %d changes not shown, e.g. %q", run, len(missing), len(want), missing[0])
			}
			return ""
		})
	}
}

// burst makes 100 deliveries (into new/ of the mailboxes other than
// Trash, Junk and Spam, in turn) and marks 100 unseen messages in cur/ seen,
// in the backend, as fast as a program can, as the files' owner. It
// returns what Unread must then list, "sub/name" without keyword letters
// (see withoutKeywords). run makes each call's names and choice its own.
func burst(t *testing.T, root string, run int) map[string]bool {
	t.Helper()
	tr, _ := maildir.Discover(root)
	var boxes []maildir.Mailbox
	for _, mb := range tr.Mailboxes {
		if mb.Name != "Trash" && mb.Name != "Junk" && mb.Name != "Spam" {
			boxes = append(boxes, mb)
		}
	}
	var unseen []backendMsg
	for _, b := range backend(t, root) {
		if b.Mailbox != "Trash" && b.Mailbox != "Junk" && b.Mailbox != "Spam" && !strings.Contains(b.Flags, "S") && !b.New {
			unseen = append(unseen, b)
		}
	}
	if len(boxes) == 0 || len(unseen) < 100 {
		t.Fatalf("%d mailboxes, %d unseen messages in cur/: too few for a burst", len(boxes), len(unseen))
	}
	var st syscall.Stat_t
	syscall.Stat(root, &st)
	want := map[string]bool{}
	perm := rand.New(rand.NewSource(int64(run))).Perm(len(unseen)) // 100 different ones
	for i := 0; i < 100; i++ {
		mb := boxes[i%len(boxes)]
		name := fmt.Sprintf("%d.R%dI%d.burst", time.Now().Unix(), run, i)
		tmp := filepath.Join(mb.Path, "tmp", name)
		os.WriteFile(tmp, []byte(fmt.Sprintf("From: x@example.org\nSubject: burst %d\n\nbody\n", i)), 0o600)
		os.Chown(tmp, int(st.Uid), int(st.Gid))
		os.Rename(tmp, filepath.Join(mb.Path, "new", name))
		want["new/"+vsync.VirtualBase(mb.Name, name)] = true
		u := unseen[perm[i]]
		base := maildir.BaseOf(filepath.Base(u.Path))
		flags := maildir.NormFlags(u.Flags + "S")
		os.Rename(u.Path, filepath.Join(filepath.Dir(u.Path), base+":2,"+flags))
		want["cur/"+withoutKeywords(vsync.VirtualBase(u.Mailbox, base)+":2,"+flags)] = true
	}
	return want
}

// withoutKeywords drops the keyword letters (a–z) from a file name's info
// part: a virtual folder shows keywords under letters of its own.
func withoutKeywords(name string) string {
	n, err := maildir.ParseName(name)
	if err != nil || !n.HasInfo {
		return name
	}
	n.Flags = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return -1
		}
		return r
	}, n.Flags)
	return n.String()
}
