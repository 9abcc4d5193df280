package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/fsmirror/fsmirror/config"
	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/target/all"
	"github.com/fsmirror/fsmirror/watch"
)

// syncSpec is one live sync: sources, destinations and the settings of
// watch. `fsmirror watch` runs one, `fsmirror run` one per [[sync]] block
// of its config file.
type syncSpec struct {
	name   string   // "" for watch
	srcs   []string // as given
	dests  []string // DEST, then the --to ones
	f      watchFlags
	cfg    *config.Sync // where it came from, for run
	log    *slog.Logger // with the sync's name, for run
	stdout io.Writer    // for -v in watch; nil: ops are logged at debug level

	// Set by prepare.
	flt     *filter.Filter
	opts    all.Options
	backend watch.Backend
}

// prepare checks the settings that need no filesystem and compiles the
// filter.
func (s *syncSpec) prepare() error {
	f := &s.f
	if f.workers < 1 {
		return setupErr("--workers must be at least 1")
	}
	if f.delay < 0 || f.maxDelay <= 0 || f.rescanInterval < 0 {
		return setupErr("--delay and --rescan-interval must not be negative and --max-delay must be positive")
	}
	if err := f.parseSizes(); err != nil {
		return err
	}
	backend, err := watch.ParseBackend(f.watcher)
	if err != nil {
		return setupErr("--watcher: %v", err)
	}
	s.backend = backend
	flt, err := f.excludes.filter()
	if err != nil {
		return err
	}
	s.flt = flt
	if s.cfg == nil {
		s.opts = f.dest.options()
	}
	s.opts.RsyncArgs = append(s.opts.RsyncArgs, rsyncSizeArgs(f.size)...)
	return nil
}

// runningSync is a started syncSpec.
type runningSync struct {
	spec    syncSpec
	sources []*source
	mirrors []*mirror
	started time.Time
	cancel  context.CancelFunc
	ready   chan struct{} // closed when every initial sync has ended, well or not
	done    chan struct{} // closed when it has stopped and closed everything
	err     error         // why it stopped, once done
}

