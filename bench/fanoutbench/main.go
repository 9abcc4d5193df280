// Command fanoutbench measures fan-out to receivers: one `fsmirror watch`
// with -receivers fsmirror:// destinations (`--to`), each a `fsmirror serve`
// on 127.0.0.1 (TLS, token, its own root), while a writer creates small
// files at a steady -rate for -duration. One receiver is stopped
// (-stop-mode term: SIGTERM, then started again on the same port; pause:
// SIGSTOP, then SIGCONT) for -stop-for in the middle of the run.
//
// It reports, for each receiver, the rate at which the files reached it
// (files / time from the first write until it had them all) and its lag:
// the age of the oldest file written to the source that it does not have
// yet, sampled every -sample. The lag of the slowest receiver that stayed
// up is the figure that says whether the stopped one held the others up.
// Every wait is bounded, every receiver's tree is checked with
// testutil.Diff at the end (a wrong mirror is WRONG RESULT and exit 1), and
// timings are reported, never asserted.
//
// Usage:
//
//	go run ./bench/fanoutbench [-fsmirror PATH] [-dir /dev/shm] [-receivers 4] [-rate 1000] [-duration 30s] [-stop-for 10s] [-stop-mode term|pause]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

type config struct {
	fsmirror  string
	dir       string
	receivers int
	rate      int // files per second
	duration  time.Duration
	size      int // bytes per file
	dirs      int
	stopFor   time.Duration
	stopMode  string
	burst     int // files written as fast as possible after the steady phase
	sample    time.Duration
	timeout   time.Duration // bound of every wait
	keep      bool
}

func defaultConfig() config {
	return config{dir: "/dev/shm", receivers: 4, rate: 1000, duration: 30 * time.Second, size: 1024, dirs: 20,
		stopFor: 10 * time.Second, stopMode: "term", burst: 20000, sample: 50 * time.Millisecond, timeout: 180 * time.Second}
}

func main() {
	c := defaultConfig()
	flag.StringVar(&c.fsmirror, "fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
	flag.StringVar(&c.dir, "dir", c.dir, "directory for the source and the receivers' roots")
	flag.IntVar(&c.receivers, "receivers", c.receivers, "receivers, all destinations of one watch")
	flag.IntVar(&c.rate, "rate", c.rate, "files written per second")
	flag.DurationVar(&c.duration, "duration", c.duration, "how long files are written")
	flag.IntVar(&c.size, "size", c.size, "bytes per file")
	flag.DurationVar(&c.stopFor, "stop-for", c.stopFor, "how long the last receiver is stopped, from a third of -duration (0: never)")
	flag.StringVar(&c.stopMode, "stop-mode", c.stopMode, "how it is stopped: term (SIGTERM, then started again) or pause (SIGSTOP, then SIGCONT)")
	flag.IntVar(&c.burst, "burst", c.burst, "files then written as fast as possible, every receiver up (0: no burst)")
	flag.DurationVar(&c.timeout, "timeout", c.timeout, "bound of every wait")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "fanoutbench:", err)
		os.Exit(1)
	}
}

// receiver is one `fsmirror serve`.
type receiver struct {
	name string
	argv []string // with the port it first got, to start it again on it
	root string   // its --root; the mirror is root/tree
	addr string
	d    *benchutil.Daemon

	hi int // files 0..hi-1 have all arrived (the sampler's)
}

var listening = regexp.MustCompile(`serving on (\S+) `)

func startReceiver(r *receiver, timeout time.Duration) error {
	d, err := benchutil.StartDaemon(r.name, r.argv, func(line string) bool { return listening.MatchString(line) })
	if err != nil {
		return err
	}
	if err := d.WaitReady(context.Background(), timeout); err != nil {
		d.Stop(5*time.Second, func(error) bool { return true })
		return err
	}
	r.d = d
	if m := listening.FindStringSubmatch(d.Tail(50)); m != nil {
		r.addr = m[1]
	}
	if r.addr == "" {
		return fmt.Errorf("%s: no address in its output:\n%s", r.name, d.Tail(10))
	}
	return nil
}

