package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden compares help texts and error messages with testdata/golden.
func TestGolden(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("maildir = \"/nonexistent\"\n[folder.X]\nquery = 'SINCE yesterday'\n"), 0o644)
	typo := filepath.Join(t.TempDir(), "typo.toml")
	os.WriteFile(typo, []byte("[folder.X]\nmailbox = [\"*\"]\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"usage", []string{"help"}},
		{"mount-help", []string{"mount", "-h"}},
		{"check-help", []string{"check", "-h"}},
		{"search-help", []string{"search", "-h"}},
		{"ls-help", []string{"ls", "-h"}},
		{"expunge-help", []string{"expunge", "-h"}},
		{"demo-help", []string{"demo", "-h"}},
		{"bad-query-config", []string{"check", "--config", bad}},
		{"typo-config", []string{"check", "--config", typo}},
		{"mount-usage", []string{"mount"}},
		{"mount-layout", []string{"mount", "--layout", "mh", "a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out, errs := runT(t, tc.args...)
			got := strings.ReplaceAll(out+errs, filepath.Dir(bad), "TMP")
			got = strings.ReplaceAll(got, filepath.Dir(typo), "TMP")
			p := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/vmfs -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("vmfs %q:\n--- got\n%s\n--- want\n%s", tc.args, got, want)
			}
		})
	}
}
