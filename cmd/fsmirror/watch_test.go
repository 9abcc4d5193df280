package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/testutil"
	"github.com/fsmirror/fsmirror/watch"
)

// The tests in this file run `fsmirror watch` as a separate process, the
// way it is used: started, left to mirror while the source changes, and
// stopped with a signal. The process is this test binary run as fsmirror
// (see TestMain), so it is built from the same source as the test and,
// under -race, checked for data races too.

var (
	chaosDuration = flag.Duration("chaos.duration", 12*time.Second, "how long TestWatch_Convergence changes the source at random")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed of TestWatch_Convergence's random changes (0: from the clock; a failure prints the one to replay)")
	chaosSettle   = flag.Duration("chaos.settle", convergeTimeout, "how long TestWatch_Convergence waits for DEST to equal SRC once the changes stop")
	chaosWithout  = flag.String("chaos.without", "", "comma-separated operations TestWatch_Convergence does not perform, such as link,append-link (see testutil.ChaosOp)")
)

const (
	readyTimeout    = 60 * time.Second // for the initial sync, on a slow machine under -race
	convergeTimeout = 30 * time.Second // for DEST to equal SRC once SRC is quiet
	basicTimeout    = 15 * time.Second // the same after one simple change
	stopTimeout     = 30 * time.Second // for fsmirror to exit after SIGTERM
	pollInterval    = 50 * time.Millisecond
)

// lockedBuffer is a bytes.Buffer that a process writes to while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	ls := lines(s)
	if len(ls) > n {
		ls = append([]string{fmt.Sprintf("[... %d lines]", len(ls)-n)}, ls[len(ls)-n:]...)
	}
	return strings.Join(ls, "\n")
}

// watchProc is a running `fsmirror watch`.
type watchProc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{} // closed once the process has exited and its output is read
}

// fsmirrorCmd returns a command that runs this test binary as fsmirror
// with args.
func fsmirrorCmd(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Args[0] = "fsmirror" // makes the test binary run main (see TestMain)
	// Under -race, a process sleeps 1s before it exits, for late reports,
	// unless told otherwise.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=50")
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all", "GORACE="+gorace)
	return cmd
}

// startWatch starts `fsmirror watch args...` and waits until it says that
// the initial sync is done. The process is killed when the test ends, if
// it still runs.
func startWatch(t *testing.T, args ...string) *watchProc {
	t.Helper()
	w := startWatchNoWait(t, args...)
	w.waitReady(t)
	return w
}

func startWatchNoWait(t *testing.T, args ...string) *watchProc {
	t.Helper()
	return startWatchWith(t, nil, args...)
}

// startWatchWith starts `fsmirror watch args...` as startWatchNoWait does,
// with prepare, if not nil, called on the command before it starts.
func startWatchWith(t *testing.T, prepare func(*exec.Cmd), args ...string) *watchProc {
	t.Helper()
	w := &watchProc{args: append([]string{"watch"}, args...), exited: make(chan struct{})}
	w.cmd = fsmirrorCmd(t, context.Background(), w.args...)
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if prepare != nil {
		prepare(w.cmd)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start fsmirror %q: %v", w.args, err)
	}
	go func() {
		w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			w.cmd.Process.Kill()
			<-w.exited
		}
	})
	return w
}

func (w *watchProc) running() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// output describes the process and the tail of what it printed, for a
// failure message.
func (w *watchProc) output() string {
	state := "running"
	if !w.running() {
		state = w.cmd.ProcessState.String()
	}
	stderr := w.stderr.String()
	crash := ""
	for _, start := range []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"} {
		if i := strings.Index(stderr, start); i >= 0 {
			crash = fmt.Sprintf("stderr from %q:\n%s\n", start, strings.Join(lines(stderr[i:])[:min(80, len(lines(stderr[i:])))], "\n"))
			break
		}
	}
	return fmt.Sprintf("fsmirror %q (%s)\n%sstderr (tail):\n%s\nstdout (tail):\n%s",
		w.args, state, crash, tail(stderr, 40), tail(w.stdout.String(), 40))
}

// waitReady waits for the line that says the initial sync is done.
func (w *watchProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for !strings.Contains(w.stderr.String(), "fsmirror: watching ") {
		if !w.running() {
			t.Fatalf("fsmirror exited before the initial sync was done:\n%s", w.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"watching\" line after %v:\n%s", readyTimeout, w.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and requires fsmirror to exit 0 in bounded time, with no
// data race reported. A fsmirror that does not exit is made to dump its
// goroutines (SIGQUIT), which the failure shows.
func (w *watchProc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if !w.running() {
		t.Fatalf("fsmirror exited before it was stopped:\n%s", w.output())
	}
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(stopTimeout):
		w.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			w.cmd.Process.Kill()
			<-w.exited
		}
		t.Fatalf("fsmirror did not exit within %v of %v; its goroutines:\n%s", stopTimeout, sig, tail(w.stderr.String(), 400))
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("after %v fsmirror exited with %s, want exit 0:\n%s", sig, w.cmd.ProcessState, w.output())
	}
	w.checkRaces(t)
}

// settle waits until fsmirror has listed no change for a while: DEST may
// equal SRC while it still works (a file copied twice, once per event),
// and work cut short by the signal that stops it is no bug.
func (w *watchProc) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(basicTimeout)
	for n := -1; time.Now().Before(deadline); {
		m := len(w.stdout.String())
		if m == n {
			return
		}
		n = m
		time.Sleep(300 * time.Millisecond)
	}
}

// paused runs f while the process is stopped (SIGSTOP), so that it finds
// the events of everything f does queued at once when it continues.
func (w *watchProc) paused(t *testing.T, f func()) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered to each thread as it runs next: wait until
	// every one has stopped.
	tasks := fmt.Sprintf("/proc/%d/task", w.cmd.Process.Pid)
	waitFor(t, w, 10*time.Second, func() string {
		ents, err := os.ReadDir(tasks)
		if err != nil {
			return err.Error()
		}
		for _, e := range ents {
			stat, err := os.ReadFile(filepath.Join(tasks, e.Name(), "stat"))
			if err != nil {
				continue // exited
			}
			// pid (comm) state ...: comm may hold spaces and parentheses.
			if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
				return "thread " + e.Name() + " of fsmirror not stopped by SIGSTOP"
			}
		}
		return ""
	})
	defer func() {
		if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

func (w *watchProc) checkRaces(t *testing.T) {
	t.Helper()
	if s := w.stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
		i := strings.Index(s, "WARNING: DATA RACE")
		t.Errorf("fsmirror reported a data race:\n%s", s[i:min(len(s), i+8000)])
	}
}

// diffs returns the differences between src and dst, or the error that
// kept Diff from comparing them (a tree changing under it).
func diffs(src, dst string, opt testutil.DiffOptions) []string {
	d, err := testutil.Diff(src, dst, opt)
	if err != nil {
		return []string{"(cannot compare: " + err.Error() + ")"}
	}
	return d
}

func watchDiffOpt() testutil.DiffOptions {
	return testutil.DiffOptions{Owner: os.Geteuid() == 0}
}