// startSync sets up spec, watches first and then every destination, and
// starts its mirrors. A setup error (a source that does not exist, a
// destination that cannot be opened) is returned before anything is
// written. The sync runs until ctx ends or stop is called.
func startSync(ctx context.Context, spec syncSpec) (_ *runningSync, err error) {
	sources, err := planSources(spec.srcs, spec.dests, spec.f.relative, spec.opts)
	if err != nil {
		return nil, &exitError{code: exitSetup, err: err}
	}
	r := &runningSync{spec: spec, sources: sources, started: time.Now(), ready: make(chan struct{}), done: make(chan struct{})}
	for _, s := range sources {
		r.mirrors = append(r.mirrors, s.mirrors...)
	}
	for _, m := range r.mirrors {
		m.setState(engine.StateStarting)
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	// All watches first, then the syncs: a setup error (no watches left)
	// is found before anything is written.
	f := &r.spec.f
	fanout := len(spec.dests) > 1
	for _, s := range sources {
		start := time.Now()
		if s.w, err = watch.New(s.path, watchOptions(s.path, spec.backend, spec.flt, spec.log)); err != nil {
			return nil, &exitError{code: exitSetup, err: fmt.Errorf("watch %s: %w", s.path, err)}
		}
		if f.verbose {
			spec.log.Info(fmt.Sprintf("%s: %s, set up in %s", s.path, describeWatcher(s.w), time.Since(start).Round(time.Microsecond)))
		}
		if s.root, err = fsys.OpenRoot(s.path, true); err != nil {
			return nil, &exitError{code: exitSetup, err: err}
		}
		for _, m := range s.mirrors {
			m.w, m.src = s.w, s.root
			if loc, ok := m.p.dst.(all.Syncer); ok {
				if err := m.openRsync(ctx, loc, &r.spec); err != nil {
					return nil, err
				}
				if fanout {
					m.rep.to = m.p.dst.String()
				}
				continue
			}
			if m.idx, m.trusted, err = openIndex(f.stateDir, m.p, f.verifyOnStart, spec.log); err != nil {
				return nil, &exitError{code: exitSetup, err: fmt.Errorf("index of %s: %w", m.p.dst, err)}
			}
			m.rep = r.spec.reporter(m.p)
			if fanout {
				m.rep.to = m.p.dst.String()
			}
			if m.dst, err = m.p.dst.Open(ctx, all.OpenOptions{Source: m.p.src, Create: true}); err != nil {
				return nil, &exitError{code: exitSetup, err: err}
			}
		}
	}
	ctx, r.cancel = context.WithCancel(ctx)
	var wg, initial sync.WaitGroup
	for _, s := range sources {
		// One watcher per source; each destination has its own queue and
		// workers, and one that falls behind or is down holds up no other.
		in := r.spec.tap(ctx, s)
		events := []<-chan []watch.Event{in}
		if len(s.mirrors) > 1 {
			events = engine.Fanout(in, len(s.mirrors), fanoutBuffer)
		}
		for i, m := range s.mirrors {
			wg.Add(1)
			initial.Add(1)
			initialDone := sync.OnceFunc(initial.Done)
			go func() {
				defer wg.Done()
				if m.syncer != nil {
					m.result = watchRsync(ctx, m, events[i], &r.spec, initialDone)
				} else {
					m.result = watchPair(ctx, m, events[i], &r.spec, initialDone)
				}
				if m.result != nil && !errors.Is(m.result, context.Canceled) {
					m.stats.RecordError(m.result)
					m.setState(engine.StateFailed)
				} else {
					m.setState(engine.StateStopped)
				}
			}()
		}
	}
	go func() {
		initial.Wait()
		close(r.ready)
	}()
	go func() {
		wg.Wait()
		r.err = r.result()
		r.close()
		r.cancel()
		close(r.done)
	}()
	return r, nil
}

// result is the error a stopped sync ends with.
func (r *runningSync) result() error {
	var errs []error
	code := exitPartial
	for _, m := range r.mirrors {
		if m.result != nil && !errors.Is(m.result, context.Canceled) {
			errs = append(errs, m.result)
			// A setup error of an initial sync (an rsync destination
			// that refuses the password) wrote nothing: exit 2.
			if ee := (*exitError)(nil); errors.As(m.result, &ee) && ee.code == exitSetup && len(r.mirrors) == 1 {
				code = exitSetup
			}
		}
	}
	if len(errs) > 0 {
		return &exitError{code: code, err: errors.Join(errs...)}
	}
	return nil
}

// ended reports whether the sync has stopped, by itself or not.
func (r *runningSync) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop stops the sync, finishing the work in flight, and waits for it.
func (r *runningSync) stop() {
	r.cancel()
	<-r.done
}

// close closes whatever startSync opened.
func (r *runningSync) close() {
	for _, s := range r.sources {
		if s.w != nil {
			s.w.Close()
		}
		if s.root != nil {
			s.root.Close()
		}
		for _, m := range s.mirrors {
			if m.syncer != nil {
				m.syncer.Close()
			}
			if m.dst != nil {
				m.dst.Close()
			}
			if m.idx == nil {
				continue
			}
			if err := m.idx.Close(); err != nil {
				r.spec.log.Error(fmt.Sprintf("close index of %s: %v", m.p.dst, err))
			}
		}
	}
}

// reporter returns the reporter of the mirror of pair p.
func (s *syncSpec) reporter(p pair) *reporter {
	return &reporter{stdout: s.stdout, log: s.log, verbose: s.f.verbose, prefix: p.prefix, source: p.src}
}

// tap passes the watcher's events on, counting the overflows of the
// kernel's queue and, with --debug-events, logging each event.
func (s *syncSpec) tap(ctx context.Context, src *source) <-chan []watch.Event {
	in := src.w.Events()
	out := make(chan []watch.Event, 1)
	debug := s.f.debugEvents
	go func() {
		defer close(out)
		for batch := range in {
			for _, ev := range batch {
				if ev.Overflow {
					src.overflows.Add(1)
				}
				if debug {
					s.log.Info("event", "source", src.path, "event", ev.String())
				}
			}
			select {
			case out <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// setState records what the mirror does now.
func (m *mirror) setState(st engine.State) {
	m.state.Store(&st)
	m.since.Store(time.Now().UnixNano())
}

// rsyncSizeArgs are the options that make rsync leave out the files that
// size leaves out.
func rsyncSizeArgs(size filter.Size) []string {
	var args []string
	if size.Min > 0 {
		args = append(args, fmt.Sprintf("--min-size=%d", size.Min))
	}
	if size.Max > 0 {
		args = append(args, fmt.Sprintf("--max-size=%d", size.Max))
	}
	return args
}
