// Command restartbench measures how long `fsmirror watch` takes to be ready
// again after a restart, on a tree of many small files, against an rsync
// no-change run over the same tree in the same run.
//
// fsmirror keeps an index of what its destination holds (--state-dir).
// After a clean stop (SIGTERM) a restart trusts it and only stat-walks the
// source; after a crash it compares the whole destination. For every run
// restartbench times, from the exec of `fsmirror watch` until its
// "fsmirror: watching" line:
//
//	(i)   a restart after a clean stop, nothing changed while it was down
//	(ii)  a restart after a clean stop, -changes files rewritten while it was down
//	(iii) a restart after kill -9 (a compare of the whole destination), for reference
//
// and `rsync -a SRC/ DST/` over an up-to-date copy (a no-change run). Every
// fsmirror step is checked with testutil.Diff: a fast wrong mirror is not a
// result, and the program fails (WRONG RESULT, exit 1) instead of printing
// it. A restart that does not do its initial sync the way the step needs
// (from the index, or by comparing the destination) fails it too: the number
// would not measure what it claims.
//
// Usage:
//
//	go run ./bench/restartbench [-fsmirror PATH] [-dir /dev/shm] [-files 50000] [-dirs 2500] [-runs 3] [-changes 100] [-watcher fanotify]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The target of the restart issue: a restart with nothing to do, from the
// index, costs at most this fraction of an rsync no-change run.
const targetRatio = 0.3

func main() {
	var (
		fsmirrorBin = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir         = flag.String("dir", "/dev/shm", "directory to hold the source and destination trees")
		files       = flag.Int("files", 50_000, "number of files in the source tree")
		dirs        = flag.Int("dirs", 2_500, "number of directories in the source tree")
		runs        = flag.Int("runs", 3, "runs; the median is reported")
		changes     = flag.Int("changes", 100, "files rewritten while fsmirror is down, for restart (ii)")
		seed        = flag.Int64("seed", 1, "seed of the source tree and of the changes")
		timeout     = flag.Duration("timeout", 5*time.Minute, "longest wait for fsmirror to be ready or to exit")
		keep        = flag.Bool("keep", false, "keep the work directory")
		watcher     = flag.String("watcher", "", "run fsmirror watch with --watcher `KIND` (auto, inotify or fanotify; default: fsmirror's default)")
	)
	benchutil.ParseFlags("restartbench",
		"Times how long fsmirror watch takes to be ready after a restart (clean stop with no\n"+
			"change, clean stop with changes, kill -9) against an rsync -a no-change run.",
		func() bool {
			return *runs >= 1 && *files >= 1 && *dirs >= 0 && *changes >= 1 && *changes <= *files && *timeout > 0
		})
	cfg := config{
		fsmirror: *fsmirrorBin, dir: *dir, files: *files, dirs: *dirs, runs: *runs,
		changes: *changes, seed: *seed, timeout: *timeout, keep: *keep, watcher: *watcher,
	}
	benchutil.Main("restartbench", func(ctx context.Context) error { return run(ctx, os.Stdout, cfg) })
}

type config struct {
	fsmirror    string
	dir         string
	files, dirs int
	runs        int
	changes     int
	seed        int64
	timeout     time.Duration
	keep        bool
	watcher     string // --watcher of fsmirror watch, if not empty
}

// How fsmirror says it did its initial sync.
const (
	fromIndex = "from the index"
	byCompare = "by comparing the destination"
)

// A step is one kind of fsmirror restart.
type step struct {
	label string // in the tables
	want  string // fromIndex or byCompare
}

var steps = []step{
	{"(i)   clean stop, no change", fromIndex},
	{"(ii)  clean stop, N changed", fromIndex},
	{"(iii) after kill -9", byCompare},
}

// sample is one timed restart or command.
type sample struct {
	wall, cpu time.Duration
	written   int           // files fsmirror says it wrote
	sync      time.Duration // how long fsmirror says its initial sync took
	late      time.Duration // not 0: DEST was a mirror only this long after the ready line
}