// waitMirror polls until dst mirrors src, and fails the test listing the
// differences and fsmirror's output if it does not within timeout.
func waitMirror(t *testing.T, w *watchProc, src, dst string, timeout time.Duration, opt testutil.DiffOptions) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	// How much fsmirror still does after the source went quiet tells a
	// mirror that lags behind from one that is stuck.
	changes := func() int {
		if w == nil {
			return 0
		}
		return strings.Count(w.stdout.String(), "\n")
	}
	atStart := changes()
	var recent []int // changes() at each poll, for the last few seconds
	for {
		d := diffs(src, dst, opt)
		if len(d) == 0 {
			t.Logf("mirror converged %v after the changes (%d changes listed meanwhile)",
				time.Since(start).Round(time.Millisecond), changes()-atStart)
			return
		}
		if w != nil && !w.running() {
			t.Fatalf("fsmirror exited while changes were pending:\n%s\ndifferences:\n%s", w.output(), listDiffs(d))
		}
		if recent = append(recent, changes()); len(recent) > int(5*time.Second/pollInterval) {
			recent = recent[1:]
		}
		if time.Now().After(deadline) {
			out := ""
			if w != nil {
				w.checkRaces(t)
				stuck := changes()-recent[0] == 0
				out = fmt.Sprintf("fsmirror listed %d changes since the source went quiet, %d in the last 5s\n%s",
					changes()-atStart, changes()-recent[0], w.output())
				if (stuck || os.Getenv("FSM_DUMP") != "") && w.running() {
					// Stuck: what is it waiting for?
					w.cmd.Process.Signal(syscall.SIGQUIT)
					select {
					case <-w.exited:
					case <-time.After(10 * time.Second):
					}
					s := w.stderr.String()
					if i := strings.Index(s, "SIGQUIT"); i >= 0 {
						out += "\ngoroutines:\n" + s[i:]
					}
				}
			}
			t.Fatalf("%s is not a mirror of %s %v after the source went quiet: %d differences:\n%s\n%s",
				dst, src, timeout, len(d), listDiffs(d), out)
		}
		time.Sleep(pollInterval)
	}
}

func listDiffs(d []string) string {
	const max = 60
	if len(d) > max {
		d = append(d[:max:max], fmt.Sprintf("... and %d more", len(d)-max))
	}
	return "\t" + strings.Join(d, "\n\t")
}

// waitFor polls cond until it returns "" and fails the test with its last
// answer if that takes longer than timeout.
func waitFor(t *testing.T, w *watchProc, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s\n%s", timeout, msg, w.output())
		}
		time.Sleep(pollInterval)
	}
}

// runFsmirror runs fsmirror args as a process and returns what it did.
func runFsmirror(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := fsmirrorCmd(t, ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run fsmirror %q: %v", args, err)
	}
	return r
}

// verifyMirror requires `fsmirror verify args... src dst` to exit 0.
func verifyMirror(t *testing.T, args ...string) {
	t.Helper()
	r := runFsmirror(t, append([]string{"verify"}, args...)...)
	if r.code != 0 {
		t.Errorf("fsmirror verify %q: exit %d, want 0\nstdout (tail):\n%s\nstderr:\n%s", args, r.code, tail(r.stdout, 60), tail(r.stderr, 20))
	}
}

// finish stops fsmirror with SIGTERM (exit 0 required) and checks that it
// left no temporary in dst and that verify agrees that dst mirrors src.
func finish(t *testing.T, w *watchProc, src, dst string, verifyArgs ...string) {
	t.Helper()
	w.settle(t)
	w.stop(t, syscall.SIGTERM)
	if got := tempNames(t, dst); len(got) > 0 {
		t.Errorf("temporaries left in %s: %q", dst, got)
	}
	verifyMirror(t, append(verifyArgs, src, dst)...)
}

// srcDstOut returns a source, a destination and a directory outside both
// on the same file system (for moves into and out of the tree), the source
// and outside made, the destination not.
func srcDstOut(t *testing.T) (src, dst, outside string) {
	return srcDstOutIn(t, t.TempDir())
}

// privateSrcDstOut is srcDstOut on a tmpfs of its own, mounted for the
// test, that no other process writes to. It skips the test if it cannot
// mount one.
func privateSrcDstOut(t *testing.T) (src, dst, outside string) {
	dir := t.TempDir()
	if err := unix.Mount("fsmirror-test", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return srcDstOutIn(t, dir)
}

func srcDstOutIn(t *testing.T, dir string) (src, dst, outside string) {
	src, dst, outside = filepath.Join(dir, "src"), filepath.Join(dir, "dst"), filepath.Join(dir, "outside")
	for _, d := range []string{src, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return src, dst, outside
}

// watchBackends are the --watcher values the watch tests run against.
var watchBackends = []string{"inotify", "fanotify"}

// fanotifyUsable says whether this process (and so fsmirror started by it)
// can watch a tree in the temporary directory with fanotify, and if not,
// why.
var fanotifyUsable = sync.OnceValues(func() (bool, string) {
	dir, err := os.MkdirTemp("", "fanotify-probe-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	w, err := watch.New(dir, watch.Options{Backend: watch.Fanotify})
	if err != nil {
		return false, err.Error()
	}
	w.Close()
	return true, ""
})

// requireWatcher skips the test, saying why, when fsmirror cannot use
// --watcher backend here (CI runs the tests as root, where it can).
func requireWatcher(t *testing.T, backend string) {
	t.Helper()
	if backend != "fanotify" {
		return
	}
	if ok, why := fanotifyUsable(); !ok {
		t.Skipf("--watcher fanotify unavailable: %s", why)
	}
}

// TestWatch_Convergence changes the source at random and at full speed
// while fsmirror watches it, then requires the destination to become an
// exact mirror once the source is quiet, fsmirror to exit 0 on SIGTERM,
// and verify to agree; once per --watcher. -chaos.duration runs it longer,
// -chaos.seed replays a failure's choices (the outcome also depends on
// scheduling).
func TestWatch_Convergence(t *testing.T) {
	t.Parallel()
	for _, backend := range watchBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			requireWatcher(t, backend)
			testConvergence(t, backend)
		})
	}
}

func testConvergence(t *testing.T, backend string) {
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d (replay with -chaos.seed=%d)", seed, seed)
	without, err := testutil.ParseChaosOps(*chaosWithout)
	if err != nil {
		t.Fatal(err)
	}
	src, dst, outside := srcDstOut(t)
	testutil.NastyTree(t, src)
	testutil.Build(t, src,
		testutil.File("linked/a", "hard-linked", 0o644),
		testutil.HardLink("linked/b", "linked/a"),
		testutil.HardLink("files/also-a", "linked/a"),
	)
	root := os.Geteuid() == 0
	stats, err := testutil.Chaos(context.Background(), src, testutil.ChaosOptions{Seed: seed, Ops: 3000, Chown: root, Outside: outside, Without: without})
	if err != nil {
		t.Fatalf("build the starting tree: %v", err)
	}
	t.Logf("starting tree: %v", stats)

	w := startWatch(t, "--watcher", backend, "-v", src, dst)
	t.Logf("%s", strings.TrimSpace(w.stderr.String()))
	ctx, cancel := context.WithTimeout(context.Background(), *chaosDuration)
	defer cancel()
	stats, err = testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: seed + 1, Chown: root, Outside: outside, Without: without})
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	t.Logf("chaos for %v: %d changes: %v", *chaosDuration, stats.Total(), stats)

	waitMirror(t, w, src, dst, *chaosSettle, watchDiffOpt())
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)); err == nil {
		for _, l := range lines(string(status)) {
			if strings.HasPrefix(l, "VmHWM:") {
				t.Logf("fsmirror's peak memory: %s", strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")))
			}
		}
	}
	finish(t, w, src, dst)
	if n := strings.Count(w.stderr.String(), "\n"); n > 1 {
		t.Logf("fsmirror printed %d lines on stderr; the last ones:\n%s", n, tail(w.stderr.String(), 20))
	}
}

