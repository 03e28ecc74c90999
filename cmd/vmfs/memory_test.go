package main

import "testing"

func TestLimitFor(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name       string
		live, last int64
		want       int64
	}{
		{"small heaps get the floor", 10 * mb, 0, memFloor},
		{"a heap that stopped growing gets an eighth", 240 * mb, 240 * mb, 240*mb + 30*mb + memMargin},
		{"a shrinking heap too", 200 * mb, 240 * mb, 200*mb + 25*mb + memMargin},
		{"a growing heap gets room for as much growth again", 240 * mb, 180 * mb, 240*mb + 60*mb + memMargin},
		{"slow growth: the eighth", 240 * mb, 230 * mb, 240*mb + 30*mb + memMargin},
	} {
		if got := limitFor(tc.live, tc.last); got != tc.want {
			t.Errorf("%s: limitFor(%d MB, %d MB) = %d MB, want %d MB", tc.name, tc.live/mb, tc.last/mb, got/mb, tc.want/mb)
		}
	}
}