// bench is the state of one benchmark.
type bench struct {
	cfg      config
	w        io.Writer
	bin      string
	src      string
	dst      string // fsmirror's
	rdst     string // rsync's
	state    string
	rsync    string
	files    []string // the regular files of src, relative
	rng      *rand.Rand
	samples  [][]sample // by step
	rsyncNC  []sample
	firstRun sample
}

func run(ctx context.Context, w io.Writer, cfg config) (err error) {
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		return fmt.Errorf("rsync: %w (it is the reference; install it)", err)
	}
	work, binDir, cleanup, err := benchutil.WorkDirs(w, cfg.dir, "restartbench", cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	bin, err := benchutil.FsmirrorBinary(ctx, w, cfg.fsmirror, binDir, "(give a binary with -fsmirror)")
	if err != nil {
		return err
	}
	printMachine(w, cfg.dir)
	if cfg.watcher != "" {
		fmt.Fprintf(w, "watcher: fsmirror watch --watcher %s\n", cfg.watcher)
	}

	b := &bench{
		cfg: cfg, w: w, bin: bin, rsync: rsync,
		src: filepath.Join(work, "src"), dst: filepath.Join(work, "dst-fsmirror"),
		rdst: filepath.Join(work, "dst-rsync"), state: filepath.Join(work, "state"),
		rng:     rand.New(rand.NewPCG(uint64(cfg.seed), 0x72657374617274)),
		samples: make([][]sample, len(steps)),
	}
	start := time.Now()
	total, err := testutil.SmallFilesTree(b.src, cfg.files, cfg.dirs, cfg.seed)
	if err != nil {
		return fmt.Errorf("build source tree: %w", err)
	}
	if b.files, err = regularFiles(b.src); err != nil {
		return err
	}
	fmt.Fprintf(w, "tree:    %d files in %d dirs, %.1f MB, median size ~5 KiB, seed %d (built in %.1fs)\n",
		cfg.files, cfg.dirs, float64(total)/1e6, cfg.seed, time.Since(start).Seconds())

	// The first start fills the empty DEST and builds the index; rsync's
	// copy is made once. Neither is what is measured.
	first, _, err := b.restart(ctx, "first start into an empty DEST", byCompare, false)
	if err != nil {
		return err
	}
	b.firstRun = first
	if err := os.Mkdir(b.rdst, 0o755); err != nil {
		return err
	}
	if _, err := timeCmd(ctx, b.rsyncArgv()); err != nil {
		return fmt.Errorf("rsync, first copy: %w", err)
	}
	fmt.Fprintf(w, "setup:   first start of fsmirror watch into an empty DEST %.3fs (%d files written); rsync's copy made\n\n",
		first.wall.Seconds(), first.written)

	for r := range cfg.runs {
		// rsync before fsmirror in even runs, after in odd ones, so that
		// machine noise falls on both alike.
		if r%2 == 0 {
			if err := b.rsyncRun(ctx); err != nil {
				return err
			}
		}
		for i, st := range steps {
			if err := ctx.Err(); err != nil {
				return err
			}
			if i == 1 {
				if err := b.change(); err != nil {
					return err
				}
			}
			if i == 2 {
				if err := b.crash(ctx); err != nil {
					return err
				}
			}
			s, _, err := b.restart(ctx, st.label, st.want, false)
			if err != nil {
				return err
			}
			b.samples[i] = append(b.samples[i], s)
		}
		if r%2 == 1 {
			if err := b.rsyncRun(ctx); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "run %d/%d  ", r+1, cfg.runs)
		for i := range steps {
			s := b.samples[i][r]
			fmt.Fprintf(w, "%s %6.3fs (cpu %6.3fs, %3d written)   ", []string{"(i)", "(ii)", "(iii)"}[i],
				s.wall.Seconds(), s.cpu.Seconds(), s.written)
		}
		s := b.rsyncNC[r]
		fmt.Fprintf(w, "rsync no-change %6.3fs (cpu %6.3fs)\n", s.wall.Seconds(), s.cpu.Seconds())
		if n := b.samples[0][r].written; n != 0 {
			fmt.Fprintf(w, "note: run %d, (i): fsmirror wrote %d files though nothing changed\n", r+1, n)
		}
		if n := b.samples[1][r].written; n != cfg.changes {
			fmt.Fprintf(w, "note: run %d, (ii): fsmirror wrote %d files for %d changed\n", r+1, n, cfg.changes)
		}
		for i, st := range steps {
			if late := b.samples[i][r].late; late > 0 {
				fmt.Fprintf(w, "note: run %d, %s: DEST was not yet a mirror at the ready line, it was %.3fs later\n",
					r+1, strings.TrimSpace(st.label), late.Seconds())
			}
		}
	}
	fmt.Fprintln(w)
	report(w, b.samples, b.rsyncNC, cfg)
	fmt.Fprintf(w, "\nfsmirror: DEST checked with testutil.Diff after every restart and found an exact mirror\n"+
		"(%s).\n", benchutil.CheckedAttrs())
	return nil
}