// A queue is one kind of kernel event queue that fsmirror reads, with the
// sysctl that bounds it, how to make a witness instance under that bound,
// and how to tell that the witness overflowed.
type queue struct {
	backend    string
	limitFile  string
	fdName     string // what /proc/PID/fd/N of an instance links to
	witness    func(t *testing.T, src string) int
	overflowed func(t *testing.T, fd int) bool
	// lower says that the test lowers the limit to overflow the queue;
	// else it makes more events than the limit while fsmirror is stopped.
	// A fanotify instance gets the events of the whole file system: one
	// made by another test while the limit is low would overflow too.
	lower bool
}

var queues = []queue{
	{"inotify", "/proc/sys/fs/inotify/max_queued_events", "anon_inode:inotify", inotifyWitness, overflowed, true},
	{"fanotify", "/proc/sys/fs/fanotify/max_queued_events", "anon_inode:[fanotify]", fanotifyWitness, fanOverflowed, false},
}

// TestWatch_Overflow makes the kernel's event queue of fsmirror overflow
// for real, with a tiny fs.inotify.max_queued_events and a flood of
// changes (with fanotify, more changes than fs.fanotify.max_queued_events
// while fsmirror is stopped), and requires the mirror to converge all the
// same.
func TestWatch_Overflow(t *testing.T) {
	// Not parallel: the limit is system-wide. It is lowered only while
	// the two instances are made (the kernel reads it then), and put back
	// at once, and again in Cleanup whatever happens.
	requireRoot(t)
	for _, q := range queues {
		t.Run(q.backend, func(t *testing.T) {
			requireWatcher(t, q.backend)
			testOverflow(t, q)
		})
	}
}

func testOverflow(t *testing.T, q queue) {
	limitFile := q.limitFile
	orig, err := os.ReadFile(limitFile)
	if err != nil {
		t.Skipf("cannot read the queue limit: %v", err)
	}
	var restoreOnce sync.Once
	restore := func() {
		restoreOnce.Do(func() {
			if err := os.WriteFile(limitFile, orig, 0); err != nil {
				t.Errorf("restore %s to %s: %v", limitFile, bytes.TrimSpace(orig), err)
			}
		})
	}
	t.Cleanup(restore)

	src, dst, outside := srcDstOut(t)
	testutil.Build(t, src,
		testutil.File("before/a", "a", 0o644),
		testutil.Dir("before/sub", 0o755),
	)
	queueLimit, many := 64, 0
	if q.lower {
		if err := os.WriteFile(limitFile, []byte(strconv.Itoa(queueLimit)), 0); err != nil {
			t.Fatalf("lower %s: %v", limitFile, err)
		}
	} else {
		queueLimit, err = strconv.Atoi(string(bytes.TrimSpace(orig)))
		if err != nil || queueLimit > 100_000 {
			t.Skipf("%s is %s: too many events to make", limitFile, bytes.TrimSpace(orig))
		}
		many = queueLimit + 2000 // events made while fsmirror is stopped
	}
	// A witness: an instance made under the same limit, watching the
	// source's root for what fsmirror watches, that is not read until the
	// flood is over.
	witness := q.witness(t, src)
	w := startWatchNoWait(t, "--watcher", q.backend, "-v", src, dst)
	waitWatcherFd(t, w, q.fdName)
	restore()
	w.waitReady(t)

	// The flood, as fast as possible: with a queue of 64 events, fsmirror
	// can hardly keep up. Then more while fsmirror is stopped (SIGSTOP),
	// which overflows its queue for sure.
	flood(t, src, "flood1", 40, 100)
	data := bytes.Repeat([]byte("r"), 100)
	for i := range 500 { // in the root, which the witness watches
		if err := os.WriteFile(filepath.Join(src, "r"+strconv.Itoa(i)), data[:i%len(data)], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.paused(t, func() {
		// More events than the queue holds, outside the tree, where
		// fanotify sees them too: renames of one file, each from and to
		// names of its own, so that none merges with another.
		if many > 0 {
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(outside, "r0"), data, 0o644))
			for i := range many {
				must(os.Rename(filepath.Join(outside, "r"+strconv.Itoa(i)), filepath.Join(outside, "r"+strconv.Itoa(i+1))))
			}
		}
		// Events only come from directories watched before the pause: the
		// root and flood1's, which get far more than 64.
		for i := range 300 {
			if err := os.WriteFile(filepath.Join(src, "p"+strconv.Itoa(i)), data[:i%len(data)], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "flood1/d2", "f"+strconv.Itoa(i%100)), data[:i%len(data)], 0o600); err != nil {
				t.Fatal(err)
			}
		}
		flood(t, src, "flood2", 20, 50)
		if err := os.Rename(filepath.Join(src, "flood1/d0"), filepath.Join(src, "before/sub/d0-moved")); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := os.Remove(filepath.Join(src, "flood1/d1", "f"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(filepath.Join(src, "before/a")); err != nil {
			t.Fatal(err)
		}
	})
	if !q.overflowed(t, witness) {
		t.Fatalf("the witness instance, made under a limit of %d events, did not overflow: the test does not test an overflow", queueLimit)
	}

	waitMirror(t, w, src, dst, convergeTimeout, watchDiffOpt())
	finish(t, w, src, dst)
	var evidence []string
	for _, l := range lines(w.stderr.String() + w.stdout.String()) {
		// Without the paths, which hold the test's name.
		ll := strings.ToLower(strings.ReplaceAll(l, filepath.Dir(src), "DIR"))
		if strings.Contains(ll, "overflow") || strings.Contains(ll, "rescan") || strings.Contains(ll, "lost") {
			evidence = append(evidence, l)
		}
	}
	// Its queue overflowed for sure while it was stopped: it must say so,
	// the witness is not the only evidence.
	if len(evidence) > 0 {
		t.Logf("fsmirror reported the overflow:\n%s", strings.Join(evidence[:min(len(evidence), 5)], "\n"))
	} else {
		t.Errorf("fsmirror printed nothing about the overflow, which the witness proves happened: a line saying that events were lost and the tree is rescanned is missing")
	}
}

// inotifyWitness makes an inotify instance that watches src for what
// fsmirror watches.
func inotifyWitness(t *testing.T, src string) int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE |
		unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, src, mask); err != nil {
		t.Fatal(err)
	}
	return fd
}

// fanotifyWitness makes a fanotify instance that marks the file system of
// src for what fsmirror asks of it.
func fanotifyWitness(t *testing.T, src string) int {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	const mask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MODIFY | unix.FAN_ATTRIB | unix.FAN_CLOSE_WRITE |
		unix.FAN_RENAME | unix.FAN_ONDIR
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, src); err != nil {
		t.Fatal(err)
	}
	return fd
}

