package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/index"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/target/all"
	"github.com/fsmirror/fsmirror/watch"
)

type watchFlags struct {
	syncFlags
	delay          time.Duration
	maxDelay       time.Duration
	stateDir       string
	verifyOnStart  bool
	rescanInterval time.Duration
	debugEvents    bool
	watcher        string
}

func newWatchCmd(a *app) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch [flags] SRC... DEST",
		Short: "Mirror SRC to DEST, then keep mirroring every change until stopped",
		Long: `Mirror SRC to DEST as sync does, then keep DEST equal to SRC as SRC changes,
in the foreground, until SIGINT or SIGTERM (work in flight is finished, exit 0).

Changes are seen with recursive inotify or with fanotify (--watcher). Watches
are in place before the first sync starts, so nothing changed meanwhile is
missed; a new directory is watched and then scanned, so files created in it at
once are mirrored too. A rename in SRC is a rename in DEST (a renamed file or
directory keeps its inode and is not copied again). A kernel event queue
overflow never stops fsmirror: it rescans and converges. Excluded directories
are not watched.

--watcher inotify adds one inotify watch per directory: it works for any user,
but a big tree takes a while to set up and may need fs.inotify.max_user_watches
raised; if watches run out, fsmirror says how many the tree needs, keeps
watching what it could, and rescans the rest every minute. --watcher fanotify
(root, Linux 5.9+) watches the whole file system of SRC with one mark and keeps
the changes below SRC: ready at once whatever the tree's size, at the cost of a
little CPU for every change elsewhere on that file system. --watcher auto uses
fanotify when it can and inotify otherwise. The default is inotify: fanotify
charges every program writing to the same file system, and is newer here.

Events only mark paths dirty: a path that changes a thousand times while a copy
is under way is copied again once, not a thousand times. A file being written
is copied when it is closed, or after --max-delay if it stays open (a log).
--delay waits for a path to be quiet that long first; the default copies at once.

What each destination holds is recorded in an index in --state-dir (default
$FSMIRROR_STATE_DIR, /var/lib/fsmirror for root, else ~/.local/state/fsmirror).
After a clean stop, a restart stat-walks only the source and sends what changed
while fsmirror was down, without listing the destination. After a crash (or with
--verify-on-start, or a missing or damaged index) the whole destination is
compared instead, which also removes the temporaries of interrupted writes.
A destination changed behind fsmirror's back is only caught by such a compare:
use --verify-on-start, or --rescan-interval for a periodic one (off by
default: for a local destination it costs a full listing of both trees).

` + rsyncHelp,
		Example: `  fsmirror watch /srv/www /mnt/mirror/www
  fsmirror watch -v --exclude '*.swp' --delay 200ms ~/src /backup/src
  fsmirror watch /srv/www /mnt/mirror/www --to web2:/srv/www --to web3:/srv/www
  fsmirror watch --password-file ~/.nas-pw /srv/www rsync://backup@nas/mirror/www
  fsmirror watch --rsync --bwlimit 5m /srv/www deploy@old-server:/var/www`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.workersSet = cmd.Flags().Changed("workers")
			return runWatch(cmd.Context(), f, args[:len(args)-1], args[len(args)-1], a)
		},
	}
	f.register(cmd, "initial sync: skip files by content, not by size and mtime")
	fl := cmd.Flags()
	fl.DurationVar(&f.delay, "delay", 0, "wait until a path is quiet this long before mirroring it")
	fl.DurationVar(&f.maxDelay, "max-delay", 5*time.Second, "copy a file still open for writing after this long anyway")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "keep the index of what each destination holds in `DIR`")
	fl.BoolVar(&f.verifyOnStart, "verify-on-start", false, "compare the whole destination at start instead of trusting the index")
	fl.DurationVar(&f.rescanInterval, "rescan-interval", 0, "compare the whole destination this often, to catch changes made to it behind fsmirror's back (0: never)")
	fl.BoolVar(&f.debugEvents, "debug-events", false, "log every event of the kernel's watcher (a lot)")
	fl.StringVar(&f.watcher, "watcher", "inotify", "see changes with `KIND`: inotify, fanotify, or auto (fanotify when it can)")
	return cmd
}

