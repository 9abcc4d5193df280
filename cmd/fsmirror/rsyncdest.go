package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/target/all"
	"github.com/fsmirror/fsmirror/watch"
)

// rsyncHelp ends the help of sync and watch.
const rsyncHelp = `To hosts that have rsync but no fsmirror, DEST may be
rsync://[user@]host[:port]/module/path, a module of an rsync daemon (its
password in --password-file FILE), or, with --rsync, [user@]host:path reached
with rsync -e ssh. The system rsync does the work: sync is one whole-tree
rsync; watch sends each batch of changed paths in one rsync run
(--files-from, NUL-separated), never one per file, at most --rsync-processes
runs at once. rsync cannot rename: a rename there is a delete and a copy.
rsync's exit status decides what follows: 0 and 24 (vanished files) are done;
23 and 25 (some files failed) are retried a few times, then reported; 5 (a
busy daemon), 10, 11, 12, 30, 35 and 255 (connection, I/O, timeouts) are
retried until the destination is back, with every path kept; 1, 2, 3, 4, a
refused password or module, and a missing remote rsync are fatal. The README
has the whole table.`

// rsyncFlags are the settings of rsync destinations (rsync://, and
// [user@]host:path with --rsync), shared by sync and watch.
type rsyncFlags struct {
	rsync        bool
	passwordFile string
	rsyncPath    string
	args         []string
	bwlimit      string
	processes    int
}

func (r *rsyncFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&r.rsync, "rsync", false, "send to [user@]host:path with rsync over ssh (no fsmirror needed there) instead of the fsmirror agent")
	fl.StringVar(&r.passwordFile, "password-file", "", "for rsync:// destinations: the daemon's password is in `FILE` (mode 600)")
	fl.StringVar(&r.rsyncPath, "rsync-path", "", "for --rsync: the rsync `PROGRAM` on the remote host")
	fl.StringArrayVar(&r.args, "rsync-arg", nil, "pass `ARG` to every rsync run, after fsmirror's own options (repeatable)")
	fl.StringVar(&r.bwlimit, "bwlimit", "", "for rsync destinations: limit the bandwidth of each rsync run to `RATE` (rsync's --bwlimit, e.g. 10m)")
	fl.IntVar(&r.processes, "rsync-processes", 1, "for rsync destinations: at most `N` rsync runs at once")
}

// apply puts the rsync settings into o.
func (r *rsyncFlags) apply(o *all.Options) {
	o.Rsync = r.rsync
	o.PasswordFile = r.passwordFile
	o.RsyncPath = r.rsyncPath
	o.RsyncArgs = r.args
	o.Bwlimit = r.bwlimit
	o.RsyncProcesses = r.processes
	if o.SSH == "ssh" {
		o.SSH = "" // the rsync default adds BatchMode
	}
}

func (r *rsyncFlags) check() error {
	if r.processes < 1 {
		return setupErr("--rsync-processes must be at least 1")
	}
	return nil
}

// lockedReport returns report made safe for calls from several goroutines
// (the runs of an rsync destination, and the Batcher), or nil for nil.
func lockedReport(report func(engine.Event)) func(engine.Event) {
	if report == nil {
		return nil
	}
	var mu sync.Mutex
	return func(ev engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		report(ev)
	}
}

// openSyncer opens the PathSyncer of an rsync destination; the changes it
// makes are counted in stats and told to report, which must be safe for
// concurrent calls (lockedReport).
func openSyncer(ctx context.Context, loc all.Syncer, o all.OpenOptions, report func(engine.Event), stats *engine.Stats) (fsmirror.PathSyncer, error) {
	o.OnChange = func(op fsmirror.Op) {
		switch op.Kind {
		case fsmirror.OpWrite:
			stats.Written.Add(1)
		case fsmirror.OpDelete:
			stats.Deleted.Add(1)
		}
		stats.Changes.Add(1)
		if report != nil {
			report(engine.Event{Kind: engine.EventChange, Op: op, Path: op.Path})
		}
	}
	return loc.OpenSyncer(ctx, o)
}

// syncRsync mirrors one source to an rsync destination: one whole-tree
// rsync. A partial transfer is reported as a failure (exit 1); any other
// failure is the error (exit 2).
func syncRsync(ctx context.Context, p pair, loc all.Syncer, f syncFlags, opt engine.Options, stats *engine.Stats) error {
	if err := f.dest.rsync.check(); err != nil {
		return err
	}
	report := lockedReport(opt.Report)
	s, err := openSyncer(ctx, loc, all.OpenOptions{Source: p.src, Filter: opt.Filter, NoDelete: opt.NoDelete, Checksum: opt.Checksum, DryRun: f.dryRun},
		report, stats)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.SyncAll(ctx)
	if errors.Is(err, fsmirror.ErrPartial) {
		stats.Errors.Add(1)
		if report != nil {
			report(engine.Event{Kind: engine.EventError, Err: fmt.Errorf("rsync to %s: %w", loc, err)})
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("rsync to %s: %w", loc, err)
	}
	return nil
}

// openRsync prepares the live mirror of one source to an rsync
// destination: it opens the syncer, which checks that rsync is installed,
// before anything is written.
func (m *mirror) openRsync(ctx context.Context, loc all.Syncer, f watchFlags, flt *filter.Filter, stdout, stderr io.Writer) error {
	if err := f.dest.rsync.check(); err != nil {
		return err
	}
	m.rep = &reporter{stdout: stdout, stderr: stderr, verbose: f.verbose, prefix: m.p.prefix, source: m.p.src}
	m.report = lockedReport(m.rep.report)
	s, err := openSyncer(ctx, loc, all.OpenOptions{Source: m.p.src, Filter: flt, NoDelete: f.noDelete, Checksum: f.checksum}, m.report, &m.stats)
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	m.syncer = s
	return nil
}

// watchRsync runs the initial sync of one source into its rsync
// destination and then sends its changes in batches until ctx ends.
func watchRsync(ctx context.Context, m *mirror, events <-chan []watch.Event, f watchFlags, flt *filter.Filter, stderr io.Writer) error {
	stats := &m.stats
	b := engine.NewBatcher(m.syncer, engine.BatchOptions{
		Delay:     f.delay,
		MaxDelay:  f.maxDelay,
		Processes: f.dest.rsync.processes,
		Filter:    flt,
		Report: func(ev engine.Event) {
			if ev.Kind == engine.EventError {
				stats.Errors.Add(1)
			}
			m.report(ev)
		},
	})
	start := time.Now()
	if err := b.InitialSync(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return &exitError{code: exitSetup, err: fmt.Errorf("initial sync to %s: %w", m.p.dst, err)}
	}
	fmt.Fprintf(stderr, "fsmirror: watching %s (%d directories), mirroring to %s with rsync; initial sync took %s, %d files written, %d errors\n",
		m.p.src, m.w.Watches(), m.p.dst, time.Since(start).Round(time.Millisecond), stats.Written.Load(), stats.Errors.Load())
	if f.rescanInterval > 0 {
		go func() {
			t := time.NewTicker(f.rescanInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				done := make(chan struct{})
				if !b.Rescan(ctx, "", func() { close(done) }) {
					return
				}
				select {
				case <-done:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	err := b.Run(ctx, events)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("mirroring to %s stopped: %w", m.p.dst, err)
	}
	return m.w.Err()
}
