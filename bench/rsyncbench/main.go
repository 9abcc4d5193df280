// Command rsyncbench measures live mirroring into an rsync daemon: fsmirror
// watch with an rsync:// destination against lsyncd's default.rsync with
// delay = 0, both pointed at the same local daemon, side by side in one run.
//
// Each run gives each tool a fresh source and a fresh directory in the
// daemon's module, starts the tool, waits until its initial sync is done
// (its ready line, and a marker file in the module), then writes -files
// files of 100 B to 4 KiB into a new directory as fast as possible and
// times, from the last close, until the module holds all of them with their
// sizes, and until testutil.Diff finds the whole tree exact. Tools alternate
// their order from run to run; the report gives each run, the medians and
// fsmirror/lsyncd ratios, and the load average before and after. Every wait
// is bounded. A wrong fsmirror mirror prints WRONG RESULT and makes the exit
// status 1; lsyncd's is only noted (default.rsync does not keep directory
// times).
//
// Usage:
//
//	go run ./bench/rsyncbench [-fsmirror PATH] [-dir /dev/shm] [-files 5000] [-runs 3] [-tools fsmirror,lsyncd]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

type config struct {
	fsmirror  string
	dir       string
	tools     []string
	files     int
	runs      int
	processes int
	poll      time.Duration
	timeout   time.Duration
	converge  time.Duration
	seed      uint64
	keep      bool
}

func defaultConfig() config {
	return config{dir: "/dev/shm", tools: []string{"fsmirror", "lsyncd"}, files: 5000, runs: 3, processes: 1,
		poll: 2 * time.Millisecond, timeout: 120 * time.Second, converge: 10 * time.Second, seed: 1}
}

func main() {
	def := defaultConfig()
	var (
		fsmirrorBin = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir         = flag.String("dir", def.dir, "directory for the sources and the daemon's module")
		tools       = flag.String("tools", "fsmirror,lsyncd", "comma-separated `LIST` of tools to measure")
		files       = flag.Int("files", def.files, "files written into a new directory")
		runs        = flag.Int("runs", def.runs, "runs of each tool")
		processes   = flag.Int("rsync-processes", def.processes, "fsmirror's --rsync-processes")
		timeout     = flag.Duration("timeout", def.timeout, "bound of every wait")
		seed        = flag.Uint64("seed", def.seed, "seed of the file sizes and contents")
		keep        = flag.Bool("keep", false, "keep the work directory")
	)
	benchutil.ParseFlags("rsyncbench",
		"Times a burst of files into a new directory until it has arrived in a local rsync\n"+
			"daemon, through fsmirror watch rsync://... and through lsyncd's default.rsync.",
		func() bool { return *files >= 1 && *runs >= 1 && *processes >= 1 && *timeout > 0 })
	cfg := def
	cfg.fsmirror, cfg.dir, cfg.tools, cfg.files, cfg.runs = *fsmirrorBin, *dir, strings.Split(*tools, ","), *files, *runs
	cfg.processes, cfg.timeout, cfg.seed, cfg.keep = *processes, *timeout, *seed, *keep
	benchutil.Main("rsyncbench", func(ctx context.Context) error { return run(ctx, os.Stdout, cfg) })
}

// A tool is one live mirror under test.
type tool struct {
	name    string
	strict  bool // its mirror must be exact
	diffOpt testutil.DiffOptions
	// start mirrors src to url, the module directory dst; scratch holds
	// its own files.
	start     func(src, url, scratch string) (*benchutil.Daemon, error)
	cleanExit func(error) bool
}

// measure is one run of one tool.
type measure struct {
	tool                 string
	run                  int
	write, arrive, exact time.Duration
	cpu                  time.Duration
	runs                 int    // rsync runs the daemon served for the burst
	status               string // why there is no measure: TIMEOUT, failed, WRONG
	notes                []string
}

type bench struct {
	ctx   context.Context
	cfg   config
	w     io.Writer
	work  string
	d     *testutil.Rsyncd
	wrong bool
}

