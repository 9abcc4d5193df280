package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror/config"
	"github.com/fsmirror/fsmirror/engine"
)

type runFlags struct {
	config      string
	name        string
	stateDir    string
	metrics     string
	verbose     bool
	debugEvents bool
	readyFd     int // for start: write "ready" there once every initial sync is done
}

const configHelp = `The config file is TOML: any number of [[sync]] blocks, each one sync of
one or more sources to one or more destinations, with its own settings (the
flags of watch, as keys). 'fsmirror examples' prints a commented example for
each kind of destination; 'fsmirror check -c FILE' checks a file and tells
what it would do. Every mistake is reported with the file, line and key.`

func (f *runFlags) registerConfig(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "the config `FILE` (required)")
	cmd.MarkFlagRequired("config")
}

func (f *runFlags) registerName(cmd *cobra.Command, usage string) {
	cmd.Flags().StringVar(&f.name, "name", defaultInstance, usage)
}

func newRunCmd(a *app) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run -c FILE [flags]",
		Short: "Run every sync a config file describes, in the foreground",
		Long: `Run every sync of the config file FILE, in the foreground, until SIGINT or
SIGTERM: for each, an initial sync, then live mirroring, as watch does.

` + configHelp + `

The instance answers 'fsmirror status', 'reload' and 'stop' on a control
socket in the runtime directory ($FSMIRROR_RUNTIME_DIR, else /run/fsmirror
for root, else $XDG_RUNTIME_DIR/fsmirror), named after --name, next to its
pid file. SIGHUP (or 'fsmirror reload') reads the config file again and
applies it without dropping work: syncs that did not change keep running,
changed ones are restarted (their indexes make that cheap), removed ones
stop, new ones start; a config with mistakes is refused and the running one
kept. Under systemd (Type=notify) it says READY=1 once every initial sync is
done, and sends WATCHDOG=1 pings when WatchdogSec is set.

With --metrics ADDR, Prometheus metrics are served at http://ADDR/metrics.`,
		Example: `  fsmirror run -c /etc/fsmirror/fsmirror.toml
  fsmirror run -c web.toml --name web --metrics 127.0.0.1:9150`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfig(cmd.Context(), f, a)
		},
	}
	f.registerConfig(cmd)
	f.registerName(cmd, "the instance's `NAME`, for status, reload and stop")
	fl := cmd.Flags()
	fl.StringVar(&f.stateDir, "state-dir", "", "keep the indexes in `DIR` (default: the config's state-dir, else as watch)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on `ADDR` (host:port; port 0 picks one, logged)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log each change")
	fl.BoolVar(&f.debugEvents, "debug-events", false, "log every event of the kernel's watcher (a lot)")
	fl.IntVar(&f.readyFd, "ready-fd", 0, "")
	fl.MarkHidden("ready-fd")
	return cmd
}

// loadConfig loads the config file, logging each mistake on a line of
// its own.
func loadConfig(path string, log *slog.Logger) (*config.Config, error) {
	c, err := config.Load(path)
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			log.Error(e.Error())
		}
		return nil, &exitError{code: exitSetup, err: fmt.Errorf("%s: %d mistakes; nothing was started", path, len(errs))}
	case err != nil:
		return nil, setupErr("%v", err)
	}
	return c, nil
}

// specs turns the syncs of a config into the specs of live syncs.
func specs(c *config.Config, f runFlags, log *slog.Logger) ([]syncSpec, error) {
	stateDir := f.stateDir
	if stateDir == "" {
		stateDir = c.StateDir
	}
	if stateDir == "" {
		stateDir = defaultStateDir()
	}
	var out []syncSpec
	dests := map[string]*config.Sync{}
	for _, s := range c.Syncs {
		spec := specOf(s, stateDir, f, log)
		if err := spec.prepare(); err != nil {
			return nil, s.Errorf("", "%v", err)
		}
		// Check the sources and destinations now, before anything runs:
		// what is missing, nested, or given twice.
		sources, err := planSources(spec.srcs, spec.dests, spec.f.relative, spec.opts)
		if err != nil {
			return nil, s.Errorf("", "%v", err)
		}
		for _, src := range sources {
			for _, m := range src.mirrors {
				k := m.p.dst.Key()
				if other, dup := dests[k]; dup && other != s {
					return nil, s.Errorf("destination", "%s is also a destination of sync %q (%s): two syncs must not write one tree", m.p.dst, other.Name, other.Where("destination"))
				}
				dests[k] = s
			}
		}
		out = append(out, spec)
	}
	return out, nil
}

