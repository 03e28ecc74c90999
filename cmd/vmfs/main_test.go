package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func runT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	if code, out, errs := runT(t, "demo", "-n", "200", dir); code != 0 || !strings.Contains(out, "wrote 200 messages") {
		t.Fatalf("demo: %d %q %q", code, out, errs)
	}
	code, out, _ := runT(t, "check", dir)
	if code != 0 || !strings.Contains(out, "Unread\tUNSEEN\t") || strings.Contains(out, "Trash") {
		t.Errorf("check: %d %q", code, out)
	}
	code, out, _ = runT(t, "search", dir, "FLAGGED")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 5 {
		t.Fatalf("search FLAGGED: %d %q", code, out)
	}
	for _, l := range lines {
		if _, p, _ := strings.Cut(l, "\t"); !strings.Contains(filepath.Base(p), ":2,") || !strings.Contains(p[strings.LastIndex(p, ":2,"):], "F") {
			t.Errorf("search FLAGGED printed an unflagged message: %q", l)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"search", dir, "SINCE yesterday"}, 2, `query: at 7: expected a date like 1-Feb-2024, got "yesterday"`},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{}, 2, "Usage: vmfs COMMAND"},
		{[]string{"check", filepath.Join(dir, "nope")}, 1, "no Maildir found"},
		{[]string{"search", "-x"}, 2, "flag provided but not defined"},
		{[]string{"search", "-h"}, 0, "Usage: vmfs search"},
	} {
		code, _, errs := runT(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("vmfs %q = %d %q, want %d %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	if code, out, _ := runT(t, "version"); code != 0 || !strings.HasPrefix(out, "vmfs ") {
		t.Errorf("version: %d %q", code, out)
	}
}
