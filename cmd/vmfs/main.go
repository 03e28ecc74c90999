// Command vmfs presents virtual mail folders — saved searches over a tree
// of Maildirs — as ordinary Maildirs. This file holds the command line:
// flags become plain structs, and each subcommand is a testable run
// function with named exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Exit codes (SPEC §8).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// errUsage marks errors that are the caller's mistake (exit 2).
var errUsage = errors.New("usage")

type command struct {
	name, args, help string
	run              func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"mount", "[MAILDIR] MOUNTPOINT", "mount the virtual folders and serve them until unmounted", runMount},
		{"ls", "[MAILDIR]", "list the virtual folders with their message counts", runLs},
		{"expunge", "FOLDER", "drop a folder's messages that no longer match, at once", runExpunge},
		{"check", "[MAILDIR]", "validate the folder definitions and print each folder with the mailboxes it matches", runCheck},
		{"search", "[MAILDIR] QUERY", "print the backend messages that match an IMAP SEARCH query", runSearch},
		{"demo", "[-n N] DIR", "write a demo Maildir of generated messages into DIR", runDemo},
		{"version", "", "print the version", func(_ context.Context, _ []string, out, _ io.Writer) error {
			fmt.Fprintln(out, "vmfs", version)
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: vmfs COMMAND [options] [arguments]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %-21s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nRun 'vmfs COMMAND -h' for a command's options.")
}

func main() {
	if p := dev.CPUProfile; p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first SIGINT/SIGTERM starts a clean shutdown; a second one gets
	// the default action (the index survives a kill, SPEC §9).
	go func() { <-ctx.Done(); stop() }()
	// Losing stderr (vmfs mount … | tee log, then Ctrl-C) must not kill
	// the daemon: with SIGPIPE notified, a write to a closed pipe fails
	// with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "vmfs %s: %v\n", c.name, err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "vmfs %s: %v\n", c.name, err)
		return exitRuntime
	}
	fmt.Fprintf(stderr, "vmfs: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// newFlags makes a FlagSet whose parse errors are usage errors.
func newFlags(name, args, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vmfs %s %s\n\n%s\n", name, args, help)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