func run(ctx context.Context, w io.Writer, cfg config) (err error) {
	work, binDir, cleanup, err := benchutil.WorkDirs(w, cfg.dir, "rsyncbench", cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if _, err := exec.LookPath("rsync"); err != nil {
		return fmt.Errorf("rsync is needed for the daemon: %w", err)
	}
	rsyncdDir := filepath.Join(work, "rsyncd")
	if err := os.Mkdir(rsyncdDir, 0o700); err != nil {
		return err
	}
	d, err := testutil.StartRsyncd(rsyncdDir, testutil.RsyncdOptions{})
	if err != nil {
		return err
	}
	defer d.Stop()
	b := &bench{ctx: ctx, cfg: cfg, w: w, work: work, d: d}
	tools, versions, err := b.pickTools(binDir)
	if err != nil {
		return err
	}
	load0 := benchutil.LoadAverage()
	fmt.Fprintf(w, "machine:  %d CPUs (%s), %s, %s\n", runtime.NumCPU(), benchutil.CPUModel(), benchutil.Kernel(), runtime.Version())
	fmt.Fprintf(w, "dir:      %s on %s\n", cfg.dir, benchutil.FSType(cfg.dir))
	fmt.Fprintf(w, "daemon:   rsync --daemon on 127.0.0.1:%d, module %q, user and password\n", d.Port, d.Module)
	for _, v := range versions {
		fmt.Fprintln(w, v)
	}
	fmt.Fprintf(w, "burst:    %d files of 100 B to 4 KiB written into a new directory as fast as possible\n", cfg.files)
	fmt.Fprintf(w, "load average before: %s\n\n", load0)

	var all []*measure
	for i := range cfg.runs {
		for j := range tools {
			t := tools[(i+j)%len(tools)] // alternate the order
			if err := ctx.Err(); err != nil {
				return err
			}
			m, err := b.burst(t, i+1)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", i+1, t.name, err)
			}
			all = append(all, m)
		}
	}
	fmt.Fprintln(w)
	report(w, cfg, tools, all)
	fmt.Fprintf(w, "\nload average before: %s, after: %s\n", load0, benchutil.LoadAverage())
	if b.wrong {
		return errors.New("WRONG RESULT: fsmirror left a destination that is not a mirror of its source (differences above)")
	}
	return nil
}

func (b *bench) pickTools(binDir string) ([]*tool, []string, error) {
	names, err := benchutil.ToolNames(b.cfg.tools)
	if err != nil {
		return nil, nil, err
	}
	var tools []*tool
	var versions []string
	root := os.Geteuid() == 0
	for _, name := range names {
		switch name {
		case "fsmirror":
			bin, err := benchutil.FsmirrorBinary(b.ctx, b.w, b.cfg.fsmirror, binDir,
				"(give a binary with -fsmirror, or leave fsmirror out with -tools lsyncd)")
			if err != nil {
				return nil, nil, err
			}
			argv := func(src, url string) []string {
				return []string{bin, "watch", "--password-file", b.d.PasswordFile, fmt.Sprintf("--rsync-processes=%d", b.cfg.processes), src, url}
			}
			versions = append(versions, "fsmirror: "+strings.Join(argv("SRC", "rsync://USER@127.0.0.1:PORT/MODULE/DIR"), " "))
			tools = append(tools, &tool{
				name: "fsmirror", strict: true,
				diffOpt: testutil.DiffOptions{Owner: root},
				start: func(src, url, _ string) (*benchutil.Daemon, error) {
					return benchutil.StartDaemon("fsmirror", argv(src, url), func(l string) bool { return strings.HasPrefix(l, "fsmirror: watching") })
				},
				cleanExit: func(err error) bool { return err == nil },
			})
		case "lsyncd":
			bin, vs, err := benchutil.FindLsyncd(b.ctx, lsyncdConfig("SRC", "rsync://USER@127.0.0.1:PORT/MODULE/DIR/", "PASSWORD-FILE"))
			if err != nil {
				return nil, nil, err
			}
			versions = append(versions, vs...)
			tools = append(tools, &tool{
				name: "lsyncd",
				// default.rsync runs rsync -rlts: it keeps neither modes of
				// existing files nor directory times; a reference only.
				diffOpt: testutil.DiffOptions{IgnoreDirMtime: true, IgnoreRootMeta: true},
				start: func(src, url, scratch string) (*benchutil.Daemon, error) {
					return benchutil.StartLsyncd(bin, scratch, lsyncdConfig(src, url+"/", b.d.PasswordFile))
				},
				cleanExit: benchutil.LsyncdCleanExit,
			})
		default:
			return nil, nil, fmt.Errorf("unknown tool %q in -tools; known: fsmirror, lsyncd", name)
		}
	}
	return tools, versions, nil
}

