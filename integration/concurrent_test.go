package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vmfs/internal/maildir"
)

// messageID reads a message file's Message-ID header.
func messageID(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Message-ID: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no Message-ID")
}

// toggleFlagged sets or clears F on a backend message as mbsync does,
// moving it into cur/; it returns the new flags.
func toggleFlagged(b backendMsg) (string, error) {
	n, _ := maildir.ParseName(b.Name)
	if strings.Contains(n.Flags, "F") {
		n.Flags = maildir.SetFlags(n.Flags, "", "F")
	} else {
		n.Flags = maildir.SetFlags(n.Flags, "F", "")
	}
	n.HasInfo = true
	return n.Flags, os.Rename(b.Path, filepath.Join(filepath.Dir(filepath.Dir(b.Path)), "cur", n.String()))
}

// TestConcurrentWriter: while a client reads, flags and deletes through the
// mount, another process renames backend files as mbsync does, delivers
// and deletes. At the end no message is lost or duplicated, and Unread
// equals the truth computed from the backend.
func TestConcurrentWriter(t *testing.T) {
	root := genBackend(t, 400)
	cfg := configFile(t, "linger = \"200ms\"\n[folder.Unread]\nmailboxes = [\"*\", \"-Trash\", \"-Junk\", \"-Spam\"]\nquery = \"UNSEEN\"\n")
	m := mount(t, root, "--config", cfg)

	var mu sync.Mutex // protects expected
	expected := map[string]bool{}
	for _, b := range backend(t, root) {
		id, err := messageID(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		expected[id] = true
	}
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var clientErr error
	wg.Add(2)
	go func() { // the client, through the mount
		defer wg.Done()
		r := rand.New(rand.NewSource(1))
		for time.Now().Before(stop) {
			for _, sub := range []string{"new", "cur"} {
				dir := m.path("Unread", sub)
				ents, err := os.ReadDir(dir)
				if err != nil {
					clientErr = err
					return
				}
				for _, e := range ents {
					p := filepath.Join(dir, e.Name())
					switch x := r.Intn(10); {
					case x < 4: // read and mark seen, as mutt does
						if _, err := os.ReadFile(p); err != nil && !errors.Is(err, os.ErrNotExist) {
							clientErr = fmt.Errorf("read %s: %w", p, err)
							return
						}
						n, _ := maildir.ParseName(e.Name())
						n.Flags, n.HasInfo = maildir.SetFlags(n.Flags, "S", ""), true
						err := os.Rename(p, m.path("Unread", "cur", n.String()))
						if err != nil && !errors.Is(err, os.ErrNotExist) {
							clientErr = fmt.Errorf("rename %s: %w", p, err)
							return
						}
					case x == 4: // delete
						id, err := messageID(p)
						if err != nil {
							continue // gone meanwhile
						}
						if err := os.Remove(p); err == nil {
							mu.Lock()
							delete(expected, id)
							mu.Unlock()
						} else if !errors.Is(err, os.ErrNotExist) {
							clientErr = fmt.Errorf("remove %s: %w", p, err)
							return
						}
					}
				}
			}
		}
	}()
	go func() { // the other writer, on the backend
		defer wg.Done()
		r := rand.New(rand.NewSource(2))
		for i := 0; time.Now().Before(stop); i++ {
			bs := backend(t, root)
			b := bs[r.Intn(len(bs))]
			switch x := r.Intn(10); {
			case x < 6: // flag change, mbsync style: new/ → cur/ with flags, or F toggled
				toggleFlagged(b)
			case x < 8: // delivery
				// Expected before it exists: the client may list, read and
				// delete it through the mount before quickDeliver returns
				// here, and its delete must come after this line.
				id := fmt.Sprintf("<writer-%d@test>", i)
				mu.Lock()
				expected[id] = true
				mu.Unlock()
				quickDeliver(t, root, "Message-ID: "+id+"\nSubject: from the writer\n\nbody\n")
			default: // delete
				id, err := messageID(b.Path)
				if err != nil {
					continue
				}
				if err := os.Remove(b.Path); err == nil {
					mu.Lock()
					delete(expected, id)
					mu.Unlock()
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	if clientErr != nil {
		t.Fatalf("client: %v", clientErr)
	}
	// No message lost or duplicated.
	seen := map[string]int{}
	for _, b := range backend(t, root) {
		id, err := messageID(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	for id := range expected {
		if seen[id] != 1 {
			t.Errorf("message %s is in the backend %d times", id, seen[id])
		}
	}
	for id := range seen {
		if !expected[id] {
			t.Errorf("message %s should be gone", id)
		}
	}
	// Unread equals the truth, once lingering messages have left.
	eventually(t, 5*time.Second, func() string {
		want := map[string]bool{}
		for _, b := range backend(t, root) {
			if b.Mailbox != "Trash" && b.Mailbox != "Junk" && b.Mailbox != "Spam" && !strings.Contains(b.Flags, "S") {
				id, _ := messageID(b.Path)
				want[id] = true
			}
		}
		got := map[string]bool{}
		for _, sub := range []string{"new", "cur"} {
			for _, name := range names(t, m.path("Unread", sub)) {
				data, err := os.ReadFile(m.path("Unread", sub, name))
				if err != nil {
					return fmt.Sprintf("read %s: %v", name, err)
				}
				id, _ := messageID2(data)
				if got[id] {
					return "Unread shows " + id + " twice"
				}
				got[id] = true
			}
		}
		if len(got) != len(want) {
			return fmt.Sprintf("Unread has %d messages, the backend %d unseen", len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				return "Unread lacks " + id
			}
		}
		return ""
	})
}

func messageID2(data []byte) (string, bool) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Message-ID: ")); ok {
			return strings.TrimSpace(string(v)), true
		}
	}
	return "", false
}
