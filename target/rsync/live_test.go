package rsync

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/internal/testutil"
	"github.com/fsmirror/fsmirror/watch"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 6*time.Second, "how long the convergence tests change the source at random")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed of the convergence tests' random changes (0: from the clock)")
)

// convergeTimeout bounds the wait for the destination to equal the source
// once the source is quiet.
const convergeTimeout = 60 * time.Second

// noLinks are the chaos operations left out of the convergence workload
// through rsync: a hard link made or renamed while watching arrives as a
// separate copy (rsync -H links only the names of one run), which the
// documentation says; whole-tree syncs keep hard links (TestTarget_SyncAll).
var noLinks = []testutil.ChaosOp{testutil.ChaosLink, testutil.ChaosAppendLink}

// liveMirror is a watcher and a Batcher feeding a Target.
type liveMirror struct {
	w       *watch.Watcher
	b       *engine.Batcher
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	notices []string
}

// startLive watches src and mirrors it through tg until stop.
func startLive(t *testing.T, src string, tg *Target, opt engine.BatchOptions) *liveMirror {
	t.Helper()
	w, err := watch.New(src, watch.Options{Exclude: opt.Filter.Excluded})
	if err != nil {
		t.Fatal(err)
	}
	m := &liveMirror{w: w, done: make(chan error, 1)}
	opt.Report = func(e engine.Event) {
		m.mu.Lock()
		m.notices = append(m.notices, fmt.Sprintf("%v %q: %v", e.Kind, e.Path, e.Err))
		m.mu.Unlock()
	}
	m.b = engine.NewBatcher(tg, opt)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.b.InitialSync(ctx); err != nil {
		w.Close()
		t.Fatalf("initial sync: %v", err)
	}
	go func() { m.done <- m.b.Run(ctx, w.Events()) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop stops the mirror; it must stop within a bounded time.
func (m *liveMirror) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		if err != nil && err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run did not return within 30s of its context's end")
	}
	m.w.Close()
}

func (m *liveMirror) log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.notices, "\n")
}

// waitMirror polls until dst mirrors src, and fails the test if it does not
// within convergeTimeout.
func waitMirror(t *testing.T, m *liveMirror, src, dst string, opt testutil.DiffOptions) {
	t.Helper()
	start := time.Now()
	for {
		diffs, err := testutil.Diff(src, dst, opt)
		if err == nil && len(diffs) == 0 {
			t.Logf("converged %v after the source went quiet", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case err := <-m.done:
			t.Fatalf("Run returned while changes were pending: %v\nnotices:\n%s", err, m.log())
		default:
		}
		if time.Since(start) > convergeTimeout {
			if len(diffs) > 40 {
				diffs = append(diffs[:40], fmt.Sprintf("... and %d more", len(diffs)-40))
			}
			t.Fatalf("%s is not a mirror of %s %v after the source went quiet (compare error: %v):\n\t%s\nnotices:\n%s",
				dst, src, convergeTimeout, err, strings.Join(diffs, "\n\t"), m.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBatcher_ConvergesThroughDaemon is the convergence workload through a
// real rsync daemon: random changes at full speed while a watcher and a
// Batcher mirror them, the daemon restarted (every connection cut) in the
// middle, then the destination must become an exact mirror.
func TestBatcher_ConvergesThroughDaemon(t *testing.T) {
	t.Parallel()
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	without := noLinks
	if d.SanitizesSymlinks {
		t.Logf("the rsync daemon cannot chroot (not run by root), so it rewrites symlinks that leave the module: no random symlinks")
		without = append(without, testutil.ChaosSymlink)
	}
	dest, err := ParseURL(d.URL("m"))
	must(t, err)
	converge(t, dest, Options{PasswordFile: d.PasswordFile}, filepath.Join(d.Path, "m"), without, d.Restart)
}

// TestBatcher_ConvergesThroughSSH is the same workload through rsync -e ssh
// to a real sshd, with every SSH connection dropped in the middle.
func TestBatcher_ConvergesThroughSSH(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	dst := filepath.Join(t.TempDir(), "dst")
	dest, err := ParseHostPath(s.User + "@127.0.0.1:" + dst)
	must(t, err)
	converge(t, dest, Options{SSH: s.Command}, dst, noLinks, func() error {
		s.KillSessions()
		return nil
	})
}

// converge runs the convergence workload into dest, whose files are at dst
// on this machine, and calls cut in the middle of it.
func converge(t *testing.T, dest Dest, opt Options, dst string, without []testutil.ChaosOp, cut func() error) {
	dir := t.TempDir()
	src, outside := filepath.Join(dir, "src"), filepath.Join(dir, "outside")
	for _, p := range []string{src, outside} {
		must(t, os.Mkdir(p, 0o755))
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d (replay with -chaos.seed=%d)", seed, seed)
	root := os.Geteuid() == 0
	testutil.NastyTree(t, src)
	if _, err := testutil.Chaos(context.Background(), src, testutil.ChaosOptions{Seed: seed, Ops: 2000, Chown: root, Without: without}); err != nil {
		t.Fatal(err)
	}
	opt.Timeout = 20 * time.Second
	tg, err := New(src, dest, opt)
	must(t, err)
	m := startLive(t, src, tg, engine.BatchOptions{Processes: 2, RetryMin: 10 * time.Millisecond, RetryMax: 500 * time.Millisecond})

	ctx, cancel := context.WithTimeout(context.Background(), *chaosDuration)
	defer cancel()
	cutDone := make(chan error, 1)
	go func() {
		time.Sleep(*chaosDuration / 2)
		cutDone <- cut()
	}()
	stats, err := testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: seed + 1, Chown: root, Outside: outside, Without: without})
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	if err := <-cutDone; err != nil {
		t.Fatalf("cut the connections: %v", err)
	}
	t.Logf("chaos for %v: %d changes: %v", *chaosDuration, stats.Total(), stats)
	waitMirror(t, m, src, dst, testutil.DiffOptions{Owner: root})
	if !strings.Contains(m.log(), "trying again") {
		t.Logf("no run failed when the connections were cut (it fell between runs); notices:\n%s", m.log())
	}
}
