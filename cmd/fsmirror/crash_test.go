package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The tests in this file are about the index that `fsmirror watch` keeps in
// --state-dir: what a restart trusts, what it compares, and what it does
// with an index it cannot use. They reuse the process helpers of
// watch_test.go.

// readyRE matches the line fsmirror prints when its initial sync is done.
var readyRE = regexp.MustCompile(`fsmirror: watching .*; initial sync (by comparing the destination|from the index) took \S+, (\d+) files written, (\d+) errors`)

const (
	byCompare = "by comparing the destination"
	fromIndex = "from the index"
	notClean  = "did not stop cleanly; comparing the whole destination"
)

// readyInfo returns how fsmirror did its initial sync (byCompare or
// fromIndex) and how many files it wrote and errors it had, from its
// "watching" line, which must be there.
func readyInfo(t *testing.T, w *watchProc) (how string, written, errs int) {
	t.Helper()
	m := readyRE.FindStringSubmatch(w.stderr.String())
	if m == nil {
		t.Fatalf("no well-formed \"watching\" line:\n%s", w.output())
	}
	written, _ = strconv.Atoi(m[2])
	errs, _ = strconv.Atoi(m[3])
	return m[1], written, errs
}

// requireStart requires fsmirror's initial sync to have been done the way
// want says (byCompare or fromIndex), without errors.
func requireStart(t *testing.T, w *watchProc, want string) (written int) {
	t.Helper()
	how, written, errs := readyInfo(t, w)
	if how != want {
		t.Errorf("initial sync %s, want %s:\n%s", how, want, w.output())
	}
	if errs != 0 {
		var msgs []string
		for _, l := range lines(w.stderr.String()) {
			if strings.HasPrefix(l, "fsmirror: ") && !strings.HasPrefix(l, "fsmirror: watching ") &&
				!strings.Contains(l, "comparing the whole destination") {
				msgs = append(msgs, l)
			}
		}
		t.Errorf("the initial sync reported %d errors; a live mirror is expected to take a source that changes "+
			"under it in its stride (the next event fixes the path), not to report it:\n\t%s\n%s",
			errs, strings.Join(msgs, "\n\t"), w.output())
	}
	return written
}

// indexFiles returns the index files in stateDir (not the ones moved
// aside).
func indexFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, "index-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// indexFile returns the one index file in stateDir.
func indexFile(t *testing.T, stateDir string) string {
	t.Helper()
	m := indexFiles(t, stateDir)
	if len(m) != 1 {
		ents, _ := os.ReadDir(stateDir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("want one index file in the state directory %s, found %q (all: %q)", stateDir, m, names)
	}
	return m[0]
}

// kill9 kills fsmirror with SIGKILL, which must be what ends it, and checks
// that it reported no data race before.
func (w *watchProc) kill9(t *testing.T) {
	t.Helper()
	if !w.running() {
		t.Fatalf("fsmirror exited before it was killed:\n%s", w.output())
	}
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("fsmirror still runs %v after SIGKILL", stopTimeout)
	}
	if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("fsmirror ended with %s, not by the SIGKILL:\n%s", w.cmd.ProcessState, w.output())
	}
	w.checkRaces(t)
}

// backgroundChaos runs testutil.Chaos on src until the returned stop is
// called (also at the end of the test), which returns what it did.
func backgroundChaos(t *testing.T, src string, opt testutil.ChaosOptions) (stop func() (testutil.ChaosStats, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		stats testutil.ChaosStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		s, err := testutil.Chaos(ctx, src, opt)
		done <- result{s, err}
	}()
	var once sync.Once
	var r result
	stop = func() (testutil.ChaosStats, error) {
		once.Do(func() {
			cancel()
			r = <-done
		})
		return r.stats, r.err
	}
	// Before the temporary directories are removed.
	t.Cleanup(func() { stop() })
	return stop
}

// keepLogs writes the whole output of every fsmirror in runs, and the index
// files in stateDir, to the test's artifact directory if the test fails (kept with -artifacts), since a
// failure message shows only the tails.
func keepLogs(t *testing.T, runs *[]*watchProc, stateDir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := t.ArtifactDir()
		// And the index, for a look at what it records.
		files, _ := filepath.Glob(filepath.Join(stateDir, "index-*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600)
			}
		}
		for i, w := range *runs {
			log := fmt.Sprintf("fsmirror %q\n\n== stderr\n%s\n== stdout\n%s", w.args, w.stderr.String(), w.stdout.String())
			name := filepath.Join(dir, fmt.Sprintf("run-%02d.log", i+1))
			if err := os.WriteFile(name, []byte(log), 0o644); err != nil {
				t.Log(err)
				return
			}
		}
		t.Logf("the output of every fsmirror run is in %s (kept with -artifacts)", dir)
	})
}

