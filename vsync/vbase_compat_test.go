package vsync

import (
	"crypto/sha256"
	"encoding/base32"
	"sort"
	"strings"
	"testing"
)

// TestVirtualBaseCompat pins the naming scheme of the package comment:
// names must never change between versions (clients key caches and UIDs
// by them).
func TestVirtualBaseCompat(t *testing.T) {
	for _, c := range []struct{ mailbox, base, time string }{
		{"INBOX", "1.a", "0000000001"},
		{"Lists/Go", "1700000000.M1P2.host,U=5", "1700000000"},
		{"Reçus", "x", "0000000000"},
		{"INBOX", "1700000000123.ms-timestamp", "1700000000123"},
		{"INBOX", "999999999.old", "0999999999"},
	} {
		sum := sha256.Sum256([]byte(c.mailbox + "\x00" + c.base))
		want := c.time + ".V" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:26]) + ".vmfs"
		got := VirtualBase(c.mailbox, c.base)
		if got != want {
			t.Errorf("%q %q: %s != %s", c.mailbox, c.base, got, want)
		}
		k, tm, ok := parseVirtualBase(got)
		if !ok || k != virtualKey(c.mailbox, c.base) || tm != c.time {
			t.Errorf("parseVirtualBase(%s) = %s %s %v", got, k, tm, ok)
		}
	}
}

// TestVirtualNamesSortByDeliveryTime: an ls-ordered listing is
// chronological, as the backend names are, whatever mailbox a message is in.
func TestVirtualNamesSortByDeliveryTime(t *testing.T) {
	backend := []struct{ mailbox, base string }{
		{"INBOX", "1600000000.M1P1.host"},
		{"Work", "1600000500.M7P1.host,U=3"},
		{"INBOX", "1650000000.M2P1.host"},
		{"Lists/Go", "1700000000.M9P2.host"},
		{"INBOX", "1700000001.M3P1.host"},
	}
	var names []string
	for _, b := range backend {
		names = append(names, VirtualBase(b.mailbox, b.base)+":2,S")
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for i := range names {
		if names[i] != sorted[i] {
			t.Fatalf("name order is not delivery order: %v", sorted)
		}
	}
}

func TestParseVirtualBaseRefuses(t *testing.T) {
	for _, s := range []string{"", "V" + strings.Repeat("a", 26) + ".vmfs", "170000000.V" + strings.Repeat("a", 26) + ".vmfs",
		"17000000x0.V" + strings.Repeat("a", 26) + ".vmfs", "1700000000.W" + strings.Repeat("a", 26) + ".vmfs",
		"1700000000.V" + strings.Repeat("a", 25) + ".vmfs", "1700000000.M1P2.host"} {
		if _, _, ok := parseVirtualBase(s); ok {
			t.Errorf("parseVirtualBase(%q) accepted", s)
		}
	}
}