func run(ctx context.Context, out io.Writer, c config) error {
	if c.receivers < 1 || c.rate < 1 || c.duration <= 0 || c.dirs < 1 {
		return errors.New("-receivers, -rate, -duration and the number of directories must be positive")
	}
	if c.stopMode != "term" && c.stopMode != "pause" {
		return fmt.Errorf("-stop-mode %q: want term or pause", c.stopMode)
	}
	work, binDir, cleanup, err := benchutil.WorkDirs(out, c.dir, "fanoutbench", c.keep)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := benchutil.FsmirrorBinary(ctx, out, c.fsmirror, binDir, "")
	if err != nil {
		return err
	}
	// One key and one token for every receiver: what is measured is the
	// fan-out, not the setup.
	keyDir := filepath.Join(work, "key")
	initOut, err := exec.CommandContext(ctx, bin, "serve", "init", "--dir", keyDir).Output()
	if err != nil {
		return fmt.Errorf("serve init: %w", err)
	}
	fp := strings.TrimSpace(string(initOut))
	if len(fp) != 64 {
		return fmt.Errorf("serve init printed %q", initOut)
	}
	token := filepath.Join(work, "token")
	if err := os.WriteFile(token, []byte("fanoutbench-token-0123456789abcdef\n"), 0o600); err != nil {
		return err
	}
	rs := make([]*receiver, c.receivers)
	for i := range rs {
		r := &receiver{name: fmt.Sprintf("r%d", i+1), root: filepath.Join(work, fmt.Sprintf("recv%d", i+1))}
		if err := os.Mkdir(r.root, 0o700); err != nil {
			return err
		}
		r.argv = []string{bin, "serve", "--listen", "127.0.0.1:0", "--root", r.root, "--allow", "bench=" + token + ":tree",
			"--key", filepath.Join(keyDir, "key.pem"), "--cert", filepath.Join(keyDir, "cert.pem")}
		if err := startReceiver(r, c.timeout); err != nil {
			return err
		}
		r.argv[3] = r.addr // a restart listens where the watch expects it
		rs[i] = r
	}
	defer func() {
		for _, r := range rs {
			if r != nil && r.d != nil && r.d.Alive() {
				syscall.Kill(r.d.Pid(), syscall.SIGCONT)
				r.d.Stop(10*time.Second, func(error) bool { return true })
			}
		}
	}()

	src := filepath.Join(work, "src")
	dirs := make([]string, c.dirs)
	for i := range dirs {
		dirs[i] = filepath.Join(src, fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return err
		}
	}
	watchArgv := []string{bin, "watch", "--state-dir", filepath.Join(work, "state"), "--fingerprint", fp, "--token-file", token,
		src, "fsmirror://" + rs[0].addr + "/"}
	for _, r := range rs[1:] {
		watchArgv = append(watchArgv, "--to", "fsmirror://"+r.addr+"/")
	}
	var ready int
	w, err := benchutil.StartDaemon("fsmirror watch", watchArgv, func(line string) bool {
		if strings.HasPrefix(line, "fsmirror: watching ") {
			ready++
		}
		return ready == len(rs)
	})
	if err != nil {
		return err
	}
	if err := w.WaitReady(context.Background(), c.timeout); err != nil {
		w.Stop(5*time.Second, func(error) bool { return true })
		return err
	}
	defer func() {
		if note := w.Stop(30*time.Second, func(err error) bool { return err == nil }); note != "" {
			fmt.Fprintln(out, "note:", note)
		}
	}()

	fmt.Fprintf(out, "machine: %s, %d CPUs, %s; trees in %s (%s)\n", benchutil.CPUModel(), runtime.NumCPU(), benchutil.Kernel(), c.dir, benchutil.FSType(c.dir))
	fmt.Fprintf(out, "load average before: %s\n", benchutil.LoadAverage())
	fmt.Fprintf(out, "one fsmirror watch, %d destinations: fsmirror serve on 127.0.0.1 (TLS 1.3, token), one process each\n", len(rs))

	b := &bench{c: c, out: out, rs: rs, dirs: dirs, watch: w}
	paced := max(1, int(int64(c.rate)*int64(c.duration)/int64(time.Second)))
	b.created = make([]time.Time, paced+c.burst)
	fmt.Fprintf(out, "\n1. steady: %d files of %d B in %d directories, %d files/s for %s", paced, c.size, c.dirs, c.rate, c.duration)
	if c.stopFor > 0 {
		how := "SIGTERM, then started again on the same port"
		if c.stopMode == "pause" {
			how = "SIGSTOP, then SIGCONT"
		}
		fmt.Fprintf(out, "; %s is stopped at +%s for %s (%s)", rs[len(rs)-1].name, c.duration/3, c.stopFor, how)
	}
	fmt.Fprintln(out)
	steady, err := b.phase(ctx, 0, paced, c.rate, c.stopFor > 0)
	if err != nil {
		return err
	}
	steady.report(b)
	if c.burst > 0 {
		fmt.Fprintf(out, "\n2. burst: %d more files of %d B, written as fast as possible, every receiver up\n", c.burst, c.size)
		burst, err := b.phase(ctx, paced, paced+c.burst, 0, false)
		if err != nil {
			return err
		}
		burst.report(b)
	}

	// Exact, every one of them.
	wrong := false
	for _, r := range rs {
		var diffs []string
		var err error
		for range 50 { // the last directory times may trail the last file
			diffs, err = testutil.Diff(src, filepath.Join(r.root, "tree"), testutil.DiffOptions{Owner: os.Geteuid() == 0})
			if err == nil && len(diffs) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || len(diffs) > 0 {
			wrong = true
			fmt.Fprintf(out, "WRONG RESULT: %s is not a mirror of the source: %v%s\n", r.name, err, benchutil.FormatDiffs(diffs))
		}
	}
	if !wrong {
		fmt.Fprintf(out, "\nevery receiver's tree is an exact mirror of the source (%s)\n", benchutil.CheckedAttrs())
	}
	fmt.Fprintf(out, "load average after: %s\n", benchutil.LoadAverage())
	if wrong {
		return errors.New("WRONG RESULT")
	}
	return nil
}

// bench is what the phases of a run share.
type bench struct {
	c       config
	out     io.Writer
	rs      []*receiver
	dirs    []string
	watch   *benchutil.Daemon
	created []time.Time // when file k was written, for k < written
}

// phaseResult is what one phase measured.
type phaseResult struct {
	files     int
	writeTime time.Duration
	stopped   *receiver // nil if none was stopped
	downFrom  time.Duration
	downTo    time.Duration
	per       map[*receiver]*lagStats
}

// lagStats is one receiver's view of a phase.
type lagStats struct {
	allAt   time.Duration   // from the first write of the phase until it had every file
	lags    []time.Duration // sampled
	lagsOn  []time.Duration // sampled while the stopped receiver was down
	caughtA time.Duration   // stopped one: from its restart until it had every file written so far
}

// phase writes files from..to-1 at rate files/s (0: as fast as possible),
// stopping the last receiver a third of the way if stop is set, and samples
// every receiver's lag until each has every file.
func (b *bench) phase(ctx context.Context, from, to, rate int, stop bool) (*phaseResult, error) {
	c := b.c
	res := &phaseResult{files: to - from, per: map[*receiver]*lagStats{}}
	for _, r := range b.rs {
		res.per[r] = &lagStats{}
	}
	var written atomic.Int64
	written.Store(int64(from))
	var down atomic.Bool
	var downFrom, downTo atomic.Int64 // time.Duration from t0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		data := make([]byte, c.size)
		for k := from; k < to; k++ {
			if rate > 0 {
				if d := time.Until(t0.Add(time.Duration(k-from) * time.Second / time.Duration(rate))); d > 0 && !sleep(d) {
					return
				}
			}
			copy(data, fmt.Sprintf("file %d\n", k))
			if err := os.WriteFile(filepath.Join(b.dirs[k%len(b.dirs)], fmt.Sprintf("f%07d", k)), data, 0o644); err != nil {
				errc <- err
				return
			}
			b.created[k] = time.Now()
			written.Store(int64(k + 1))
		}
	}()
	if stop {
		res.stopped = b.rs[len(b.rs)-1]
		stopped := res.stopped
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleep(time.Until(t0.Add(c.duration / 3))) {
				return
			}
			downFrom.Store(int64(time.Since(t0)))
			down.Store(true)
			if c.stopMode == "pause" {
				syscall.Kill(stopped.d.Pid(), syscall.SIGSTOP)
			} else {
				stopped.d.Stop(10*time.Second, func(error) bool { return true })
			}
			sleep(c.stopFor)
			if c.stopMode == "pause" {
				syscall.Kill(stopped.d.Pid(), syscall.SIGCONT)
			} else if err := startReceiver(stopped, c.timeout); err != nil {
				errc <- fmt.Errorf("start %s again: %w", stopped.name, err)
			}
			downTo.Store(int64(time.Since(t0)))
			down.Store(false)
		}()
	}
	// The sampler: until every receiver has every file, or the bound.
	path := func(r *receiver, k int) string {
		return filepath.Join(r.root, "tree", fmt.Sprintf("d%02d", k%len(b.dirs)), fmt.Sprintf("f%07d", k))
	}
	deadline := t0.Add(c.duration + c.stopFor + c.timeout)
	tick := time.NewTicker(c.sample)
	defer tick.Stop()
	for {
		now := time.Now()
		n := int(written.Load())
		done := n == to
		for _, r := range b.rs {
			st := res.per[r]
			for r.hi < n {
				if _, err := os.Lstat(path(r, r.hi)); err != nil {
					break
				}
				r.hi++
			}
			var lag time.Duration
			if r.hi < n {
				lag = now.Sub(b.created[r.hi])
				done = false
			} else if r.hi == to && st.allAt == 0 {
				st.allAt = now.Sub(t0)
			}
			st.lags = append(st.lags, lag)
			if down.Load() {
				st.lagsOn = append(st.lagsOn, lag)
			}
			if back := time.Duration(downTo.Load()); r == res.stopped && back > 0 && st.caughtA == 0 && r.hi == n {
				st.caughtA = now.Sub(t0) - back
			}
		}
		if done && !down.Load() {
			break
		}
		if now.After(deadline) {
			var missing []string
			for _, r := range b.rs {
				if r.hi < to {
					missing = append(missing, fmt.Sprintf("%s has %d of files %d..%d in order", r.name, r.hi-from, from, to-1))
				}
			}
			return nil, fmt.Errorf("TIMEOUT after %s: %s; watch said:\n%s", time.Since(t0).Round(time.Second), strings.Join(missing, ", "), b.watch.Tail(20))
		}
		select {
		case err := <-errc:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	res.writeTime = b.created[to-1].Sub(t0)
	res.downFrom, res.downTo = time.Duration(downFrom.Load()), time.Duration(downTo.Load())
	return res, nil
}

// report prints a phase's table and the figures that matter.
func (res *phaseResult) report(b *bench) {
	out := b.out
	fmt.Fprintf(out, "the writer took %s (%.0f files/s)\n", benchutil.Secs(res.writeTime), float64(res.files)/res.writeTime.Seconds())
	tw := benchutil.NewTable(out)
	fmt.Fprintf(tw, "receiver\tall files at\tfiles/s\tlag p50\tlag p99\tlag max")
	if res.stopped != nil {
		fmt.Fprintf(tw, "\tlag max while %s was down", res.stopped.name)
	}
	fmt.Fprintf(tw, "\t\n")
	var slowest *receiver
	var slowestAll, lagDown time.Duration
	for _, r := range b.rs {
		st := res.per[r]
		name := r.name
		if r == res.stopped {
			name += " (stopped)"
		} else {
			if slowest == nil || pct(st.lags, 100) > pct(res.per[slowest].lags, 100) {
				slowest = r
			}
			slowestAll = max(slowestAll, st.allAt)
			lagDown = max(lagDown, pct(st.lagsOn, 100))
		}
		fmt.Fprintf(tw, "%s\t+%s\t%.0f\t%s\t%s\t%s", name, benchutil.Secs(st.allAt), float64(res.files)/st.allAt.Seconds(),
			msec(pct(st.lags, 50)), msec(pct(st.lags, 99)), msec(pct(st.lags, 100)))
		if res.stopped != nil {
			fmt.Fprintf(tw, "\t%s", msec(pct(st.lagsOn, 100)))
		}
		fmt.Fprintf(tw, "\t\n")
	}
	tw.Flush()
	if res.stopped != nil {
		probe := ""
		if b.c.stopMode == "term" {
			probe = " (including the wait for fsmirror's next probe of a down destination: 0.5s, 1s, 2s ... 30s apart)"
		}
		fmt.Fprintf(out, "%s was down from +%s to +%s and had caught up %s after it was back%s\n",
			res.stopped.name, benchutil.Secs(res.downFrom), benchutil.Secs(res.downTo), benchutil.Secs(res.per[res.stopped].caughtA), probe)
	}
	if slowest != nil {
		fmt.Fprintf(out, "slowest receiver that stayed up: %s, lag max %s", slowest.name, msec(pct(res.per[slowest].lags, 100)))
		if res.stopped != nil {
			fmt.Fprintf(out, " (while %s was down: %s)", res.stopped.name, msec(lagDown))
		}
		fmt.Fprintf(out, "; all of them had every file at +%s: %.0f files/s\n", benchutil.Secs(slowestAll), float64(res.files)/slowestAll.Seconds())
	}
}

// pct returns the p-th percentile of d (100: the maximum), 0 if d is empty.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func msec(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