// fanOverflowed reads the events queued on the fanotify instance fd and
// reports whether its queue overflowed.
func fanOverflowed(t *testing.T, fd int) bool {
	t.Helper()
	buf := make([]byte, 64<<10)
	found := false
	for range 1 << 20 { // a busy file system keeps it filling: bounded
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || found {
			return found
		}
		if err != nil {
			t.Fatal(err)
		}
		for p := buf[:n]; len(p) >= unix.FAN_EVENT_METADATA_LEN; {
			ev := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&p[0]))
			found = found || ev.Mask&unix.FAN_Q_OVERFLOW != 0
			if ev.Event_len < unix.FAN_EVENT_METADATA_LEN || int(ev.Event_len) > len(p) {
				t.Fatalf("malformed fanotify event of %d bytes", ev.Event_len)
			}
			p = p[ev.Event_len:]
		}
	}
	return found
}

// waitWatcherFd waits until the process has made its inotify or fanotify
// instance, whose /proc/PID/fd link is name.
func waitWatcherFd(t *testing.T, w *watchProc, name string) {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", w.cmd.Process.Pid)
	deadline := time.Now().Add(readyTimeout)
	for {
		ents, _ := os.ReadDir(fdDir)
		for _, e := range ents {
			if l, _ := os.Readlink(filepath.Join(fdDir, e.Name())); l == name {
				return
			}
		}
		if !w.running() || time.Now().After(deadline) {
			t.Fatalf("fsmirror made no %s instance:\n%s", name, w.output())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// flood creates dir/d0 ... with files f0 ... in each, as fast as it can.
func flood(t *testing.T, src, dir string, dirs, files int) {
	t.Helper()
	data := bytes.Repeat([]byte("x"), 100)
	for i := range dirs {
		d := filepath.Join(src, dir, "d"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range files {
			if err := os.WriteFile(filepath.Join(d, "f"+strconv.Itoa(j)), data[:j%len(data)], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// overflowed reads the events queued on fd and reports whether the queue
// overflowed.
func overflowed(t *testing.T, fd int) bool {
	t.Helper()
	buf := make([]byte, 64<<10)
	found := false
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			return found
		}
		if err != nil {
			t.Fatal(err)
		}
		for p := buf[:n]; len(p) >= unix.SizeofInotifyEvent; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&p[0]))
			found = found || ev.Mask&unix.IN_Q_OVERFLOW != 0
			p = p[unix.SizeofInotifyEvent+int(ev.Len):]
		}
	}
}

// TestWatch_Basics checks one kind of change at a time: each subtest
// starts fsmirror watch on a tree of its own, makes its change once the
// initial sync is done, and waits (bounded) for the destination to follow;
// once per --watcher.
func TestWatch_Basics(t *testing.T) {
	t.Parallel()
	for _, backend := range watchBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			requireWatcher(t, backend)
			testBasics(t, backend)
		})
	}
}

// watcherFd is what /proc/PID/fd/N links to for the instance of backend.
func watcherFd(backend string) string {
	for _, q := range queues {
		if q.backend == backend {
			return q.fdName
		}
	}
	panic("unknown backend " + backend)
}