// lsyncdConfig is lsyncd's configuration for mirroring src to the daemon
// URL target: default.rsync, delay 0, the password file, nothing else.
func lsyncdConfig(src, target, passwordFile string) string {
	return fmt.Sprintf(`settings { nodaemon = true, insist = true } `+
		`sync { default.rsync, source = %s, target = %s, delay = 0, rsync = { password_file = %s } }`,
		benchutil.LuaQuote(src), benchutil.LuaQuote(target), benchutil.LuaQuote(passwordFile))
}

const marker = ".rsyncbench-marker"

// burst is one measurement of t.
func (b *bench) burst(t *tool, run int) (*measure, error) {
	cfg := b.cfg
	m := &measure{tool: t.name, run: run}
	name := fmt.Sprintf("run%d-%s", run, t.name)
	dir := filepath.Join(b.work, name)
	src, dst := filepath.Join(dir, "src"), filepath.Join(b.d.Path, name)
	for _, p := range []string{dir, src} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(src, marker), []byte("rsyncbench\n"), 0o644); err != nil {
		return nil, err
	}
	d, err := t.start(src, b.d.URL(name), dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if note := d.Stop(10*time.Second, t.cleanExit); note != "" {
			m.notes = append(m.notes, note)
		}
	}()
	t0 := time.Now()
	if err := d.WaitReady(b.ctx, cfg.timeout); err != nil {
		m.status = "failed"
		m.notes = append(m.notes, err.Error())
		fmt.Fprintf(b.w, "run %d %-9s not ready: %v\n", run, t.name, err)
		return m, nil
	}
	if _, ok := benchutil.Poll(b.ctx, t0, time.Millisecond, cfg.timeout, func() bool {
		_, err := os.Lstat(filepath.Join(dst, marker))
		return err == nil
	}); !ok {
		m.status = "TIMEOUT"
		m.notes = append(m.notes, "the initial sync never brought the marker file")
		return m, b.ctx.Err()
	}
	// The initial sync's rsync may still be finishing (lsyncd): let it.
	b.settle(d)
	cpu0, _ := d.CPU()
	runs0 := b.runs(name)

	rng := rand.New(rand.NewPCG(cfg.seed, uint64(run)))
	want := make(map[string]int64, cfg.files)
	buf := make([]byte, 4096)
	sdir, ddir := filepath.Join(src, "burst"), filepath.Join(dst, "burst")
	start := time.Now()
	if err := os.Mkdir(sdir, 0o755); err != nil {
		return nil, err
	}
	for i := range cfg.files {
		size := 100 + rng.IntN(4096-100+1)
		for j := range buf[:size] {
			buf[j] = byte(rng.Uint32())
		}
		fname := fmt.Sprintf("f-%05d", i)
		if err := os.WriteFile(filepath.Join(sdir, fname), buf[:size], 0o644); err != nil {
			return nil, err
		}
		want[fname] = int64(size)
	}
	last := time.Now()
	m.write = last.Sub(start)
	dents := make([]byte, 256<<10)
	arrive, ok := benchutil.Poll(b.ctx, last, cfg.poll, cfg.timeout, func() bool { return benchutil.DirHas(ddir, want, dents) })
	if err := b.ctx.Err(); err != nil {
		return nil, err
	}
	if !ok {
		m.status = "TIMEOUT"
		m.notes = append(m.notes, fmt.Sprintf("the module did not have the %d files after %s", cfg.files, cfg.timeout))
	}
	m.arrive = arrive
	var diffs []string
	_, exact := benchutil.Poll(b.ctx, time.Now(), 20*time.Millisecond, cfg.converge, func() bool {
		diffs, err = testutil.Diff(src, dst, t.diffOpt)
		return err == nil && len(diffs) == 0
	})
	if exact {
		m.exact = time.Since(last)
	} else {
		msg := fmt.Sprintf("%d differences after %s:\n\t%s", len(diffs), cfg.converge, benchutil.FormatDiffs(diffs))
		if err != nil {
			msg = fmt.Sprintf("cannot compare: %v", err)
		}
		if t.strict {
			b.wrong = true
			m.status = "WRONG"
			fmt.Fprintf(b.w, "WRONG RESULT: run %d %s: %s is not a mirror of %s: %s\n", run, t.name, dst, src, msg)
		}
		m.notes = append(m.notes, "destination not exact (reference tool): "+msg)
	}
	b.settle(d)
	if cpu1, err := d.CPU(); err == nil {
		m.cpu = cpu1 - cpu0
	}
	m.runs = b.runs(name) - runs0
	fmt.Fprintf(b.w, "run %d %-9s %d files written in %s; in the module %s after the last close; exact after %s; CPU %s; %d rsync runs\n",
		run, t.name, cfg.files, benchutil.Secs(m.write), cellOf(m, m.arrive), cellOf(m, m.exact), benchutil.Secs(m.cpu), m.runs)
	return m, nil
}