// specOf makes the spec of a config's sync.
func specOf(s *config.Sync, stateDir string, f runFlags, log *slog.Logger) syncSpec {
	w := watchFlags{
		delay:          s.Delay,
		maxDelay:       s.MaxDelay,
		stateDir:       stateDir,
		verifyOnStart:  s.VerifyOnStart,
		rescanInterval: s.RescanInterval,
		debugEvents:    f.debugEvents,
		watcher:        s.Watcher,
	}
	w.excludes.patterns = s.Exclude
	w.workers = engine.DefaultWorkers()
	if s.Workers > 0 {
		w.workers, w.workersSet = s.Workers, true
	}
	w.noDelete = !s.Delete
	w.checksum = s.Checksum
	w.verbose = f.verbose
	w.relative = s.Relative
	w.size = s.Size
	return syncSpec{name: s.Name, srcs: s.Sources, dests: s.Destinations, f: w, cfg: s,
		log: log.With("sync", s.Name), opts: s.Dest}
}

// slot is one sync of a running config: running, or failed to start.
type slot struct {
	spec syncSpec
	r    *runningSync // nil if it failed to start
	err  error        // why it failed to start
}

// instance is a running config: its syncs, and the control socket that
// status, reload and stop talk to.
type instance struct {
	name    string
	file    string
	flags   runFlags
	log     *slog.Logger
	started time.Time
	ctx     context.Context // of the syncs

	mu    sync.Mutex // guards slots, for status and metrics
	slots []*slot

	requests chan controlRequest // to the main loop: reload and stop
	ended    chan struct{}       // a sync ended by itself
}

func runConfig(ctx context.Context, f runFlags, a *app) error {
	if !config.ValidName(f.name) {
		return setupErr("--name %q: %s", f.name, nameRule)
	}
	log := newLogger(a.stderr, a.logf.format, f.verbose)
	file, err := filepath.Abs(f.config)
	if err != nil {
		return setupErr("%v", err)
	}
	c, err := loadConfig(f.config, log)
	if err != nil {
		return err
	}
	sp, err := specs(c, f, log)
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	in := &instance{name: f.name, file: file, flags: f, log: log, started: time.Now(), ctx: ctx,
		requests: make(chan controlRequest), ended: make(chan struct{}, 1)}
	ctl, err := listenControl(in)
	if err != nil {
		return err
	}
	defer ctl.close()
	notify := newNotifier()
	defer notify.send("STOPPING=1")
	stopWatchdog := notify.startWatchdog()
	defer stopWatchdog()
	if f.metrics != "" {
		stop, err := serveMetrics(f.metrics, in)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Start every sync; a setup error of one stops them all: at start,
	// nothing half-configured runs.
	for _, spec := range sp {
		r, err := startSync(ctx, spec)
		if err != nil {
			in.stopAll()
			return &exitError{code: exitSetup, err: spec.cfg.Errorf("", "%v", errOf(err))}
		}
		in.add(&slot{spec: spec, r: r})
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ready := in.allReady()
	for {
		select {
		case <-ready:
			ready = nil
			n := 0
			for _, s := range in.slots {
				if s.r != nil {
					n += len(s.r.mirrors)
				}
			}
			log.Info(fmt.Sprintf("ready: %d syncs, %d destinations, instance %s (pid %d)", len(in.slots), n, in.name, os.Getpid()))
			notify.send("READY=1\nSTATUS=mirroring")
			signalReady(f.readyFd)
		case <-hup:
			msg, err := in.reload(notify)
			logReload(log, msg, err)
		case req := <-in.requests:
			switch req.Cmd {
			case "reload":
				msg, err := in.reload(notify)
				logReload(log, msg, err)
				req.reply(controlReply{OK: err == nil, Message: msg, Error: errString(err)})
			case "stop":
				log.Info("stopping, as asked")
				req.reply(controlReply{OK: true, Message: "stopping"})
				in.stopAll()
				return in.result()
			}
		case <-in.ended:
			if in.allEnded() {
				return in.result()
			}
		case <-ctx.Done():
			in.stopAll()
			return in.result()
		}
	}
}

// errOf returns the error an exitError carries.
func errOf(err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		return ee.err
	}
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func logReload(log *slog.Logger, msg string, err error) {
	if err != nil {
		log.Error(err.Error())
		return
	}
	log.Info(msg)
}

// signalReady tells `fsmirror start`, if it waits on fd, that the instance
// is ready.
func signalReady(fd int) {
	if fd <= 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	f.WriteString("ready\n")
	f.Close()
}

// add adds a slot and has the main loop told when its sync ends.
func (in *instance) add(s *slot) {
	in.mu.Lock()
	in.slots = append(in.slots, s)
	in.mu.Unlock()
	if s.r != nil {
		go func() {
			<-s.r.done
			select {
			case in.ended <- struct{}{}:
			default:
			}
		}()
	}
}

// allReady returns a channel closed once every sync started has done its
// initial sync.
func (in *instance) allReady() <-chan struct{} {
	ch := make(chan struct{})
	var readies []<-chan struct{}
	for _, s := range in.slots {
		if s.r != nil {
			readies = append(readies, s.r.ready)
		}
	}
	go func() {
		for _, r := range readies {
			<-r
		}
		close(ch)
	}()
	return ch
}

func (in *instance) allEnded() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.slots {
		if s.r != nil {
			select {
			case <-s.r.done:
			default:
				return false
			}
		}
	}
	return true
}

// stopAll stops every sync, at once, and waits for them.
func (in *instance) stopAll() {
	in.mu.Lock()
	slots := append([]*slot(nil), in.slots...)
	in.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		if s.r != nil {
			wg.Go(s.r.stop)
		}
	}
	wg.Wait()
}

