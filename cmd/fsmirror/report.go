package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/engine"
)

// reporter prints what the engine reports. The engine serialises calls.
type reporter struct {
	stdout, stderr io.Writer
	verbose        bool
	dryRun         bool
	prefix         string // of the current source's paths under DEST
	source         string // the current source, for notices
	to             string // the destination, when there are several
}

func (r *reporter) report(ev engine.Event) {
	path := r.under(ev.Path)
	switch ev.Kind {
	case engine.EventChange:
		if r.verbose {
			if r.to != "" {
				fmt.Fprintln(r.stdout, r.to+": "+r.describe(&ev.Op, path))
			} else {
				fmt.Fprintln(r.stdout, r.describe(&ev.Op, path))
			}
		}
	case engine.EventNotice:
		if r.to != "" {
			fmt.Fprintf(r.stderr, "fsmirror: %s -> %s: %v\n", r.source, r.to, ev.Err)
		} else {
			fmt.Fprintf(r.stderr, "fsmirror: %s: %v\n", r.source, ev.Err)
		}
	case engine.EventSkip:
		fmt.Fprintf(r.stderr, "fsmirror: skipped %s: %v\n", fsmirror.QuotePath(path), ev.Err)
	case engine.EventError:
		err := ev.Err
		var pe *fsmirror.PathError
		if errors.As(err, &pe) {
			c := *pe
			c.Path = r.under(pe.Path)
			err = &c
		}
		fmt.Fprintf(r.stderr, "fsmirror: %v\n", err)
	}
}

// under returns path, relative to the current source, as a path under
// DEST: the source's root is the prefix itself, without a trailing slash.
func (r *reporter) under(path string) string {
	if path == "" {
		return r.prefix
	}
	return fsmirror.Join(r.prefix, path)
}

// describe returns the line -v prints for an op: what happens to which path.
func (r *reporter) describe(op *fsmirror.Op, path string) string {
	q := fsmirror.QuotePath(path)
	var s string
	switch op.Kind {
	case fsmirror.OpMkdir:
		s = "mkdir   " + q + "/"
	case fsmirror.OpWrite:
		s = "write   " + q
	case fsmirror.OpSymlink:
		s = "symlink " + q + " -> " + fsmirror.QuotePath(op.Entry.Target)
	case fsmirror.OpLink:
		s = "link    " + q
		if op.From != "" { // rsync does not say which name it linked to
			s += " => " + fsmirror.QuotePath(r.under(op.From))
		}
	case fsmirror.OpRename:
		s = "rename  " + fsmirror.QuotePath(r.under(op.From)) + " -> " + q
	case fsmirror.OpDelete:
		s = "delete  " + q
		if op.Entry.Type == fsmirror.TypeDir {
			s += "/"
		}
	case fsmirror.OpSetMeta:
		s = "meta    " + q
	case fsmirror.OpMknod:
		s = "mknod   " + q + " (" + op.Entry.Type.String() + ")"
	default:
		s = op.Kind.String() + " " + q
	}
	if r.dryRun {
		return "would " + s
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress shows a progress line on w while a sync runs, when w is a
// terminal and show is set. It returns the function that removes it.
func startProgress(w io.Writer, stats *engine.Stats, show bool) (stop func()) {
	if !show || !isTerminal(w) {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("syncing"),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Finish()
				return
			case <-t.C:
				bar.Describe(fmt.Sprintf("%d entries, %d written (%s)", stats.Entries.Load(), stats.Written.Load(), humanBytes(stats.Bytes.Load())))
				bar.Set64(stats.Entries.Load())
			}
		}
	}()
	return func() { close(done); <-finished }
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
