package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/target/local"
	"github.com/fsmirror/fsmirror/watch"
)

type watchFlags struct {
	syncFlags
	delay    time.Duration
	maxDelay time.Duration
}

func newWatchCmd(stdout, stderr io.Writer) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch [flags] SRC... DEST",
		Short: "Mirror SRC to DEST, then keep mirroring every change until stopped",
		Long: `Mirror SRC to DEST as sync does, then keep DEST equal to SRC as SRC changes,
in the foreground, until SIGINT or SIGTERM (work in flight is finished, exit 0).

Changes are seen with recursive inotify. Watches are in place before the first
sync starts, so nothing changed meanwhile is missed; a new directory is watched
and then scanned, so files created in it at once are mirrored too. A rename in
SRC is a rename in DEST (a renamed file or directory keeps its inode and is not
copied again). A kernel event queue overflow never stops fsmirror: it rescans
and converges. Excluded directories are not watched.

Events only mark paths dirty: a path that changes a thousand times while a copy
is under way is copied again once, not a thousand times. A file being written
is copied when it is closed, or after --max-delay if it stays open (a log).
--delay waits for a path to be quiet that long first; the default copies at once.`,
		Example: `  fsmirror watch /srv/www /mnt/mirror/www
  fsmirror watch -v --exclude '*.swp' --delay 200ms ~/src /backup/src`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), f, args[:len(args)-1], args[len(args)-1], stdout, stderr)
		},
	}
	f.excludes.register(cmd)
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "workers", engine.DefaultWorkers(), "parallel walkers and copiers")
	fl.BoolVar(&f.noDelete, "no-delete", false, "keep what DEST has and SRC does not")
	fl.BoolVarP(&f.checksum, "checksum", "c", false, "initial sync: skip files by content, not by size and mtime")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "list each change")
	fl.BoolVarP(&f.relative, "relative", "R", false, "put each SRC at DEST/<absolute path of SRC>")
	fl.DurationVar(&f.delay, "delay", 0, "wait until a path is quiet this long before mirroring it")
	fl.DurationVar(&f.maxDelay, "max-delay", 5*time.Second, "copy a file still open for writing after this long anyway")
	return cmd
}

func runWatch(ctx context.Context, f watchFlags, srcs []string, dest string, stdout, stderr io.Writer) error {
	if f.workers < 1 {
		return setupErr("--workers must be at least 1")
	}
	if f.delay < 0 || f.maxDelay <= 0 {
		return setupErr("--delay must not be negative and --max-delay must be positive")
	}
	flt, err := f.excludes.filter()
	if err != nil {
		return err
	}
	pairs, err := planPairs(srcs, dest, f.relative)
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	// All watches first, then the syncs: a setup error (no watches left)
	// is found before anything is written.
	type mirror struct {
		p      pair
		w      *watch.Watcher
		src    *fsys.Root
		rep    *reporter
		stats  engine.Stats
		result error
	}
	var mirrors []*mirror
	defer func() {
		for _, m := range mirrors {
			m.w.Close()
			m.src.Close()
		}
	}()
	for _, p := range pairs {
		w, err := watch.New(p.src, watch.Options{Exclude: flt.Excluded})
		if err != nil {
			return &exitError{code: exitSetup, err: fmt.Errorf("watch %s: %w", p.src, err)}
		}
		src, err := fsys.OpenRoot(p.src, true)
		if err != nil {
			w.Close()
			return &exitError{code: exitSetup, err: err}
		}
		rep := &reporter{stdout: stdout, stderr: stderr, verbose: f.verbose, prefix: p.prefix, source: p.src}
		mirrors = append(mirrors, &mirror{p: p, w: w, src: src, rep: rep})
	}
	var wg sync.WaitGroup
	for _, m := range mirrors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.result = watchPair(ctx, m.p, m.w, m.src, f, flt, m.rep, &m.stats, stderr)
		}()
	}
	wg.Wait()
	var errs []error
	for _, m := range mirrors {
		if m.result != nil && !errors.Is(m.result, context.Canceled) {
			errs = append(errs, m.result)
		}
	}
	if len(errs) > 0 {
		return &exitError{code: exitPartial, err: errors.Join(errs...)}
	}
	return nil
}

// watchPair runs the initial sync of one source and then mirrors its
// changes until ctx ends.
func watchPair(ctx context.Context, p pair, w *watch.Watcher, src *fsys.Root, f watchFlags, flt *filter.Filter, rep *reporter, stats *engine.Stats, stderr io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(p.dst), 0o755); err != nil {
		return fmt.Errorf("create destination: %w", err)
	}
	if err := os.Mkdir(p.dst, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create destination: %w", err)
	}
	dst, err := local.New(p.dst)
	if err != nil {
		return err
	}
	defer dst.Close()
	opt := engine.LiveOptions{
		Options: engine.Options{
			Workers:  f.workers,
			NoDelete: f.noDelete,
			Checksum: f.checksum,
			Filter:   flt,
			AsRoot:   unix.Geteuid() == 0,
			Report:   rep.report,
		},
		Delay:    f.delay,
		MaxDelay: f.maxDelay,
	}
	live := engine.NewLive(src, dst, opt, stats)
	start := time.Now()
	if err := live.InitialSync(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "fsmirror: watching %s (%d directories), mirroring to %s; initial sync took %s, %d files written, %d errors\n",
		p.src, w.Watches(), p.dst, time.Since(start).Round(time.Millisecond), stats.Written.Load(), stats.Errors.Load())
	err = live.Run(ctx, w.Events())
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		err = w.Err()
	}
	return err
}
