package vsync

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"testing"
)

// TestVirtualBaseCompat pins the naming scheme of the package comment:
// names must never change between versions.
func TestVirtualBaseCompat(t *testing.T) {
	for _, c := range [][2]string{{"INBOX", "1.a"}, {"Lists/Go", "1700000000.M1P2.host,U=5"}, {"Reçus", "x"}} {
		sum := sha256.Sum256([]byte(c[0] + "\x00" + c[1]))
		old := "V" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:26]) + ".vmfs"
		if got := VirtualBase(c[0], c[1]); got != old {
			t.Errorf("%q: %s != %s", c, got, old)
		}
	}
}