func testBasics(t *testing.T, backend string) {
	const t1 = int64(1_600_000_000_123_456_789)
	// startWatch and startWatchNoWait with --watcher backend.
	startWatch := func(t *testing.T, args ...string) *watchProc {
		t.Helper()
		return startWatch(t, append([]string{"--watcher", backend}, args...)...)
	}
	startWatchNoWait := func(t *testing.T, args ...string) *watchProc {
		t.Helper()
		return startWatchNoWait(t, append([]string{"--watcher", backend}, args...)...)
	}

	// basic runs one subtest: a starting tree, a change, and the
	// destination's state to wait for, beyond being a mirror of src.
	type env struct {
		src, dst, outside string
		w                 *watchProc
	}
	basicIn := func(name string, dirs func(t *testing.T) (src, dst, outside string), tree []testutil.Node, change func(t *testing.T, e *env)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, dst, outside := dirs(t)
			testutil.Build(t, src, tree...)
			e := &env{src: src, dst: dst, outside: outside}
			e.w = startWatch(t, "-v", src, dst)
			testutil.AssertMirror(t, src, dst, watchDiffOpt()) // the initial sync
			change(t, e)
			waitMirror(t, e.w, src, dst, basicTimeout, watchDiffOpt())
			finish(t, e.w, src, dst)
		})
	}
	basic := func(name string, tree []testutil.Node, change func(t *testing.T, e *env)) {
		basicIn(name, srcDstOut, tree, change)
	}
	path := func(root string, rel ...string) string { return filepath.Join(append([]string{root}, rel...)...) }
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(t *testing.T, p, content string) {
		t.Helper()
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	base := []testutil.Node{
		testutil.Dir(".", 0o755).Mtime(t1),
		testutil.File("keep", "keep", 0o644).Mtime(t1),
		testutil.Dir("sub", 0o755).Mtime(t1),
	}

	basic("mkdir then write at once", base, func(t *testing.T, e *env) {
		// The classic race: files written in a directory before any
		// watcher could watch it.
		deep := path(e.src, "new", "a", "b")
		must(t, os.MkdirAll(deep, 0o755))
		for i := range 100 {
			write(t, path(deep, "f"+strconv.Itoa(i)), strings.Repeat("x", i))
			write(t, path(e.src, "new", "g"+strconv.Itoa(i)), strconv.Itoa(i))
		}
	})

	basic("rename of a large file keeps its inode", base, func(t *testing.T, e *env) {
		writeBig(t, path(e.src, "big"), 50<<20)
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		ino := pinInode(t, path(e.dst, "big"))
		before := len(e.w.stdout.String())
		for _, mv := range [][2]string{{"big", "big2"}, {"big2", "sub/big3"}} { // within a directory, and across
			must(t, os.Rename(path(e.src, mv[0]), path(e.src, mv[1])))
			waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
			if got := inode(t, path(e.dst, mv[1])); got != ino {
				t.Errorf("renamed %s to %s: DEST's %s has inode %d, the file had %d: it was copied, not renamed",
					mv[0], mv[1], mv[1], got, ino)
			}
		}
		if after := e.w.stdout.String()[before:]; strings.Contains(after, "write   ") {
			t.Errorf("the renamed file was written again:\n%s", after)
		}
	})

	// Several renames before fsmirror handles the first, as happens when it
	// is busy: it is stopped meanwhile (SIGSTOP), so that it reads their
	// events at once.
	chainTree := append(slices.Clone(base),
		testutil.File("a", strings.Repeat("a", 1<<20), 0o644).Mtime(t1),
		testutil.File("d/x", "x", 0o644).Mtime(t1),
		testutil.Dir("d", 0o755).Mtime(t1),
	)
	basic("renames in a row keep the inode", chainTree, func(t *testing.T, e *env) {
		fileIno, dirIno := pinInode(t, path(e.dst, "a")), pinInode(t, path(e.dst, "d"))
		before := len(e.w.stdout.String())
		e.w.paused(t, func() {
			// mv a b && mv b sub/c; the same with a directory.
			must(t, os.Rename(path(e.src, "a"), path(e.src, "b")))
			must(t, os.Rename(path(e.src, "b"), path(e.src, "sub", "c")))
			must(t, os.Rename(path(e.src, "d"), path(e.src, "e")))
			must(t, os.Rename(path(e.src, "e"), path(e.src, "sub", "f")))
		})
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		if got := inode(t, path(e.dst, "sub", "c")); got != fileIno {
			t.Errorf("after mv a b; mv b sub/c, DEST's sub/c is a new inode: it was copied, not renamed")
		}
		if got := inode(t, path(e.dst, "sub", "f")); got != dirIno {
			t.Errorf("after mv d e; mv e sub/f, DEST's sub/f is a new inode: it was copied, not renamed")
		}
		if t.Failed() {
			t.Logf("fsmirror did:\n%s", e.w.stdout.String()[before:])
		}
	})

	swapTree := append(slices.Clone(base),
		testutil.File("a", "content of a", 0o644).Mtime(t1),
		testutil.File("b", "content of b, longer", 0o600).Mtime(t1+1),
	)
	basic("swap of two files through a third name", swapTree, func(t *testing.T, e *env) {
		aIno, bIno := pinInode(t, path(e.dst, "a")), pinInode(t, path(e.dst, "b"))
		before := len(e.w.stdout.String())
		e.w.paused(t, func() {
			must(t, os.Rename(path(e.src, "a"), path(e.src, "tmp")))
			must(t, os.Rename(path(e.src, "b"), path(e.src, "a")))
			must(t, os.Rename(path(e.src, "tmp"), path(e.src, "b")))
		})
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		if inode(t, path(e.dst, "a")) != bIno || inode(t, path(e.dst, "b")) != aIno {
			t.Errorf("after swapping a and b, DEST's a and b are not the old b and a: copied, not renamed; fsmirror did:\n%s",
				e.w.stdout.String()[before:])
		}
	})

	// One process renames and reuses names while fsmirror is stopped:
	// fanotify merges an event into an identical one still queued, so
	// the second write of f, and the third rename of a, are queued
	// before the renames that precede them.
	reuseTree := append(slices.Clone(base),
		testutil.File("a", "content of a", 0o644).Mtime(t1),
		testutil.File("d/x", "x", 0o644).Mtime(t1),
		testutil.Dir("d", 0o755).Mtime(t1),
	)
	basic("names reused right after a rename", reuseTree, func(t *testing.T, e *env) {
		e.w.paused(t, func() {
			write(t, path(e.src, "f"), "first f")
			must(t, os.Rename(path(e.src, "f"), path(e.src, "g")))
			write(t, path(e.src, "f"), "second f, longer")
			must(t, os.Rename(path(e.src, "a"), path(e.src, "b")))
			must(t, os.Rename(path(e.src, "b"), path(e.src, "a")))
			must(t, os.Rename(path(e.src, "a"), path(e.src, "b")))
			must(t, os.Rename(path(e.src, "d"), path(e.src, "e")))
			must(t, os.Mkdir(path(e.src, "d"), 0o755))
			write(t, path(e.src, "d", "y"), "y")
		})
	})

	bigDir := append(slices.Clone(base), testutil.Dir("tree/inner", 0o755).Mtime(t1))
	for i := range 2000 {
		bigDir = append(bigDir, testutil.File("tree/f"+strconv.Itoa(i), strconv.Itoa(i), 0o644).Mtime(t1))
	}
	bigDir = append(bigDir, testutil.File("tree/inner/deep", "deep", 0o644).Mtime(t1), testutil.Dir("tree", 0o755).Mtime(t1))
	basic("rename of a directory of 2000 files keeps its inode", bigDir, func(t *testing.T, e *env) {
		dirIno, fileIno := pinInode(t, path(e.dst, "tree")), pinInode(t, path(e.dst, "tree", "inner", "deep"))
		before := len(e.w.stdout.String())
		must(t, os.Rename(path(e.src, "tree"), path(e.src, "sub", "moved")))
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		if got := inode(t, path(e.dst, "sub", "moved")); got != dirIno {
			t.Errorf("the renamed directory has inode %d on DEST, was %d", got, dirIno)
		}
		if got := inode(t, path(e.dst, "sub", "moved", "inner", "deep")); got != fileIno {
			t.Errorf("a file in the renamed directory has inode %d on DEST, was %d", got, fileIno)
		}
		if after := e.w.stdout.String()[before:]; strings.Contains(after, "write   ") {
			t.Errorf("%d files written after renaming a directory:\n%s", strings.Count(after, "write   "), tail(after, 20))
		}
	})

	outTree := append(slices.Clone(base),
		testutil.File("f", "moved out", 0o644).Mtime(t1),
		testutil.File("d/x", "x", 0o644).Mtime(t1),
		testutil.File("d/e/y", "y", 0o644).Mtime(t1),
		testutil.Dir("d", 0o755).Mtime(t1),
	)
	basic("move out of the tree is a delete", outTree, func(t *testing.T, e *env) {
		must(t, os.Rename(path(e.src, "f"), path(e.outside, "f")))
		must(t, os.Rename(path(e.src, "d"), path(e.outside, "d")))
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		// And back in, under other names.
		must(t, os.Rename(path(e.outside, "d"), path(e.src, "sub", "d-back")))
		must(t, os.Rename(path(e.outside, "f"), path(e.src, "f-back")))
	})

	basic("move into the tree is a create", base, func(t *testing.T, e *env) {
		testutil.Build(t, e.outside,
			testutil.File("in-file", "from outside", 0o640).Mtime(t1),
			testutil.File("in-dir/a", "a", 0o644).Mtime(t1),
			testutil.File("in-dir/b/c", "c", 0o600).Mtime(t1),
			testutil.Symlink("in-link", "in-file").Mtime(t1),
			testutil.Dir("in-dir", 0o750).Mtime(t1),
		)
		must(t, os.Rename(path(e.outside, "in-file"), path(e.src, "in-file")))
		must(t, os.Rename(path(e.outside, "in-dir"), path(e.src, "sub", "in-dir")))
		must(t, os.Rename(path(e.outside, "in-link"), path(e.src, "in-link")))
	})

	saveTree := append(slices.Clone(base),
		testutil.File("doc.txt", "version 1\n", 0o640).Mtime(t1),
		testutil.File("vim.txt", "version 1\n", 0o600).Mtime(t1),
	)
	basic("editor-style save", saveTree, func(t *testing.T, e *env) {
		// Write a temporary, rename it over the file.
		tmp := path(e.src, ".doc.txt.swp")
		write(t, tmp, "version 2, longer than the first\n")
		must(t, os.Chmod(tmp, 0o640))
		must(t, os.Rename(tmp, path(e.src, "doc.txt")))
		// vim's way: rename to a backup, write anew, delete the backup.
		must(t, os.Rename(path(e.src, "vim.txt"), path(e.src, "vim.txt~")))
		write(t, path(e.src, "vim.txt"), "version 2\n")
		must(t, os.Chmod(path(e.src, "vim.txt"), 0o600))
		must(t, os.Remove(path(e.src, "vim.txt~")))
	})

	metaTree := append(slices.Clone(base),
		testutil.File("file", "content", 0o644).Mtime(t1),
		testutil.File("dir/inner", "content", 0o644).Mtime(t1),
		testutil.Symlink("link", "file").Mtime(t1),
		testutil.Dir("dir", 0o755).Mtime(t1),
	)
	basic("chmod and touch", metaTree, func(t *testing.T, e *env) {
		must(t, os.Chmod(path(e.src, "file"), 0o600))
		must(t, os.Chmod(path(e.src, "dir"), 0o750))
		must(t, setMtime(path(e.src, "file"), t1+1))
		must(t, setMtime(path(e.src, "link"), t1+2))
		must(t, setMtime(path(e.src, "dir", "inner"), t1+3))
		must(t, setMtime(path(e.src, "dir"), t1+4)) // after the change inside it
		must(t, os.Chmod(e.src, 0o711))
	})

	basic("touch -m of the source root", base, func(t *testing.T, e *env) {
		must(t, setMtime(e.src, t1+5)) // mtime only: inotify says IN_MODIFY
	})

	delTree := append(slices.Clone(base),
		testutil.File("file", "content", 0o644).Mtime(t1),
		testutil.Dir("empty", 0o755).Mtime(t1),
		testutil.File("full/a/b/c", "c", 0o644).Mtime(t1),
		testutil.File("full/x", "x", 0o644).Mtime(t1),
		testutil.Symlink("full/a/link", "../x").Mtime(t1),
		testutil.File("sub/gone", "gone", 0o644).Mtime(t1),
	)
	basic("delete and rmdir", delTree, func(t *testing.T, e *env) {
		must(t, os.Remove(path(e.src, "file")))
		must(t, os.Remove(path(e.src, "sub", "gone")))
		must(t, os.Remove(path(e.src, "empty")))
		must(t, os.RemoveAll(path(e.src, "full")))
		waitFor(t, e.w, basicTimeout, func() string {
			for _, p := range []string{"file", "sub/gone", "empty", "full"} {
				if _, err := os.Lstat(path(e.dst, p)); err == nil {
					return p + " still on DEST"
				}
			}
			return ""
		})
	})

	linkTree := append(slices.Clone(base),
		testutil.File("a", "a", 0o644).Mtime(t1),
		testutil.File("b", "b", 0o644).Mtime(t1),
		testutil.Symlink("atomic", "a").Mtime(t1),
		testutil.Symlink("plain", "a").Mtime(t1),
	)
	basic("symlink retarget", linkTree, func(t *testing.T, e *env) {
		// As ln -sfn does: a new symlink renamed over the old one.
		must(t, os.Symlink("b", path(e.src, ".atomic.tmp")))
		must(t, os.Rename(path(e.src, ".atomic.tmp"), path(e.src, "atomic")))
		// Delete and create.
		must(t, os.Remove(path(e.src, "plain")))
		must(t, os.Symlink("/nonexistent/target", path(e.src, "plain")))
		waitFor(t, e.w, basicTimeout, func() string {
			a, _ := os.Readlink(path(e.dst, "atomic"))
			p, _ := os.Readlink(path(e.dst, "plain"))
			if a != "b" || p != "/nonexistent/target" {
				return fmt.Sprintf("DEST symlinks point to %q and %q", a, p)
			}
			return ""
		})
	})

	truncTree := append(slices.Clone(base),
		testutil.File("shorter", strings.Repeat("s", 100_000), 0o644).Mtime(t1),
		testutil.File("zero", strings.Repeat("z", 10_000), 0o644).Mtime(t1),
		testutil.File("longer", "l", 0o644).Mtime(t1),
	)
	basic("truncate", truncTree, func(t *testing.T, e *env) {
		must(t, os.Truncate(path(e.src, "shorter"), 1234))
		must(t, os.Truncate(path(e.src, "zero"), 0))
		must(t, os.Truncate(path(e.src, "longer"), 1<<20))
	})

	basic("hard link created", append(slices.Clone(base), testutil.File("one", "shared\n", 0o644).Mtime(t1)), func(t *testing.T, e *env) {
		must(t, os.Link(path(e.src, "one"), path(e.src, "sub", "two")))
	})

	pairTree := append(slices.Clone(base),
		testutil.File("pair-a", "shared\n", 0o644).Mtime(t1),
		testutil.HardLink("sub/pair-b", "pair-a"),
	)
	basic("append through one name of a hard link", pairTree, func(t *testing.T, e *env) {
		f, err := os.OpenFile(path(e.src, "sub", "pair-b"), os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString("appended through pair-b\n")
		must(t, err)
		must(t, f.Close())
	})

	t.Run("excluded directory", func(t *testing.T) {
		t.Parallel()
		src, dst, _ := srcDstOut(t)
		testutil.Build(t, src, append(slices.Clone(base),
			testutil.File("build/old.o", "old", 0o644),
			testutil.File("src/main.c", "int main;", 0o644),
		)...)
		w := startWatch(t, "-v", "--exclude", "build/", src, dst)
		excluded := testutil.DiffOptions{Owner: os.Geteuid() == 0, IgnoreDirMtime: false,
			Ignore: func(rel string) bool { return rel == "build" }}
		testutil.AssertMirror(t, src, dst, excluded)
		// Written into the excluded directory, then a change elsewhere
		// that is waited for.
		write(t, path(src, "build", "new.o"), "new")
		must(t, os.MkdirAll(path(src, "build", "sub", "deeper"), 0o755))
		write(t, path(src, "build", "sub", "deeper", "x.o"), "x")
		must(t, os.Rename(path(src, "build", "old.o"), path(src, "build", "sub", "old.o")))
		write(t, path(src, "src", "main.c"), "int main(void) { return 0; }")
		waitMirror(t, w, src, dst, basicTimeout, excluded)
		if _, err := os.Lstat(path(dst, "build")); err == nil {
			t.Errorf("the excluded directory build was mirrored: %q", tail(w.stdout.String(), 20))
		}
		// A file moved from the excluded directory into the tree is new.
		must(t, os.Rename(path(src, "build", "new.o"), path(src, "src", "new.o")))
		waitMirror(t, w, src, dst, basicTimeout, excluded)
		// A new excluded directory elsewhere, written into at once: not
		// mirrored, but its parent's mtime changed.
		must(t, os.MkdirAll(path(src, "sub", "build", "x"), 0o755))
		write(t, path(src, "sub", "build", "x", "y.o"), "y")
		waitMirror(t, w, src, dst, basicTimeout, testutil.DiffOptions{Owner: os.Geteuid() == 0,
			Ignore: func(rel string) bool { return rel == "build" || rel == "sub/build" }})
		for _, p := range []string{"build", "sub/build"} {
			if _, err := os.Lstat(path(dst, p)); err == nil {
				t.Errorf("the excluded directory %s was mirrored", p)
			}
		}
		finish(t, w, src, dst, "--exclude", "build/")
	})

	dirTree := append(slices.Clone(base),
		testutil.File("d/old", "old", 0o644).Mtime(t1),
		testutil.File("d/e/deep", "deep", 0o644).Mtime(t1),
		testutil.Dir("d", 0o755).Mtime(t1),
	)
	basic("directory replaced, renamed, then written", dirTree, func(t *testing.T, e *env) {
		e.w.paused(t, func() {
			// A new directory under an old name, before fsmirror saw the
			// old one go.
			must(t, os.RemoveAll(path(e.src, "d")))
			must(t, os.MkdirAll(path(e.src, "d", "e"), 0o755))
			write(t, path(e.src, "d", "new"), "new")
			// A directory renamed and written in at once.
			must(t, os.Rename(path(e.src, "d"), path(e.src, "sub", "r")))
			write(t, path(e.src, "sub", "r", "e", "after-rename"), "x")
		})
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		// Both directories are watched: later changes in them are seen.
		write(t, path(e.src, "sub", "r", "later"), "later")
		write(t, path(e.src, "sub", "r", "e", "later"), "later")
	})

	t.Run("excluded files", func(t *testing.T) {
		t.Parallel()
		src, dst, _ := srcDstOut(t)
		testutil.Build(t, src, append(slices.Clone(base),
			testutil.File("doc", "v1", 0o644).Mtime(t1),
			testutil.File("draft", "draft", 0o644).Mtime(t1),
		)...)
		w := startWatch(t, "-v", "--exclude", "*.swp", src, dst)
		excluded := testutil.DiffOptions{Owner: os.Geteuid() == 0,
			Ignore: func(rel string) bool { return strings.HasSuffix(rel, ".swp") }}
		// Saved through an excluded temporary; a file renamed to an
		// excluded name leaves the mirror; an excluded file is never
		// mirrored.
		write(t, path(src, ".doc.swp"), "v2, saved through an excluded name")
		must(t, os.Rename(path(src, ".doc.swp"), path(src, "doc")))
		must(t, os.Rename(path(src, "draft"), path(src, "draft.swp")))
		write(t, path(src, "sub", "x.swp"), "never mirrored")
		waitMirror(t, w, src, dst, basicTimeout, excluded)
		for _, p := range []string{".doc.swp", "draft.swp", "sub/x.swp", "draft"} {
			if _, err := os.Lstat(path(dst, p)); err == nil {
				t.Errorf("DEST has %s", p)
			}
		}
		finish(t, w, src, dst, "--exclude", "*.swp")
	})

	t.Run("two sources", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		one, two, dst := path(dir, "one"), path(dir, "two"), path(dir, "dst")
		testutil.Build(t, one, base...)
		testutil.Build(t, two, base...)
		w := startWatch(t, "-v", one, two, dst)
		waitFor(t, w, readyTimeout, func() string { // one line per source
			if n := strings.Count(w.stderr.String(), "fsmirror: watching "); n < 2 {
				return "not every source's initial sync is done"
			}
			return ""
		})
		write(t, path(one, "sub", "in-one"), "1")
		write(t, path(two, "in-two"), "2")
		must(t, os.Remove(path(two, "keep")))
		waitMirror(t, w, one, path(dst, "one"), basicTimeout, watchDiffOpt())
		waitMirror(t, w, two, path(dst, "two"), basicTimeout, watchDiffOpt())
		w.settle(t)
		w.stop(t, syscall.SIGTERM)
		verifyMirror(t, one, path(dst, "one"))
		verifyMirror(t, two, path(dst, "two"))
	})

	t.Run("no-delete", func(t *testing.T) {
		t.Parallel()
		src, dst, _ := srcDstOut(t)
		testutil.Build(t, src, append(slices.Clone(base), testutil.File("d/f", "f", 0o644))...)
		w := startWatch(t, "-v", "--no-delete", src, dst)
		must(t, os.Remove(path(src, "keep")))
		must(t, os.RemoveAll(path(src, "d")))
		write(t, path(src, "sub", "new"), "new")
		waitFor(t, w, basicTimeout, func() string {
			if got, _ := os.ReadFile(path(dst, "sub", "new")); string(got) != "new" {
				return "sub/new not mirrored"
			}
			return ""
		})
		for _, p := range []string{"keep", "d/f"} {
			if _, err := os.Lstat(path(dst, p)); err != nil {
				t.Errorf("--no-delete: %s deleted from DEST: %v", p, err)
			}
		}
		w.stop(t, syscall.SIGTERM)
	})

	t.Run("restart after SIGTERM and after kill -9", func(t *testing.T) {
		t.Parallel()
		src, dst, _ := srcDstOut(t)
		testutil.Build(t, src, append(slices.Clone(base),
			testutil.File("d/f", "f", 0o644).Mtime(t1),
			testutil.File("g", "g", 0o644).Mtime(t1),
		)...)
		w := startWatch(t, "-v", src, dst)
		w.stop(t, syscall.SIGTERM)
		// Changes while no fsmirror runs.
		must(t, os.Rename(path(src, "d"), path(src, "sub", "d")))
		must(t, os.Remove(path(src, "g")))
		write(t, path(src, "keep"), "changed while stopped")
		must(t, os.Chmod(path(src, "sub"), 0o700))
		w = startWatch(t, "-v", src, dst)
		waitMirror(t, w, src, dst, basicTimeout, watchDiffOpt())
		// Killed in the middle of a burst of changes.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		go func() {
			time.Sleep(500 * time.Millisecond)
			w.cmd.Process.Kill()
		}()
		if _, err := testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: 9, MaxFiles: 300}); err != nil {
			t.Fatal(err)
		}
		<-w.exited
		w = startWatch(t, "-v", src, dst)
		waitMirror(t, w, src, dst, basicTimeout, watchDiffOpt())
		finish(t, w, src, dst)
	})

	basic("fifo created", base, func(t *testing.T, e *env) {
		if os.Geteuid() != 0 {
			t.Skip("fifos are mirrored by root only")
		}
		must(t, unix.Mkfifo(path(e.src, "sub", "fifo"), 0o640))
	})

	atomicTree := append(slices.Clone(base),
		testutil.File("rewritten", "old content", 0o644).Mtime(t1),
		testutil.File("appended", "old content", 0o644).Mtime(t1),
		testutil.File("sub/truncated", "old content", 0o644).Mtime(t1),
	)
	basic("DEST files are never written under their names", atomicTree, func(t *testing.T, e *env) {
		root, sub := watchDir(t, e.dst), watchDir(t, path(e.dst, "sub"))
		write(t, path(e.src, "new"), strings.Repeat("new", 100_000))
		write(t, path(e.src, "rewritten"), strings.Repeat("rewritten", 100_000))
		f, err := os.OpenFile(path(e.src, "appended"), os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString(strings.Repeat("more", 100_000))
		must(t, err)
		must(t, f.Close())
		must(t, os.Truncate(path(e.src, "sub", "truncated"), 3))
		write(t, path(e.src, "sub", "new"), "new")
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		for _, evs := range [][]inotifyEvent{root.events(t), sub.events(t)} {
			for _, ev := range evs {
				// An O_TMPFILE file is reported as "#<inode>".
				_, err := strconv.ParseUint(strings.TrimPrefix(ev.name, "#"), 10, 64)
				unnamed := strings.HasPrefix(ev.name, "#") && err == nil
				if ev.mask&unix.IN_CLOSE_WRITE != 0 && !fsmirror.IsTempName(ev.name) && !unnamed {
					t.Errorf("%s was opened for writing under its final name on DEST", ev.name)
				}
			}
		}
	})

	// fanotify reports every change of the file system, where other tests
	// run: the trees of this one are on a tmpfs of their own.
	quietDirs := srcDstOut
	if backend == "fanotify" {
		quietDirs = privateSrcDstOut
	}
	basicIn("idle means idle", quietDirs, base, func(t *testing.T, e *env) {
		write(t, path(e.src, "sub", "f"), "f")
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		// No polling loop: once the work is done, fsmirror sleeps. Counted
		// in context switches and CPU ticks, not in time.
		time.Sleep(500 * time.Millisecond)
		sw0, cpu0 := procActivity(t, e.w.cmd.Process.Pid)
		time.Sleep(2 * time.Second)
		sw1, cpu1 := procActivity(t, e.w.cmd.Process.Pid)
		t.Logf("idle for 2s: %d context switches, %d CPU ticks", sw1-sw0, cpu1-cpu0)
		if sw1-sw0 > 20 || cpu1-cpu0 > 5 {
			t.Errorf("idle fsmirror woke up %d times and used %d CPU ticks in 2s, want (about) none", sw1-sw0, cpu1-cpu0)
		}
	})

	xTree := append(slices.Clone(base),
		testutil.File("x/one", "in x", 0o644).Mtime(t1),
		testutil.File("y/two", "in y", 0o600).Mtime(t1),
		testutil.File("y/deeper/three", "in y/deeper", 0o644).Mtime(t1),
		testutil.Dir("x", 0o755).Mtime(t1),
		testutil.Dir("y", 0o700).Mtime(t1+1),
		testutil.File("f", "a file", 0o644).Mtime(t1),
		testutil.File("sub/g", "another file", 0o640).Mtime(t1+2),
	)
	basic("exchange (RENAME_EXCHANGE)", xTree, func(t *testing.T, e *env) {
		xchg := func(a, b string) {
			t.Helper()
			must(t, unix.Renameat2(unix.AT_FDCWD, path(e.src, a), unix.AT_FDCWD, path(e.src, b), unix.RENAME_EXCHANGE))
		}
		xchg("x", "y")
		xchg("f", "sub/g")
		waitMirror(t, e.w, e.src, e.dst, basicTimeout, watchDiffOpt())
		e.w.paused(t, func() {
			xchg("x", "y")
			xchg("f", "x") // a file and a directory
		})
	})

	t.Run("changes during the initial sync", func(t *testing.T) {
		t.Parallel()
		src, dst, _ := srcDstOut(t)
		var tree []testutil.Node
		for i := range 3000 {
			tree = append(tree, testutil.File(fmt.Sprintf("d%d/f%d", i%30, i), strconv.Itoa(i), 0o644).Mtime(t1))
		}
		for i := range 30 {
			tree = append(tree, testutil.Dir(fmt.Sprintf("d%d", i), 0o755).Mtime(t1))
		}
		testutil.Build(t, src, tree...)
		w := startWatchNoWait(t, "-v", src, dst)
		waitWatcherFd(t, w, watcherFd(backend))
		// Watches are in place before the initial sync starts: what
		// changes while it runs is mirrored too.
		for i := 0; !strings.Contains(w.stderr.String(), "fsmirror: watching ") && i < 3000; i++ {
			d := fmt.Sprintf("d%d", i%30)
			switch i % 3 {
			case 0:
				write(t, path(src, d, "new"+strconv.Itoa(i)), "new")
			case 1:
				must(t, os.Remove(path(src, d, "f"+strconv.Itoa(i))))
			case 2:
				must(t, os.Rename(path(src, d, "f"+strconv.Itoa(i)), path(src, fmt.Sprintf("d%d", (i+1)%30), "moved"+strconv.Itoa(i))))
			}
		}
		w.waitReady(t)
		waitMirror(t, w, src, dst, basicTimeout, watchDiffOpt())
		finish(t, w, src, dst)
	})

	t.Run("signals exit 0", func(t *testing.T) {
		t.Parallel()
		for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
			src, dst, _ := srcDstOut(t)
			testutil.Build(t, src, base...)
			w := startWatch(t, src, dst)
			write(t, path(src, "late"), "written just before the signal")
			w.stop(t, sig)
			if s := w.stderr.String(); strings.Count(s, "\n") != 1 {
				t.Errorf("after %v fsmirror printed more than its \"watching\" line on stderr:\n%s", sig, s)
			}
		}
	})
}

