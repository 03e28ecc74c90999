package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// newProgress shows a cold index's progress: a line rewritten in place on
// a terminal, a log line every 5 seconds otherwise.
func newProgress(w io.Writer) func(done, total int) {
	start := time.Now()
	tty := isTerminal(w)
	var lastLog time.Time
	return func(done, total int) {
		el := time.Since(start)
		rate := float64(done) / el.Seconds()
		left := time.Duration(0)
		if rate > 0 {
			left = time.Duration(float64(total-done)/rate) * time.Second
		}
		if tty {
			fmt.Fprintf(w, "\rindexing: %d of %d messages, %.0f/s, %v left   ", done, total, rate, left.Round(time.Second))
			if done == total {
				fmt.Fprintln(w)
			}
			return
		}
		if time.Since(lastLog) >= 5*time.Second || done == total {
			lastLog = time.Now()
			slog.Info("indexing", "done", done, "total", total, "per_second", int(rate), "left", left.Round(time.Second))
		}
	}
}