// result is the outcome of the instance once every sync has stopped.
func (in *instance) result() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []error
	for _, s := range in.slots {
		if s.r == nil {
			continue
		}
		if err := s.r.err; err != nil {
			errs = append(errs, fmt.Errorf("sync %q: %w", s.spec.name, errOf(err)))
		}
	}
	if len(errs) > 0 {
		return &exitError{code: exitPartial, err: errors.Join(errs...)}
	}
	return nil
}

// reload reads the config file again and applies it: syncs that did not
// change keep running, changed ones are restarted, removed ones stopped,
// new ones started. A config with mistakes changes nothing.
func (in *instance) reload(notify *notifier) (string, error) {
	notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer notify.send("READY=1\nSTATUS=mirroring")
	log := in.log
	c, err := config.Load(in.file)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			log.Error(e.Error())
		}
		return "", fmt.Errorf("reload refused: %s has %d mistakes (above); the running config is kept", in.file, len(errs))
	}
	if err != nil {
		return "", fmt.Errorf("reload refused: %v; the running config is kept", err)
	}
	sp, err := specs(c, in.flags, log)
	if err != nil {
		return "", fmt.Errorf("reload refused: %v; the running config is kept", err)
	}
	in.mu.Lock()
	old := map[string]*slot{}
	for _, s := range in.slots {
		old[s.spec.name] = s
	}
	in.mu.Unlock()
	var kept, restarted, added, removed, failed []string
	var next []*slot
	var toStop []*slot
	var toStart []syncSpec
	seen := map[string]bool{}
	for _, spec := range sp {
		seen[spec.name] = true
		o := old[spec.name]
		switch {
		case o != nil && o.r != nil && !o.r.ended() && o.spec.cfg.Same(spec.cfg) && o.spec.f.stateDir == spec.f.stateDir:
			kept = append(kept, spec.name)
			next = append(next, o)
			continue
		case o != nil:
			restarted = append(restarted, spec.name)
			toStop = append(toStop, o)
		default:
			added = append(added, spec.name)
		}
		toStart = append(toStart, spec)
	}
	for name, o := range old {
		if !seen[name] {
			removed = append(removed, name)
			toStop = append(toStop, o)
		}
	}
	// Stopped first: a restarted sync opens the index its old self holds.
	var wg sync.WaitGroup
	for _, o := range toStop {
		if o.r != nil {
			wg.Go(o.r.stop)
		}
	}
	wg.Wait()
	in.mu.Lock()
	in.slots = nil
	in.mu.Unlock()
	for _, s := range next {
		in.mu.Lock()
		in.slots = append(in.slots, s)
		in.mu.Unlock()
	}
	for _, spec := range toStart {
		r, err := startSync(in.ctx, spec)
		if err != nil {
			err = spec.cfg.Errorf("", "%v", errOf(err))
			log.Error(err.Error())
			failed = append(failed, spec.name)
			in.add(&slot{spec: spec, err: err})
			continue
		}
		in.add(&slot{spec: spec, r: r})
	}
	msg := fmt.Sprintf("reloaded %s: %s", in.file, summary(map[string][]string{
		"unchanged": kept, "restarted": restarted, "added": added, "removed": removed}))
	if len(failed) > 0 {
		return msg, fmt.Errorf("%s; but %s failed to start (see the log)", msg, strings.Join(quoteAll(failed), ", "))
	}
	return msg, nil
}

func summary(groups map[string][]string) string {
	var parts []string
	for _, k := range []string{"unchanged", "restarted", "added", "removed"} {
		if names := groups[k]; len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(names), k, strings.Join(quoteAll(names), ", ")))
		}
	}
	if len(parts) == 0 {
		return "no syncs"
	}
	return strings.Join(parts, ", ")
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}
