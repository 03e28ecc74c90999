package main

import (
	"bytes"
	"context"
	"os"
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

func TestDovecotVirtualFolders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	runT(t, "demo", "-n", "100", dir)
	vdir := t.TempDir()
	os.MkdirAll(filepath.Join(vdir, "Mine"), 0o755)
	os.MkdirAll(filepath.Join(vdir, "Lists", "Unread"), 0o755)
	os.WriteFile(filepath.Join(vdir, "Mine", "dovecot-virtual"), []byte("INBOX\nSent\n  flagged\n\n-Trash\n*\n  unseen\n"), 0o644)
	os.WriteFile(filepath.Join(vdir, "Lists", "Unread", "dovecot-virtual"), []byte("Lists.*\n  unseen\n"), 0o644)
	code, out, errs := runT(t, "check", "--virtual-dir", vdir, dir)
	if code != 0 {
		t.Fatalf("check: %d %s", code, errs)
	}
	if !strings.Contains(out, "Lists/Unread\tunseen\tLists/dovecot (rule 1), Lists/go-nuts (rule 1)") {
		t.Errorf("Lists/Unread:\n%s", out)
	}
	if !strings.Contains(out, "Mine\tflagged | unseen\t") || !strings.Contains(out, "INBOX (rule 1)") || !strings.Contains(out, "Work (rule 2)") || strings.Contains(out, "Trash (") {
		t.Errorf("Mine:\n%s", out)
	}
	// A broken file: line and reason.
	os.WriteFile(filepath.Join(vdir, "Mine", "dovecot-virtual"), []byte("  unseen\n"), 0o644)
	code, _, errs = runT(t, "check", "--virtual-dir", vdir, dir)
	if code != 1 || !strings.Contains(errs, "Mine/dovecot-virtual:1: search rule without a mailbox") {
		t.Errorf("broken file: %d %s", code, errs)
	}
	// dovecot_virtual in the TOML configuration.
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(filepath.Join(filepath.Dir(cfg), "lists.virtual"), []byte("!Lists/saved\nLists/*\n  unseen\n"), 0o644)
	os.WriteFile(cfg, []byte("dovecot_separator = \"/\"\n[folder.L]\ndovecot_virtual = \"lists.virtual\"\n"), 0o644)
	code, out, errs = runT(t, "check", "--config", cfg, dir)
	if code != 0 || !strings.Contains(out, "L\tunseen\tLists/dovecot (rule 1), Lists/go-nuts (rule 1)") {
		t.Errorf("dovecot_virtual: %d %q %s", code, out, errs)
	}
}

func TestHostileConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	runT(t, "demo", "-n", "20", dir)
	for _, tc := range []struct{ toml, want string }{
		{"[folder.\"..\"]\nquery = \"ALL\"\n", `folder name component ".." is not allowed`},
		{"[folder.\"a/../b\"]\nquery = \"ALL\"\n", `folder name component ".." is not allowed`},
		{"[folder.\"/abs\"]\nquery = \"ALL\"\n", "must not be empty or start or end with '/'"},
		{"[folder.\"trail/\"]\nquery = \"ALL\"\n", "must not be empty or start or end with '/'"},
		{"[folder.\"\"]\nquery = \"ALL\"\n", "must not be empty"},
		{"[folder.\"a/cur\"]\nquery = \"ALL\"\n", `"cur" would clash with a Maildir directory`},
		{"[folder.\".hidden\"]\nquery = \"ALL\"\n", `".hidden" is not allowed`},
		{"[folder.A]\nquery = \"ALL\"\n[folder.A]\nquery = \"SEEN\"\n", "config.toml:3:"},
		{"[folder.A]\nmailboxes = [\"\"]\nquery = \"ALL\"\n", "an empty mailbox pattern"},
		{"linger = \"soon\"\n", `config.toml:1:10: linger: "soon" is not a duration`},
		{"dovecot_separator = \":\"\n", "dovecot_separator must be"},
		{"[folder.A]\nquery = \"ALL\"\ndovecot_virtual = \"x\"\n", "dovecot_virtual replaces mailboxes and query"},
	} {
		cfg := filepath.Join(t.TempDir(), "config.toml")
		os.WriteFile(cfg, []byte(tc.toml), 0o644)
		code, _, errs := runT(t, "check", "--config", cfg, dir)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, %q; want %q", tc.toml, code, errs, tc.want)
		}
	}
	// The same name from the configuration and from --virtual-dir.
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("[folder.Mine]\nquery = \"ALL\"\n"), 0o644)
	vdir := t.TempDir()
	os.MkdirAll(filepath.Join(vdir, "Mine"), 0o755)
	os.WriteFile(filepath.Join(vdir, "Mine", "dovecot-virtual"), []byte("*\n  all\n"), 0o644)
	if code, _, errs := runT(t, "check", "--config", cfg, "--virtual-dir", vdir, dir); code == 0 || !strings.Contains(errs, `folder "Mine" is defined twice`) {
		t.Errorf("duplicate folder: %d %q", code, errs)
	}
}
