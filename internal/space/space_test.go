package space

import "testing"

func TestReserve(t *testing.T) {
	for _, tc := range []struct{ total, want uint64 }{
		{0, 0}, {100 << 20, 25 << 20}, {256 << 20, 64 << 20}, {1 << 40, 64 << 20},
	} {
		if got := Reserve(tc.total); got != tc.want {
			t.Errorf("Reserve(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
	if Low(t.TempDir()) {
		t.Skip("this machine's temp directory is short of space")
	}
	if Low("/nonexistent/dir") {
		t.Error("Low of a missing directory: true, want false (cannot tell)")
	}
}