// TestWatch_CrashRestart kills fsmirror with SIGKILL again and again in the
// middle of a stream of random changes that goes on across the restarts,
// and requires every restart to compare the whole destination (the index
// was not closed cleanly), the mirror to converge once the source is quiet
// with no temporary left, and a restart after a clean stop to trust the
// index and write nothing. -chaos.seed replays the random choices (the
// outcome also depends on scheduling).
func TestWatch_CrashRestart(t *testing.T) {
	t.Parallel()
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -chaos.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	src, dst, outside := srcDstOut(t)
	state := filepath.Join(t.TempDir(), "state")
	root := os.Geteuid() == 0
	chaosOpt := testutil.ChaosOptions{Seed: seed, Ops: 1500, Chown: root, Outside: outside, MaxFiles: 1500}
	stats, err := testutil.Chaos(context.Background(), src, chaosOpt)
	if err != nil {
		t.Fatalf("build the starting tree: %v", err)
	}
	t.Logf("starting tree: %v", stats)

	args := []string{"-v", "--state-dir", state, src, dst}
	var runs []*watchProc
	keepLogs(t, &runs, state)
	w := startWatch(t, args...)
	runs = append(runs, w)
	requireStart(t, w, byCompare) // a first run
	chaosOpt.Seed, chaosOpt.Ops = seed+1, 0
	stopChaos := backgroundChaos(t, src, chaosOpt)

	// plantTemp leaves a temporary in DEST as a killed fsmirror would;
	// the compare at the next start must remove it.
	plantTemp := func(i int) string {
		t.Helper()
		p := filepath.Join(dst, fmt.Sprintf("%s%08x.tmp", fsmirror.TempPrefix, 0xdead0000+i))
		if err := os.WriteFile(p, []byte("half a file"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	const rounds = 8
	for i := range rounds {
		// Now and then fsmirror is killed at a random time from its start,
		// often during the compare that the previous crash made necessary.
		early := i == 2 || i == 4
		d := time.Duration(50+rng.IntN(451)) * time.Millisecond
		time.Sleep(d)
		w.kill9(t)
		when := "after it was ready"
		if early {
			when = "from its start"
		}
		left := tempNames(t, dst)
		planted := plantTemp(i)
		t.Logf("round %d: killed %v %s; %d temporaries of its own left in DEST", i+1, d, when, len(left))
		if early {
			w = startWatchNoWait(t, args...)
			runs = append(runs, w)
			waitFor(t, w, readyTimeout, func() string {
				if !strings.Contains(w.stderr.String(), notClean) {
					return "fsmirror did not say that the last run did not stop cleanly"
				}
				return ""
			})
			continue
		}
		w = startWatchNoWait(t, args...)
		runs = append(runs, w)
		w.waitReady(t)
		if !strings.Contains(w.stderr.String(), notClean) {
			t.Errorf("restart after kill -9: fsmirror does not say that the last run did not stop cleanly:\n%s", w.output())
		}
		written := requireStart(t, w, byCompare)
		t.Logf("round %d: restart compared the destination, %d files written", i+1, written)
		// The compare is done: what the killed run left is gone.
		for _, p := range append(left, planted) {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("round %d: the temporary %s, left by the killed run, is still in DEST after the restart's compare", i+1, p)
			}
		}
	}
	if !strings.Contains(w.stderr.String(), "fsmirror: watching ") {
		w.waitReady(t)
	}
	// Changes go on for a little while after the last restart.
	time.Sleep(time.Duration(200+rng.IntN(300)) * time.Millisecond)
	stats, err = stopChaos()
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	t.Logf("chaos across %d kills: %d changes: %v", rounds, stats.Total(), stats)

	waitMirror(t, w, src, dst, convergeTimeout, watchDiffOpt())
	if got := tempNames(t, dst); len(got) > 0 {
		t.Errorf("temporaries in %s after the restarts, once the mirror converged: %q", dst, got)
	}
	stopped := w
	finish(t, w, src, dst)

	// A clean stop: the restart trusts the index and has nothing to do,
	// unless the stopped run said that no full compare had succeeded since
	// the crash (directories vanished under the churn during each one).
	incomplete := strings.Contains(stopped.stderr.String(), "the next start compares again")
	w = startWatchNoWait(t, args...)
	runs = append(runs, w)
	w.waitReady(t)
	if incomplete {
		t.Logf("the stopped run had no complete compare yet and said so; the restart compares again")
		if written := requireStart(t, w, byCompare); written != 0 {
			t.Errorf("restart after a converged mirror wrote %d files, want 0:\n%s", written, w.output())
		}
	} else {
		if strings.Contains(w.stderr.String(), "did not stop cleanly") || strings.Contains(w.stderr.String(), "fsmirror: index ") {
			t.Errorf("restart after a clean stop says something about the last run or the index:\n%s", w.output())
		}
		if written := requireStart(t, w, fromIndex); written != 0 {
			t.Errorf("restart after a clean stop with nothing changed wrote %d files, want 0:\n%s", written, w.output())
		}
	}
	testutil.AssertMirror(t, src, dst, watchDiffOpt())
	finish(t, w, src, dst)
}

// TestWatch_IndexRecovery checks what a restart does with an index it cannot
// or must not use, and how changes made to DEST behind fsmirror's back are
// (and are not) found.
func TestWatch_IndexRecovery(t *testing.T) {
	t.Parallel()
	const t1 = int64(1_600_000_000_123_456_789)
	tree := []testutil.Node{
		testutil.File("keep", "keep", 0o644).Mtime(t1),
		testutil.File("sub/changed", "the original content", 0o644).Mtime(t1),
		testutil.File("sub/deleted", "deleted from DEST", 0o600).Mtime(t1),
		testutil.File("sub/deeper/x", "x", 0o644).Mtime(t1),
		testutil.Symlink("sub/link", "changed").Mtime(t1),
		testutil.Dir("sub/deeper", 0o755).Mtime(t1),
		testutil.Dir("sub", 0o755).Mtime(t1),
		testutil.Dir(".", 0o755).Mtime(t1),
	}
	path := func(root string, rel ...string) string { return filepath.Join(append([]string{root}, rel...)...) }
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// env is one mirror with its own state directory, made and stopped
	// cleanly once.
	type env struct {
		src, dst, state string
		args            []string
	}
	setup := func(t *testing.T) *env {
		t.Helper()
		src, dst, _ := srcDstOut(t)
		testutil.Build(t, src, tree...)
		// Some more, of every kind, in a directory of their own.
		if err := os.Mkdir(path(src, "more"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := testutil.Chaos(context.Background(), path(src, "more"), testutil.ChaosOptions{Seed: 7, Ops: 300, Workers: 1, MaxFiles: 200}); err != nil {
			t.Fatal(err)
		}
		e := &env{src: src, dst: dst, state: filepath.Join(t.TempDir(), "state")}
		e.args = []string{"-v", "--state-dir", e.state, src, dst}
		w := startWatch(t, e.args...)
		requireStart(t, w, byCompare)
		testutil.AssertMirror(t, src, dst, watchDiffOpt())
		w.stop(t, syscall.SIGTERM)
		indexFile(t, e.state)
		return e
	}
	// behindItsBack changes DEST as fsmirror would never: a file gets
	// other content of another size (its mtime kept), one is deleted, one
	// is added. The directory's mtime is put back, so that only those
	// three differ. It returns the three paths.
	behindItsBack := func(t *testing.T, dst string) []string {
		t.Helper()
		sub := lstat(t, path(dst, "sub"))
		changed := lstat(t, path(dst, "sub", "changed"))
		must(t, os.WriteFile(path(dst, "sub", "changed"), []byte("changed behind fsmirror's back, longer"), 0o644))
		must(t, setMtime(path(dst, "sub", "changed"), changed.Mtim.Nano()))
		must(t, os.Remove(path(dst, "sub", "deleted")))
		must(t, os.WriteFile(path(dst, "sub", "added"), []byte("not in SRC"), 0o644))
		must(t, setMtime(path(dst, "sub"), sub.Mtim.Nano()))
		return []string{"sub/changed", "sub/deleted", "sub/added"}
	}
	// requireDiffs requires the differences between src and dst to be
	// about paths, each of them, and nothing else.
	requireDiffs := func(t *testing.T, src, dst string, paths []string) {
		t.Helper()
		d := diffs(src, dst, watchDiffOpt())
		for _, p := range paths {
			if !slices.ContainsFunc(d, func(l string) bool { return strings.HasPrefix(l, p+": ") }) {
				t.Errorf("no difference about %s, which was changed on DEST behind fsmirror's back; differences:\n%s", p, listDiffs(d))
			}
		}
		for _, l := range d {
			if !slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(l, p+": ") }) {
				t.Errorf("unexpected difference %s", l)
			}
		}
	}
	// stray adds a file to DEST that a compare of the whole destination
	// deletes, and a restart from the index does not see.
	stray := func(t *testing.T, dst string) string {
		t.Helper()
		p := path(dst, "sub", "deeper", "stray")
		must(t, os.WriteFile(p, []byte("stray"), 0o644))
		return p
	}
	gone := func(p string) func() string {
		return func() string {
			if _, err := os.Lstat(p); err == nil {
				return p + " is still on DEST"
			}
			return ""
		}
	}

	// (a) An index file that cannot be read is replaced by an empty one,
	// said so, and the whole destination is compared.
	damage := map[string]func(t *testing.T, file string){
		"garbage": func(t *testing.T, file string) {
			st, err := os.Stat(file)
			must(t, err)
			b := make([]byte, max(st.Size(), 64<<10))
			rand.NewChaCha8([32]byte{1}).Read(b)
			must(t, os.WriteFile(file, b, 0o600))
		},
		"empty": func(t *testing.T, file string) {
			must(t, os.Truncate(file, 0))
		},
		// Cut after its first 4 pages: the meta pages are intact, the
		// pages they point to are gone (a file that lost its tail).
		"truncated": func(t *testing.T, file string) {
			must(t, os.Truncate(file, 16<<10))
		},
		"text": func(t *testing.T, file string) {
			must(t, os.WriteFile(file, []byte("this is not a bbolt file\n"), 0o600))
		},
	}
	for _, name := range []string{"garbage", "empty", "truncated", "text"} {
		t.Run("corrupt index/"+name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			file := indexFile(t, e.state)
			damage[name](t, file)
			p := stray(t, e.dst)
			must(t, os.WriteFile(path(e.src, "sub", "new while stopped"), []byte("new"), 0o644))
			w := startWatch(t, e.args...)
			s := w.stderr.String()
			if !strings.Contains(s, "fsmirror: index "+file+": ") || !strings.Contains(s, "comparing the whole destination") {
				t.Errorf("fsmirror does not say that the index %s was damaged and that it compares the whole destination:\n%s", file, w.output())
			}
			requireStart(t, w, byCompare)
			waitFor(t, w, convergeTimeout, gone(p))
			waitMirror(t, w, e.src, e.dst, convergeTimeout, watchDiffOpt())
			finish(t, w, e.src, e.dst)
			indexFile(t, e.state)
			// The new index is good: the next restart trusts it.
			w = startWatch(t, e.args...)
			if written := requireStart(t, w, fromIndex); written != 0 {
				t.Errorf("restart from the rebuilt index wrote %d files, want 0", written)
			}
			finish(t, w, e.src, e.dst)
		})
	}

	// (b) No index: a compare of the whole destination.
	t.Run("deleted index", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		must(t, os.Remove(indexFile(t, e.state)))
		p := stray(t, e.dst)
		must(t, os.WriteFile(path(e.src, "sub", "new while stopped"), []byte("new"), 0o644))
		w := startWatch(t, e.args...)
		requireStart(t, w, byCompare)
		waitFor(t, w, convergeTimeout, gone(p))
		waitMirror(t, w, e.src, e.dst, convergeTimeout, watchDiffOpt())
		finish(t, w, e.src, e.dst)
		indexFile(t, e.state)
	})

	// (c) DEST changed while fsmirror is stopped: a restart that trusts
	// the index does not notice (the documented behaviour: the index is
	// believed instead of listing DEST); --verify-on-start repairs it.
	t.Run("DEST changed while stopped", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		changed := behindItsBack(t, e.dst)
		w := startWatch(t, e.args...)
		if written := requireStart(t, w, fromIndex); written != 0 {
			t.Errorf("restart from the index wrote %d files, want 0 (nothing changed in SRC)", written)
		}
		// fsmirror works: a change in SRC after the start reaches DEST
		// (and one to the directory with the changes in DEST, too).
		must(t, os.WriteFile(path(e.src, "later"), []byte("later"), 0o644))
		must(t, os.WriteFile(path(e.src, "sub", "deeper", "later"), []byte("later"), 0o644))
		waitFor(t, w, convergeTimeout, func() string {
			for _, p := range []string{"later", "sub/deeper/later"} {
				if b, _ := os.ReadFile(path(e.dst, p)); string(b) != "later" {
					return p + " not mirrored"
				}
			}
			return ""
		})
		time.Sleep(300 * time.Millisecond) // and it had time to do more
		requireDiffs(t, e.src, e.dst, changed)
		if t.Failed() {
			t.Logf("fsmirror's output:\n%s", w.output())
		}
		w.stop(t, syscall.SIGTERM)
		requireDiffs(t, e.src, e.dst, changed)

		w = startWatch(t, append([]string{"--verify-on-start"}, e.args...)...)
		requireStart(t, w, byCompare)
		waitMirror(t, w, e.src, e.dst, convergeTimeout, watchDiffOpt())
		finish(t, w, e.src, e.dst)
		// The compare rebuilt the index: trusted again, nothing to do.
		w = startWatch(t, e.args...)
		if written := requireStart(t, w, fromIndex); written != 0 {
			t.Errorf("restart after --verify-on-start wrote %d files, want 0", written)
		}
		testutil.AssertMirror(t, e.src, e.dst, watchDiffOpt())
		finish(t, w, e.src, e.dst)
	})

	// (d) The index of DEST records another source: refused before
	// anything is written, naming both sources.
	t.Run("same DEST, other SRC", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		other := path(t.TempDir(), "other-src")
		testutil.Build(t, other, testutil.File("other", "from the other source", 0o644))
		before, err := treeState(e.dst)
		must(t, err)
		idxBefore, err := os.ReadFile(indexFile(t, e.state))
		must(t, err)
		r := runFsmirror(t, "watch", "--state-dir", e.state, other, e.dst)
		if r.code != 2 {
			t.Errorf("watch of another source to the same DEST with the same state directory: exit %d, want 2\n%v", r.code, r)
		}
		if !strings.Contains(r.stderr, e.src) || !strings.Contains(r.stderr, other) {
			t.Errorf("the error does not name both sources, %s (recorded) and %s (given):\n%s", e.src, other, r.stderr)
		}
		if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
			t.Errorf("a stack trace for a setup error:\n%s", r.stderr)
		}
		after, err := treeState(e.dst)
		must(t, err)
		if after != before {
			t.Errorf("DEST was changed by the refused run")
		}
		idxAfter, err := os.ReadFile(indexFile(t, e.state))
		must(t, err)
		if string(idxAfter) != string(idxBefore) {
			t.Errorf("the index file was changed by the refused run")
		}
		t.Logf("refused: %s", strings.TrimSpace(r.stderr))
		// The mirror the index belongs to is untouched.
		w := startWatch(t, e.args...)
		if written := requireStart(t, w, fromIndex); written != 0 {
			t.Errorf("restart of the index's own mirror wrote %d files, want 0", written)
		}
		finish(t, w, e.src, e.dst)
	})

	// (e) A periodic compare repairs DEST changed behind fsmirror's back
	// while it runs.
	t.Run("rescan interval", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		args := append([]string{"--rescan-interval", "300ms"}, e.args...)
		w := startWatch(t, args...)
		requireStart(t, w, fromIndex)
		behindItsBack(t, e.dst)
		must(t, os.WriteFile(path(e.dst, "stray"), []byte("stray"), 0o644))
		must(t, os.RemoveAll(path(e.dst, "sub", "deeper")))
		waitMirror(t, w, e.src, e.dst, convergeTimeout, watchDiffOpt())
		// Again, once repaired: every rescan finds what changed since.
		must(t, os.WriteFile(path(e.dst, "keep"), []byte("again"), 0o644))
		must(t, os.Remove(path(e.dst, "sub", "changed")))
		waitMirror(t, w, e.src, e.dst, convergeTimeout, watchDiffOpt())
		finish(t, w, e.src, e.dst)
		if n := strings.Count(w.stderr.String(), "\n"); n > 1 {
			t.Logf("fsmirror printed %d lines on stderr:\n%s", n, tail(w.stderr.String(), 20))
		}
	})
}