// rsyncArgv is the rsync command of the reference.
func (b *bench) rsyncArgv() []string {
	return []string{b.rsync, "-a", b.src + "/", b.rdst + "/"}
}

// rsyncRun brings rsync's copy up to date (untimed: the source may have
// changed), then times a no-change run.
func (b *bench) rsyncRun(ctx context.Context) error {
	if _, err := timeCmd(ctx, b.rsyncArgv()); err != nil {
		return fmt.Errorf("rsync: %w", err)
	}
	s, err := timeCmd(ctx, b.rsyncArgv())
	if err != nil {
		return fmt.Errorf("rsync, no-change run: %w", err)
	}
	b.rsyncNC = append(b.rsyncNC, s)
	return nil
}

// change rewrites cfg.changes distinct random files of the source with new
// content and a new mtime, as an editor does (a temporary renamed over the
// file, with the file's mode), while fsmirror is down.
func (b *bench) change() error {
	for _, rel := range pick(b.rng, b.files, b.cfg.changes) {
		if err := rewrite(filepath.Join(b.src, rel), b.rng); err != nil {
			return fmt.Errorf("change the source: %w", err)
		}
	}
	return nil
}

// crash starts fsmirror (from its index), lets it be ready, and kills it
// with SIGKILL, which leaves the index unclean.
func (b *bench) crash(ctx context.Context) error {
	_, d, err := b.restart(ctx, "start before kill -9", fromIndex, true)
	if err != nil {
		return err
	}
	return d.Kill()
}