func runWatch(ctx context.Context, f watchFlags, srcs []string, dest string, a *app) error {
	spec := syncSpec{srcs: srcs, dests: append([]string{dest}, f.to...), f: f, log: a.log, stdout: a.stdout}
	if err := spec.prepare(); err != nil {
		return err
	}
	r, err := startSync(ctx, spec)
	if err != nil {
		return err
	}
	<-r.done
	return r.err
}

// fanoutBuffer is how many batches of events a destination may be behind
// the others before it is sent a rescan instead.
const fanoutBuffer = 256

// source is one watched source tree and the mirrors of it.
type source struct {
	path      string
	w         *watch.Watcher
	root      *fsys.Root
	mirrors   []*mirror
	overflows atomic.Int64 // kernel queue overflows seen
}

// planSources plans the pairs of every destination and groups them by
// source, refusing a destination given twice.
func planSources(srcs, dests []string, relative bool, o all.Options) ([]*source, error) {
	var sources []*source
	bySrc := map[string]*source{}
	seen := map[string]bool{}
	for _, d := range dests {
		pairs, err := planPairs(srcs, d, relative, o)
		if err != nil {
			return nil, err
		}
		for _, p := range pairs {
			key := p.src + "\x00" + p.dst.Key()
			if seen[key] {
				return nil, fmt.Errorf("destination %s is given twice", p.dst)
			}
			seen[key] = true
			s := bySrc[p.src]
			if s == nil {
				s = &source{path: p.src}
				bySrc[p.src] = s
				sources = append(sources, s)
			}
			s.mirrors = append(s.mirrors, &mirror{p: p, src0: s})
		}
	}
	return sources, nil
}

// mirror is one source mirrored to one destination.
type mirror struct {
	p       pair
	src0    *source // the source it mirrors
	w       *watch.Watcher
	src     *fsys.Root
	rep     *reporter
	idx     *index.Index
	trusted bool
	dst     fsmirror.Target
	syncer  fsmirror.PathSyncer // instead of idx and dst, for rsync
	report  func(engine.Event)  // rep.report, safe for concurrent calls (rsync)
	stats   engine.Stats
	result  error

	// For status: what it is doing, and the engine to ask for more.
	state   atomic.Pointer[engine.State]
	since   atomic.Int64 // unix ns when the current state began
	live    atomic.Pointer[engine.Live]
	batcher atomic.Pointer[engine.Batcher]
}

// watchPair runs the initial sync of one source and then mirrors its
// changes until ctx ends.
func watchPair(ctx context.Context, m *mirror, events <-chan []watch.Event, spec *syncSpec, initialDone func()) error {
	defer initialDone() // at the latest
	f, flt := &spec.f, spec.flt
	p, w, src, idx, trusted, rep, stats := m.p, m.w, m.src, m.idx, m.trusted, m.rep, &m.stats
	dst := idx.Wrap(m.dst, trusted)
	var live *engine.Live
	opt := engine.LiveOptions{
		Options: engine.Options{
			Workers:  f.workersFor(p.dst),
			NoDelete: f.noDelete,
			Checksum: f.checksum,
			Filter:   flt,
			Size:     f.size,
			AsRoot:   unix.Geteuid() == 0,
			Report:   rep.report,
		},
		Delay:    f.delay,
		MaxDelay: f.maxDelay,
	}
	// After the destination was unreachable, the index cannot tell what
	// the ops in flight did: compare the whole destination, listing it,
	// until one compare lists everything.
	var recovering atomic.Bool
	opt.OnBackUp = func() {
		dst.SetTrusted(false)
		if recovering.CompareAndSwap(false, true) {
			idx.MarkIncomplete(errors.New("the destination was unreachable and no full compare has succeeded since; the next start compares again"))
			go func() {
				completeIndex(ctx, live, dst, idx, stats)
				recovering.Store(false)
			}()
		}
	}
	live = engine.NewLive(src, dst, opt, stats)
	m.live.Store(live)
	start := time.Now()
	m.setState(engine.StateInitialSync)
	if err := live.InitialSync(ctx); err != nil {
		return err
	}
	if !trusted {
		if n := stats.Unlisted.Load(); n > 0 {
			// What the index holds below those directories may be left
			// from a crashed run: keep listing the destination, and
			// compare again until one compare lists everything.
			idx.MarkIncomplete(fmt.Errorf("no full compare of the destination succeeded yet (%d directories could not be listed); the next start compares again", n))
			go completeIndex(ctx, live, dst, idx, stats)
		} else {
			dst.SetTrusted(true) // the compare has rebuilt the index
		}
	}
	how := "from the index"
	if !trusted {
		how = "by comparing the destination"
	}
	spec.log.Info(fmt.Sprintf("watching %s (%s), mirroring to %s; initial sync %s took %s, %d files written, %d errors",
		p.src, describeWatcher(w), p.dst, how, time.Since(start).Round(time.Millisecond), stats.Written.Load(), stats.Errors.Load()))
	m.setState(engine.StateWatching)
	initialDone()
	if f.rescanInterval > 0 {
		go periodicRescan(ctx, live, dst, f.rescanInterval, stats)
	}
	err := live.Run(ctx, events)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		err = w.Err()
	}
	return err
}

