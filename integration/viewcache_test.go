package integration

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

// TestCachedNamesFollowBackendRenames: the kernel caches message names
// (fs.msgEntryTimeout) and is not told when the backend retires one. Each
// round: the client stat()s the name it listed (the kernel caches it),
// another program renames the backend file (mbsync setting or clearing
// \Flagged), the client lists the new name, and then
//   - an unlink or a rename from the retired name answers ENOENT and
//     changes nothing (the client rescans), and reading it gives the
//     message;
//   - the client's rename back to the retired name (undo what the backend
//     did) reaches the backend file. Both names are one inode: were the
//     retired name to resolve without a LOOKUP (the kernel looks up every
//     rename target afresh) or to answer one (the by-base-name fallback
//     of old), rename(2) would return 0 without asking vmfs and the change
//     would be lost silently.
func TestCachedNamesFollowBackendRenames(t *testing.T) {
	root, m, name := oneMessage(t)
	base := maildir.BaseOf(name)
	// Into cur/ through the mount, as mutt does.
	cur := m.path("All", "cur")
	listed := base + ":2,"
	if err := os.Rename(m.path("All", "new", name), filepath.Join(cur, listed)); err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(filepath.Join(cur, listed))
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 6; round++ {
		if _, err := os.Stat(filepath.Join(cur, listed)); err != nil {
			t.Fatalf("round %d: stat of the listed name: %v", round, err)
		}
		// The backend gains (or loses) F behind vmfs's back.
		var b backendMsg
		for _, x := range backend(t, root) {
			b = x
		}
		flags, err := toggleFlagged(b)
		if err != nil {
			t.Fatal(err)
		}
		renamed := base + ":2," + flags
		eventually(t, time.Second, func() string {
			if got := names(t, cur); len(got) != 1 || got[0] != renamed {
				return "round " + itoa(round) + ": cur/ lists " + strings.Join(got, " ") + ", want " + renamed
			}
			return ""
		})
		if _, err := os.Stat(filepath.Join(cur, renamed)); err != nil {
			t.Fatalf("round %d: the new name: %v", round, err)
		}
		// The retired name: readable, but nothing acts through it (odd
		// rounds; an answer of ENOENT makes the kernel drop the name, so
		// even rounds leave it cached for the rename back).
		if b, err := os.ReadFile(filepath.Join(cur, listed)); err == nil && string(b) != string(content) {
			t.Fatalf("round %d: the retired name reads other bytes", round)
		}
		if round%2 == 1 {
			if err := os.Rename(filepath.Join(cur, listed), filepath.Join(cur, base+":2,T")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("round %d: rename from the retired name: %v, want ENOENT", round, err)
			}
			if err := os.Remove(filepath.Join(cur, listed)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("round %d: unlink of the retired name: %v, want ENOENT", round, err)
			}
			if got, _ := backendFlags(t, root, maildir.BaseOf(b.Name)); got != flags {
				t.Fatalf("round %d: backend flags %q after refused operations, want %q", round, got, flags)
			}
		}
		// The client undoes it through the mount, naming the old flags.
		if err := os.Rename(filepath.Join(cur, renamed), filepath.Join(cur, listed)); err != nil {
			t.Fatalf("round %d: rename back: %v", round, err)
		}
		want := strings.TrimPrefix(listed, base+":2,")
		if got, inNew := backendFlags(t, root, maildir.BaseOf(b.Name)); got != want || inNew {
			t.Fatalf("round %d: backend flags %q (new %v) after the client's rename to %s, want %q: the change was lost", round, got, inNew, listed, want)
		}
		// Every other round the client sets S itself first, so that the
		// backend's next change meets other flags.
		if round%2 == 1 {
			next := base + ":2," + maildir.SetFlags(want, "S", "")
			if err := os.Rename(filepath.Join(cur, listed), filepath.Join(cur, next)); err != nil {
				t.Fatal(err)
			}
			listed = next
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestNamesSortChronologically: a name-ordered listing of a virtual folder
// is in delivery order, as a real Maildir's is (aerc and mblaze order by
// name), across mailboxes; and the names stay the same after a remount.
func TestNamesSortChronologically(t *testing.T) {
	root := emptyBackend(t, ".Work")
	// Delivery times interleaved between two mailboxes, written in an
	// order that is neither.
	times := []int64{1700000300, 1600000000, 1700000100, 1650000000, 1700000200, 1699999999}
	for i, tm := range times {
		dir := root
		if i%2 == 1 {
			dir = filepath.Join(root, ".Work")
		}
		name := itoa(int(tm)) + ".M" + itoa(i) + "P1.host:2,"
		if err := os.WriteFile(filepath.Join(dir, "cur", name), []byte("Subject: "+itoa(i)+"\n\nx\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := configFile(t, allFolderConfig)
	m := mount(t, root, "--config", cfg)
	var listed []string
	eventually(t, 5*time.Second, func() string {
		listed = names(t, m.path("All", "cur"))
		if len(listed) != len(times) {
			return "All/cur lists " + itoa(len(listed))
		}
		return ""
	})
	sort.Strings(listed)
	sorted := append([]int64(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for i, n := range listed {
		if !strings.HasPrefix(n, itoa(int(sorted[i]))+".") {
			t.Fatalf("name order is not delivery order: %q", listed)
		}
	}
	m.remount()
	again := names(t, m.path("All", "cur"))
	sort.Strings(again)
	if strings.Join(again, " ") != strings.Join(listed, " ") {
		t.Fatalf("names changed across a remount:\n%q\n%q", listed, again)
	}
}