// restart starts `fsmirror watch`, times it until its "watching" line,
// requires its initial sync to have been done the way want says, waits for
// DEST to be an exact mirror, and stops it with SIGTERM (exit 0 required)
// unless keep is set, in which case the running process is returned.
func (b *bench) restart(ctx context.Context, label, want string, keep bool) (_ sample, _ *benchutil.Daemon, err error) {
	argv := []string{b.bin, "watch", "--state-dir", b.state}
	if b.cfg.watcher != "" {
		argv = append(argv, "--watcher", b.cfg.watcher)
	}
	argv = append(argv, b.src, b.dst)
	d, err := benchutil.StartDaemon("fsmirror", argv, func(line string) bool { return strings.HasPrefix(line, "fsmirror: watching ") })
	if err != nil {
		return sample{}, nil, err
	}
	defer func() {
		if !keep || err != nil {
			d.Kill()
		}
	}()
	if err := d.WaitReady(ctx, b.cfg.timeout); err != nil {
		return sample{}, nil, fmt.Errorf("%s: %w", label, err)
	}
	line, readyAt := d.ReadyLine()
	s := sample{wall: readyAt.Sub(d.Started)}
	if cpu, err := d.CPU(); err == nil {
		s.cpu = cpu
	}
	how, took, written, errs, ok := parseReady(line)
	if !ok {
		return s, nil, fmt.Errorf("%s: cannot read fsmirror's ready line %q", label, line)
	}
	s.written, s.sync = written, took
	if how != want {
		return s, nil, fmt.Errorf("%s: fsmirror did its initial sync %s, not %s: the measurement would not be what it claims; its output:\n%s",
			label, how, want, d.Tail(20))
	}
	if errs != 0 {
		return s, nil, fmt.Errorf("%s: fsmirror reported %d errors in its initial sync; its output:\n%s", label, errs, d.Tail(20))
	}
	// DEST must be a mirror when fsmirror says it is ready; a few seconds
	// are allowed for directory times put back once it is idle.
	t0 := time.Now()
	for try := 0; ; try++ {
		diffs, err := testutil.Diff(b.src, b.dst, testutil.DiffOptions{Owner: os.Geteuid() == 0})
		if err != nil {
			return s, nil, fmt.Errorf("%s: check DEST: %w", label, err)
		}
		if len(diffs) == 0 {
			if try > 0 {
				s.late = time.Since(t0)
			}
			break
		}
		if time.Since(t0) > 5*time.Second {
			msg := fmt.Sprintf("WRONG RESULT: %s: DEST is not a mirror of the source %v after fsmirror said it was ready: %d differences:\n\t%s",
				label, time.Since(t0).Round(time.Millisecond), len(diffs), benchutil.FormatDiffs(diffs))
			return s, nil, errors.New(msg + "\nno timings are reported for a wrong mirror")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if keep {
		return s, d, nil
	}
	if note := d.Stop(b.cfg.timeout, func(err error) bool { return err == nil }); note != "" {
		return s, nil, fmt.Errorf("%s: %s", label, note)
	}
	return s, nil, nil
}

// readyRE matches fsmirror's ready line.
var readyRE = regexp.MustCompile(`^fsmirror: watching .*; initial sync (by comparing the destination|from the index) took (\S+), (\d+) files written, (\d+) errors`)

// parseReady reads how fsmirror did its initial sync, how long it says that
// took, and the files it wrote and errors it had, from its ready line.
func parseReady(line string) (how string, took time.Duration, written, errs int, ok bool) {
	m := readyRE.FindStringSubmatch(line)
	if m == nil {
		return "", 0, 0, 0, false
	}
	took, err0 := time.ParseDuration(m[2])
	written, err1 := strconv.Atoi(m[3])
	errs, err2 := strconv.Atoi(m[4])
	return m[1], took, written, errs, err0 == nil && err1 == nil && err2 == nil
}

// regularFiles returns the regular files below root, relative to it, in
// walk order.
func regularFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// pick returns n distinct elements of from, chosen at random.
func pick(rng *rand.Rand, from []string, n int) []string {
	n = min(n, len(from))
	idx := rng.Perm(len(from))[:n]
	out := make([]string, n)
	for i, j := range idx {
		out[i] = from[j]
	}
	return out
}

// rewrite gives the file at path new random content of about its size
// and the current time as its mtime, keeping its mode: it writes a
// temporary next to it and renames it over the file.
func rewrite(path string, rng *rand.Rand) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	size := int(st.Size) + 1 + rng.IntN(64) // a new size too
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	tmp := filepath.Join(filepath.Dir(path), ".restartbench-"+strconv.FormatUint(rng.Uint64(), 36))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, os.FileMode(st.Mode&0o777)); err != nil {
		os.Remove(tmp)
		return err
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(tmp, int(st.Uid), int(st.Gid)); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	now := time.Now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// timeCmd times argv with benchutil.TimeCmd.
func timeCmd(ctx context.Context, argv []string) (sample, error) {
	wall, cpu, err := benchutil.TimeCmd(ctx, argv)
	return sample{wall: wall, cpu: cpu}, err
}

// report prints the medians of every restart and of rsync's no-change run,
// their ratios, and whether the target is met.
func report(w io.Writer, samples [][]sample, rsyncNC []sample, cfg config) {
	fmt.Fprintf(w, "median of %d runs (wall clock from the exec of fsmirror watch until its \"fsmirror: watching\" line;\n"+
		"CPU = user+sys of fsmirror until then, of rsync and its children for rsync; \"of which initial sync\"\n"+
		"is the time fsmirror's line gives its initial sync: the rest is start-up, index and watch set-up)\n\n", cfg.runs)
	tw := benchutil.NewTable(w)
	fmt.Fprintln(tw, "restart of fsmirror watch\twall\tCPU\tof which initial sync\tfiles written\tinitial sync")
	meds := make([]sample, len(steps))
	for i, st := range steps {
		meds[i] = median(samples[i])
		label := strings.Replace(st.label, "N changed", strconv.Itoa(cfg.changes)+" changed", 1)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", label, benchutil.Secs(meds[i].wall), benchutil.Secs(meds[i].cpu),
			benchutil.Secs(meds[i].sync), writtenRange(samples[i]), st.want)
	}
	rs := median(rsyncNC)
	fmt.Fprintf(tw, "rsync -a SRC/ DST/, no change\t%s\t%s\t\t\t\n", benchutil.Secs(rs.wall), benchutil.Secs(rs.cpu))
	tw.Flush()

	fmt.Fprintln(w)
	tw = benchutil.NewTable(w)
	fmt.Fprintln(tw, "ratio to rsync's no-change run\twall\tCPU")
	for i, st := range steps {
		label := strings.Replace(st.label, "N changed", strconv.Itoa(cfg.changes)+" changed", 1)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", label, benchutil.Ratio(meds[i].wall, rs.wall), benchutil.Ratio(meds[i].cpu, rs.cpu))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = benchutil.NewTable(w)
	fmt.Fprintln(tw, "target (wall clock)\tmeasured\tresult")
	r := float64(meds[0].wall) / float64(rs.wall)
	fmt.Fprintf(tw, "(i) restart, no change ≤ %.1f× rsync no-change\t%.2f×\t%s\n", targetRatio, r, benchutil.Verdict(r <= targetRatio))
	tw.Flush()
}

// writtenRange shows the files written by the samples: one number, or the
// smallest and largest.
func writtenRange(samples []sample) string {
	if len(samples) == 0 {
		return "-"
	}
	lo, hi := samples[0].written, samples[0].written
	for _, s := range samples {
		lo, hi = min(lo, s.written), max(hi, s.written)
	}
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// median returns the median wall, CPU and initial sync times of samples,
// each taken on its own.
func median(samples []sample) sample {
	walls, cpus, syncs := make([]time.Duration, len(samples)), make([]time.Duration, len(samples)), make([]time.Duration, len(samples))
	for i, s := range samples {
		walls[i], cpus[i], syncs[i] = s.wall, s.cpu, s.sync
	}
	return sample{wall: benchutil.MedianOf(walls), cpu: benchutil.MedianOf(cpus), sync: benchutil.MedianOf(syncs)}
}

// printMachine prints what the numbers depend on: CPUs, kernel, the
// filesystem under dir, and the version of rsync.
func printMachine(w io.Writer, dir string) {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s\n", runtime.NumCPU(), benchutil.CPUModel(), benchutil.Kernel(), runtime.Version())
	fmt.Fprintf(w, "dir:     %s on %s\n", dir, benchutil.FSType(dir))
	if out, err := exec.Command("rsync", "--version").Output(); err == nil {
		fmt.Fprintf(w, "rsync:   %s\n", benchutil.FirstLine(out))
	}
}