// periodicRescan compares the whole destination every interval, listing it
// instead of trusting the index, to catch changes made behind our back.
func periodicRescan(ctx context.Context, live *engine.Live, dst *index.Target, interval time.Duration, stats *engine.Stats) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dst.SetTrusted(false)
		complete, ok := fullCompare(ctx, live, stats)
		if !ok {
			return
		}
		if complete {
			dst.SetTrusted(true)
		}
	}
}

// completeIndex repeats the full compare of the destination, backing off,
// until one lists every directory (a first one found some gone mid-way
// under churn); then the index is trusted again.
func completeIndex(ctx context.Context, live *engine.Live, dst *index.Target, idx *index.Index, stats *engine.Stats) {
	wait := 200 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		complete, ok := fullCompare(ctx, live, stats)
		if !ok {
			return
		}
		if complete {
			dst.SetTrusted(true)
			idx.ClearIncomplete()
			return
		}
		wait = min(2*wait, time.Minute)
	}
}

// fullCompare has the running live mirror compare the whole tree with the
// destination and waits for it. complete says every directory could be
// listed; ok is false if ctx ended first.
func fullCompare(ctx context.Context, live *engine.Live, stats *engine.Stats) (complete, ok bool) {
	before := stats.Unlisted.Load()
	done := make(chan struct{})
	if !live.Rescan(ctx, "", func() { close(done) }) {
		return false, false
	}
	select {
	case <-done:
		return stats.Unlisted.Load() == before, true
	case <-ctx.Done():
		return false, false
	}
}

// limitRescan is how often directories that could not be watched for want
// of inotify watches are rescanned; tests shorten it.
var limitRescan = time.Minute

// watchOptions returns the options of the watcher of src. A watcher that
// runs out of inotify watches keeps going and says so in the log.
func watchOptions(src string, backend watch.Backend, flt *filter.Filter, log *slog.Logger) watch.Options {
	return watch.Options{
		Exclude:     flt.Excluded,
		Backend:     backend,
		LimitRescan: limitRescan,
		OnLimit: func(e *watch.LimitError) {
			switch {
			case e == nil:
				log.Info(fmt.Sprintf("%s: every directory is watched again", src))
			case backend == watch.Inotify:
				log.Warn(fmt.Sprintf("%s: warning: %v (or use --watcher fanotify, as root)", src, e))
			default:
				log.Warn(fmt.Sprintf("%s: warning: %v", src, e))
			}
		},
	}
}

// describeWatcher says how w watches its tree.
func describeWatcher(w *watch.Watcher) string {
	if w.Backend() == watch.Fanotify {
		return "fanotify, whole file system"
	}
	return fmt.Sprintf("%d directories, inotify", w.Watches())
}