// runs counts the transfers into the module's directory name that the
// daemon has logged ("rsync to MODULE/NAME/ from ...").
func (b *bench) runs(name string) int {
	return strings.Count(b.d.Log(), "] rsync to "+b.d.Module+"/"+name+"/ from ")
}

// settle waits a moment, then until the tool has no child (its rsync),
// within the timeout.
func (b *bench) settle(d *benchutil.Daemon) {
	time.Sleep(300 * time.Millisecond)
	benchutil.Poll(b.ctx, time.Now(), 20*time.Millisecond, b.cfg.timeout, func() bool { return len(d.Children()) == 0 })
}

func cellOf(m *measure, d time.Duration) string {
	if m.status != "" && d == 0 {
		return m.status
	}
	return benchutil.Secs(d)
}

// report prints every run, the medians and the ratios.
func report(w io.Writer, cfg config, tools []*tool, all []*measure) {
	tw := benchutil.NewTable(w)
	fmt.Fprintf(tw, "run\ttool\twrite %d files\tarrived (after the last close)\texact\tCPU (tool + rsync)\trsync runs\n", cfg.files)
	for _, m := range all {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", m.run, m.tool, benchutil.Secs(m.write), cellOf(m, m.arrive), cellOf(m, m.exact), benchutil.Secs(m.cpu), m.runs)
	}
	medians := map[string][4]time.Duration{}
	for _, t := range tools {
		var write, arrive, exact, cpu []time.Duration
		for _, m := range all {
			if m.tool != t.name || m.status != "" {
				continue
			}
			write, arrive, exact, cpu = append(write, m.write), append(arrive, m.arrive), append(exact, m.exact), append(cpu, m.cpu)
		}
		if len(arrive) == 0 {
			fmt.Fprintf(tw, "median\t%s\t-\t-\t-\t-\n", t.name)
			continue
		}
		md := [4]time.Duration{benchutil.MedianOf(write), benchutil.MedianOf(arrive), benchutil.MedianOf(exact), benchutil.MedianOf(cpu)}
		medians[t.name] = md
		fmt.Fprintf(tw, "median\t%s\t%s\t%s\t%s\t%s\n", t.name, benchutil.Secs(md[0]), benchutil.Secs(md[1]), benchutil.Secs(md[2]), benchutil.Secs(md[3]))
	}
	f, okf := medians["fsmirror"]
	l, okl := medians["lsyncd"]
	if okf && okl {
		fmt.Fprintf(tw, "ratio\tfsmirror/lsyncd\t\t%s\t%s\t%s\n", benchutil.Ratio(f[1], l[1]), benchutil.Ratio(f[2], l[2]), benchutil.Ratio(f[3], l[3]))
	}
	tw.Flush()
	var notes []string
	for _, m := range all {
		for _, n := range m.notes {
			notes = append(notes, fmt.Sprintf("run %d %s: %s", m.run, m.tool, n))
		}
	}
	slices.Sort(notes)
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
}