// mainWithNSLimit is fsmirror run by TestWatch_WatchLimit in a user
// namespace of its own: it lowers the namespace's inotify watch limit to
// $FSMIRROR_TEST_NS_WATCHES and rescans the directories it cannot watch
// every 300ms instead of every minute, then runs main.
func mainWithNSLimit() {
	limit := os.Getenv("FSMIRROR_TEST_NS_WATCHES")
	if err := os.WriteFile("/proc/sys/user/max_inotify_watches", []byte(limit), 0); err != nil {
		fmt.Fprintln(os.Stderr, "fsmirror-userns-limit: set the namespace's watch limit:", err)
		os.Exit(3)
	}
	limitRescan = 300 * time.Millisecond
	main()
}

// inUserNS makes cmd run in a user namespace of its own, as the same user.
func inUserNS(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}},
	}
}

// TestWatch_WatchLimit runs out of inotify watches for real: fsmirror runs
// in a user namespace whose limit (user.max_inotify_watches) is below what
// the tree needs, and where fanotify is refused (no CAP_SYS_ADMIN over the
// file system), so --watcher auto uses inotify. fsmirror must say how many
// watches the tree needs and why fanotify could not be used, keep going,
// and mirror the changes of the directories it could not watch too, through
// its periodic rescans.
func TestWatch_WatchLimit(t *testing.T) {
	t.Parallel()
	probe := exec.Command("/bin/true")
	inUserNS(probe)
	if err := probe.Run(); err != nil {
		t.Skipf("cannot start a process in a new user namespace: %v", err)
	}
	src, dst, _ := srcDstOut(t)
	var tree []testutil.Node
	for i := range 40 {
		tree = append(tree, testutil.File(fmt.Sprintf("d%02d/f", i), "v1", 0o644))
	}
	testutil.Build(t, src, tree...)
	w := startWatchWith(t, func(cmd *exec.Cmd) {
		cmd.Args[0] = "fsmirror-userns-limit"
		cmd.Env = append(cmd.Env, "FSMIRROR_TEST_NS_WATCHES=20")
		inUserNS(cmd)
	}, "-v", "--watcher", "auto", src, dst)
	w.waitReady(t)
	warning := ""
	for _, l := range lines(w.stderr.String()) {
		if strings.Contains(l, "warning: inotify watch limit reached") {
			warning = l
		}
	}
	for _, want := range []string{"user.max_inotify_watches is 20", "the tree needs at least 41", "CAP_SYS_ADMIN", "rescanned every 300ms"} {
		if !strings.Contains(warning, want) {
			t.Errorf("the warning about the watch limit lacks %q:\n%s", want, w.output())
		}
	}
	t.Logf("%s", warning)
	for i := range 40 {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i))
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("v2, in every directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(d, "new"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(t, w, src, dst, convergeTimeout, watchDiffOpt())
	finish(t, w, src, dst)
}

// writeBig writes a file of size bytes that are not all alike.
func writeBig(t *testing.T, p string, size int) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pinInode returns the inode number of path and keeps the inode open until
// the test ends, so that the number is not reused: a file deleted and
// copied anew cannot get its old number back.
func pinInode(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// procActivity returns the context switches of every thread of process pid
// and the CPU ticks it used.
func procActivity(t *testing.T, pid int) (switches, ticks int64) {
	t.Helper()
	tasks := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(tasks)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		status, err := os.ReadFile(filepath.Join(tasks, e.Name(), "status"))
		if err != nil {
			continue // exited
		}
		for _, l := range lines(string(status)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				switches += n
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after "pid (comm) ": state is the 3rd field, utime the 14th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return switches, utime + stime
}
