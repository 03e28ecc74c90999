package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/maildir"
	"vmfs/internal/message"
	"vmfs/internal/query"
	"vmfs/vsync"
)

func defaultMaildir() string {
	if m := os.Getenv("MAILDIR"); m != "" {
		return m
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "Mail")
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[--config F] [MAILDIR]", "Validate the folder definitions and print each folder with the mailboxes it matches.\nMAILDIR defaults to the configuration's maildir, then $MAILDIR, then ~/Mail.\nExample: vmfs check --virtual-dir ~/Mail/virtual ~/Mail", stderr)
	cfgPath := fs.String("config", "", "configuration file (default $XDG_CONFIG_HOME/vmfs/config.toml)")
	virtualDir := fs.String("virtual-dir", "", "load every DIR/<Name>/dovecot-virtual as a folder")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErr("too many arguments")
	}
	cfg, err := userConfig(*cfgPath, *virtualDir)
	if err != nil {
		return err
	}
	root := cfg.Maildir
	if fs.NArg() == 1 {
		root = fs.Arg(0)
	}
	tree, err := maildir.Discover(root)
	if err != nil {
		fmt.Fprintf(stderr, "vmfs check: warning: %v\n", err)
	}
	if len(tree.Mailboxes) == 0 {
		return fmt.Errorf("no Maildir found under %s", root)
	}
	var all []string
	for _, mb := range tree.Mailboxes {
		all = append(all, mb.Name)
	}
	folders, kept, err := withSearches(cfg.Folders, stateFor(cfg.State, resolvedRoot(root)))
	if err != nil {
		return err
	}
	for _, f := range folders {
		if slices.Contains(kept, f.Name) {
			f.Name += " (made with mkdir)"
		}
		var names []string
		q := f.Query
		if f.Dovecot != nil {
			sel := f.Dovecot.Assign(all)
			for _, n := range all {
				if r, ok := sel[n]; ok {
					names = append(names, fmt.Sprintf("%s (rule %d)", n, r+1))
				}
			}
			q = strings.Join(f.Dovecot.Rules, " | ")
		} else {
			sel := vsync.Resolve(f.Mailboxes, all)
			for _, n := range all {
				if sel[n] {
					names = append(names, n)
				}
			}
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", f.Name, q, strings.Join(names, ", "))
	}
	return nil
}

func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("search", "[--config F] [--state D] [MAILDIR] QUERY", "Print the backend messages (mailbox and file) that match an IMAP SEARCH query: from the index\n"+
		"of the running vmfs, or of the last mount, when it holds what the query needs; otherwise\n"+
		"by reading every message (and it says so).\nExample: vmfs search ~/Mail 'UNSEEN FROM alice'", stderr)
	cfgPath := fs.String("config", "", "configuration file")
	virtualDir := fs.String("virtual-dir", "", "also the folders of every DIR/<Name>/dovecot-virtual, as in vmfs mount")
	state := fs.String("state", "", "state directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	maildirArg, qs := "", ""
	switch fs.NArg() {
	case 1:
		qs = fs.Arg(0)
	case 2:
		maildirArg, qs = fs.Arg(0), fs.Arg(1)
	default:
		return usageErr("want [MAILDIR] QUERY")
	}
	q, err := query.Compile(qs)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, root, err := rootAndConfig(*cfgPath, *virtualDir, maildirArg)
	if err != nil {
		return err
	}
	if *state != "" {
		cfg.State = *state
	}
	resp, err := control(ctx, cfg, root, controlRequest{Cmd: "search", Query: qs})
	switch {
	case err == nil && resp.Error == "":
		for _, h := range resp.Hits {
			fmt.Fprintf(stdout, "%s\t%s\n", h.Mailbox, h.Path)
		}
		return nil
	case err == nil && resp.NotIndexed:
		fmt.Fprintf(stderr, "vmfs search: %s: reading every message\n", resp.Error)
	case err == nil:
		return errors.New(resp.Error)
	default:
		fmt.Fprintf(stderr, "vmfs search: %v: reading every message\n", err)
	}
	return scanSearch(ctx, root, q, stdout, stderr)
}

// scanSearch answers a search by reading every message of the backend.
func scanSearch(ctx context.Context, root string, q *query.Query, stdout, stderr io.Writer) error {
	tree, err := maildir.Discover(root)
	if err != nil {
		fmt.Fprintf(stderr, "vmfs search: warning: %v\n", err)
	}
	now := time.Now()
	var set []*query.Msg
	var paths []string
	for _, mb := range tree.Mailboxes {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := maildir.List(mb.Path)
		if err != nil {
			fmt.Fprintf(stderr, "vmfs search: %v\n", err)
		}
		kw, _ := maildir.ReadKeywords(mb.Path)
		for _, e := range ents {
			sub := "cur"
			if e.New {
				sub = "new"
			}
			p := filepath.Join(mb.Path, sub, e.Name)
			m, err := message.Load(p, q.Needs())
			if err != nil {
				fmt.Fprintf(stderr, "vmfs search: skipped: %v\n", err)
				continue
			}
			n, _ := maildir.ParseName(e.Name)
			m.Mailbox, m.Flags, m.Recent = mb.Name, n.Flags, e.New
			for _, l := range maildir.KeywordLetters(n.Flags) {
				m.Keywords = append(m.Keywords, kw[l])
			}
			set = append(set, m)
			paths = append(paths, p)
		}
	}
	var hits []vsync.SearchHit
	for i, ok := range q.MatchAll(set, now) {
		if ok {
			hits = append(hits, vsync.SearchHit{Mailbox: set[i].Mailbox, Path: paths[i]})
		}
	}
	// In the index's order: by mailbox, then file.
	sort.Slice(hits, func(i, j int) bool {
		return hits[i].Mailbox < hits[j].Mailbox || hits[i].Mailbox == hits[j].Mailbox && hits[i].Path < hits[j].Path
	})
	for _, h := range hits {
		fmt.Fprintf(stdout, "%s\t%s\n", h.Mailbox, h.Path)
	}
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[-n N] DIR", "Write a demo Maildir (Maildir++ layout, generated messages) into DIR.\nExample: vmfs demo -n 2000 /tmp/demo-mail", stderr)
	n := fs.Int("n", 500, "number of messages")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want DIR")
	}
	msgs, err := corpus.Generate(fs.Arg(0), corpus.Options{Messages: *n, Mailboxes: 10, Seed: 1, Now: time.Now()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d messages in %d mailboxes under %s\n", len(msgs), 10, fs.Arg(0))
	return nil
}

// resolvedRoot is root as mount names its state: absolute, symlinks
// resolved.
func resolvedRoot(root string) string {
	abs, err := filepath.Abs(root)
	if err != nil {
		return root
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}
