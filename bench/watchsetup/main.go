// Command watchsetup measures what it costs a live mirror to start watching
// a tree of many directories: fsmirror watch with --watcher inotify, with
// --watcher fanotify, and lsyncd for reference, side by side in one run.
//
// The source is a tree of -dirs directories (200,000 by default), a few
// levels deep, with a small file in every hundredth one. Before each start
// the destination is made an exact copy of it (cp -a, untimed), so every
// tool's initial sync finds nothing to copy. From the exec of the tool,
// watchsetup measures:
//
//	watches: until its watches are in place: until the line it prints once
//	         they are (fsmirror -v: "..., set up in D"; lsyncd: "recursive
//	         startup rsync"), checked at that moment in /proc/PID/fdinfo
//	         of its inotify or fanotify descriptor (every directory's
//	         watch, or the file system's mark);
//	ready:   until it says its initial sync is done: fsmirror's "watching"
//	         line, lsyncd's "Startup of ... finished";
//	CPU:     user+sys of the tool (and the children it waited for) until
//	         ready;
//	memory:  VmRSS of the tool when ready, and its peak (VmHWM) at the end;
//
// then that it mirrors: a file written in the last directory made must
// reach the destination (the time is reported), and how much CPU it uses
// over -idle while nothing changes in the tree. fsmirror's own figure for
// its watch setup (its -v line) is shown too.
//
// Usage:
//
//	go run ./bench/watchsetup [-fsmirror PATH] [-dir DIR] [-dirs 200000] [-tools inotify,fanotify,lsyncd] [-runs 1]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
)

func main() {
	def := defaultConfig()
	var (
		fsmirrorBin = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir         = flag.String("dir", def.dir, "directory to hold the source and destination trees")
		dirs        = flag.Int("dirs", def.dirs, "directories in the source tree")
		tools       = flag.String("tools", strings.Join(def.tools, ","), "comma-separated `LIST` of tools: inotify and fanotify (fsmirror watch --watcher ...), lsyncd")
		runs        = flag.Int("runs", def.runs, "starts of each tool; the median is reported")
		idle        = flag.Duration("idle", def.idle, "how long the CPU of an idle tool is measured")
		timeout     = flag.Duration("timeout", def.timeout, "bound of every wait")
		raise       = flag.Bool("raise-limit", true, "raise fs.inotify.max_user_watches for the run if the tree needs it (root only; restored after)")
		keep        = flag.Bool("keep", false, "keep the work directory")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/watchsetup [flags]\n\n"+
			"Times how long fsmirror watch (inotify, fanotify) and lsyncd take to watch a tree of\n"+
			"many directories and be ready, and how much memory they hold.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *dirs < 1 || *runs < 1 || *idle < 0 || *timeout <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg := def
	cfg.fsmirror, cfg.dir, cfg.dirs, cfg.tools, cfg.runs = *fsmirrorBin, *dir, *dirs, strings.Split(*tools, ","), *runs
	cfg.idle, cfg.timeout, cfg.raiseLimit, cfg.keep = *idle, *timeout, *raise, *keep
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchsetup:", err)
		os.Exit(1)
	}
}

type config struct {
	fsmirror   string
	dir        string
	dirs       int
	fanout     int // subdirectories per directory
	fileEvery  int // a file in every fileEvery-th directory
	tools      []string
	runs       int
	idle       time.Duration
	timeout    time.Duration
	raiseLimit bool
	keep       bool
}

func defaultConfig() config {
	return config{
		dir:       os.TempDir(),
		dirs:      200_000,
		fanout:    60,
		fileEvery: 100,
		tools:     []string{"inotify", "fanotify", "lsyncd"},
		runs:      1,
		idle:      10 * time.Second,
		timeout:   10 * time.Minute,
	}
}

// A tool is one way of mirroring under test.
type tool struct {
	name  string
	kind  string // "inotify" or "fanotify": what its watches are
	argv  func(src, dst, scratch string) ([]string, error)
	ready func(line string) bool
	// setup matches the line printed once the watches are in place:
	// fsmirror's -v line that also says how long that took, lsyncd's
	// "recursive startup rsync".
	setup     func(line string) bool
	cleanExit func(error) bool
}

// sample is one start of one tool; a duration of 0 with a status is a
// measurement that did not finish.
type sample struct {
	watches  time.Duration // from exec until its watches are in place
	nwatches int           // inotify watches, or fanotify marks, seen then
	setup    string        // fsmirror's own figure
	ready    time.Duration
	cpu      time.Duration // until ready
	rss, hwm int64         // kB: at ready, peak at the end
	probe    time.Duration // a new file in the last directory, until in DST
	idleCPU  time.Duration
	status   string // why something is missing: TIMEOUT, exited, ...
}

func run(ctx context.Context, w io.Writer, cfg config) (err error) {
	work, binDir, cleanup, err := benchutil.WorkDirs(w, cfg.dir, "watchsetup", cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	tools, versions, err := pickTools(ctx, w, cfg, binDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "machine:  %d CPUs (%s), %s, %s, load average %s\n", runtime.NumCPU(), benchutil.CPUModel(), benchutil.Kernel(), runtime.Version(), loadAvg())
	fmt.Fprintf(w, "dir:      %s on %s\n", cfg.dir, benchutil.FSType(cfg.dir))
	for _, v := range versions {
		fmt.Fprintln(w, v)
	}

	src := filepath.Join(work, "src")
	start := time.Now()
	last, files, err := makeTree(src, cfg.dirs, cfg.fanout, cfg.fileEvery)
	if err != nil {
		return fmt.Errorf("build the source tree: %w", err)
	}
	fmt.Fprintf(w, "tree:     %d directories (%d per directory, %d levels), %d files of 100 bytes (built in %.1fs)\n",
		cfg.dirs, cfg.fanout, strings.Count(strings.TrimPrefix(last, src), "/"), files, time.Since(start).Seconds())
	if restore, note := raiseWatchLimit(cfg, tools); note != "" {
		fmt.Fprintln(w, note)
		defer restore()
	}
	fmt.Fprintln(w)

	samples := make([][]sample, len(tools))
	for r := range cfg.runs {
		for j := range tools {
			i := (j + r) % len(tools) // rotate the order from run to run
			if err := ctx.Err(); err != nil {
				return err
			}
			scratch := filepath.Join(work, fmt.Sprintf("run%d-%s", r+1, strings.ReplaceAll(tools[i].name, " ", "-")))
			s, err := measure(ctx, cfg, tools[i], src, last, scratch)
			if err != nil {
				return fmt.Errorf("%s: %w", tools[i].name, err)
			}
			samples[i] = append(samples[i], s)
			fmt.Fprintf(w, "run %d/%d %-18s watches %s, ready %s, CPU %s, RSS %s%s\n", r+1, cfg.runs, tools[i].name,
				cellDur(s.watches, s.status), cellDur(s.ready, s.status), cellDur(s.cpu, s.status), kb(s.rss), statusNote(s.status))
		}
	}
	fmt.Fprintln(w)
	report(w, cfg, tools, samples)
	fmt.Fprintf(w, "\nload average at the end: %s\n", loadAvg())
	return nil
}

// pickTools resolves the tools named in cfg.
func pickTools(ctx context.Context, w io.Writer, cfg config, binDir string) ([]*tool, []string, error) {
	var tools []*tool
	var versions []string
	var bin string
	seen := map[string]bool{}
	for _, name := range cfg.tools {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		switch name {
		case "inotify", "fanotify":
			if bin == "" {
				var err error
				bin, err = benchutil.FsmirrorBinary(ctx, w, cfg.fsmirror, binDir, "(give a binary with -fsmirror, or measure lsyncd only with -tools lsyncd)")
				if err != nil {
					return nil, nil, err
				}
				versions = append(versions, fmt.Sprintf("fsmirror: %s: fsmirror watch -v --watcher inotify|fanotify --state-dir STATE SRC DST", bin))
			}
			watcher := name
			tools = append(tools, &tool{
				name: "fsmirror " + name, kind: name,
				argv: func(src, dst, scratch string) ([]string, error) {
					return []string{bin, "watch", "-v", "--watcher", watcher, "--state-dir", filepath.Join(scratch, "state"), src, dst}, nil
				},
				ready:     func(line string) bool { return strings.HasPrefix(line, "fsmirror: watching ") },
				setup:     func(line string) bool { return strings.Contains(line, ", set up in ") },
				cleanExit: func(err error) bool { return err == nil },
			})
		case "lsyncd":
			lsyncd, err := exec.LookPath("lsyncd")
			if err != nil {
				return nil, nil, fmt.Errorf("lsyncd: %w (install it, or leave it out with -tools inotify,fanotify)", err)
			}
			if _, err := exec.LookPath("rsync"); err != nil {
				return nil, nil, fmt.Errorf("lsyncd needs rsync: %w", err)
			}
			out, _ := exec.CommandContext(ctx, lsyncd, "-version").CombinedOutput()
			versions = append(versions, fmt.Sprintf("lsyncd:   %s: %s, %s", lsyncd, benchutil.FirstLine(out), benchutil.LsyncdConfig("SRC", "DST", "CloseWrite or Modify")))
			tools = append(tools, &tool{
				name: "lsyncd", kind: "inotify",
				argv: func(src, dst, scratch string) ([]string, error) {
					conf := filepath.Join(scratch, "lsyncd.conf.lua")
					if err := os.WriteFile(conf, []byte(benchutil.LsyncdConfig(src, dst, "CloseWrite or Modify")+"\n"), 0o644); err != nil {
						return nil, err
					}
					return []string{lsyncd, "-nodaemon", conf}, nil
				},
				ready: func(line string) bool {
					return strings.Contains(line, "Startup of") && strings.Contains(line, "finished")
				},
				// It adds every watch, then logs this and runs rsync.
				setup: func(line string) bool { return strings.Contains(line, "recursive startup rsync") },
				// lsyncd exits with status 143 on SIGTERM.
				cleanExit: func(err error) bool {
					var ee *exec.ExitError
					return err == nil || errors.As(err, &ee) && ee.ExitCode() == 143
				},
			})
		default:
			return nil, nil, fmt.Errorf("unknown tool %q in -tools; known: inotify, fanotify, lsyncd", name)
		}
	}
	if len(tools) == 0 {
		return nil, nil, errors.New("no tools to measure")
	}
	return tools, versions, nil
}

// makeTree makes n directories below root (made too), breadth first, at
// most fanout in each, and a 100-byte file in every fileEvery-th one. It
// returns the last directory made, one of the deepest.
func makeTree(root string, n, fanout, fileEvery int) (last string, files int, err error) {
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", 0, err
	}
	data := bytes.Repeat([]byte("x"), 100)
	queue := []string{root}
	for made := 0; made < n; {
		parent := queue[0]
		queue = queue[1:]
		for i := 0; i < fanout && made < n; i++ {
			d := filepath.Join(parent, "d"+strconv.Itoa(i))
			if err := os.Mkdir(d, 0o755); err != nil {
				return "", 0, err
			}
			made++
			if made%fileEvery == 0 {
				if err := os.WriteFile(filepath.Join(d, "f"), data, 0o644); err != nil {
					return "", 0, err
				}
				files++
			}
			queue = append(queue, d)
			last = d
		}
	}
	return last, files, nil
}

// raiseWatchLimit raises fs.inotify.max_user_watches when a tool watching
// with inotify needs more than it allows, if cfg says so and it can. It
// returns what puts it back, and a line to print, empty when nothing was
// done or needs saying.
func raiseWatchLimit(cfg config, tools []*tool) (restore func(), note string) {
	const file = "/proc/sys/fs/inotify/max_user_watches"
	needs := false
	for _, t := range tools {
		needs = needs || t.kind == "inotify"
	}
	b, err := os.ReadFile(file)
	if !needs || err != nil {
		return func() {}, ""
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || limit > 2*cfg.dirs {
		return func() {}, ""
	}
	// The user's other programs hold watches too: leave them the limit
	// they had.
	want := limit + cfg.dirs + 1
	if !cfg.raiseLimit {
		return func() {}, fmt.Sprintf("note:     fs.inotify.max_user_watches is %d, shared with this user's other programs, for a tree of %d directories; inotify tools may run out (-raise-limit raises it)", limit, cfg.dirs)
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(want)), 0); err != nil {
		return func() {}, fmt.Sprintf("note:     fs.inotify.max_user_watches is %d for a tree of %d directories and could not be raised (%v): inotify tools may run out", limit, cfg.dirs, err)
	}
	return func() { os.WriteFile(file, b, 0) },
		fmt.Sprintf("limit:    fs.inotify.max_user_watches raised from %d to %d for the run (put back after)", limit, want)
}

// measure starts t on src and a fresh copy of it, and measures it.
func measure(ctx context.Context, cfg config, t *tool, src, last, scratch string) (sample, error) {
	var s sample
	dst := filepath.Join(scratch, "dst")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return s, err
	}
	defer os.RemoveAll(scratch)
	if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		return s, fmt.Errorf("copy the source: %v: %s", err, out)
	}
	argv, err := t.argv(src, dst, scratch)
	if err != nil {
		return s, err
	}
	want := cfg.dirs + 1
	if t.kind == "fanotify" {
		want = 1 // one mark
	}
	p, err := startProc(argv, t.ready, t.setup, func(pid int) int {
		n, _ := countWatches(pid, t.kind)
		return n
	})
	if err != nil {
		return s, err
	}
	defer p.kill()
	select {
	case <-p.readyCh:
	case <-p.exited:
		s.status = "exited: " + p.exitNote()
		return s, nil
	case <-time.After(cfg.timeout):
		s.status = "TIMEOUT (not ready)"
		return s, nil
	case <-ctx.Done():
		return s, ctx.Err()
	}
	s.ready, s.cpu = p.readyAt.Sub(p.started), p.readyCPU
	s.rss = p.readyRSS
	p.mu.Lock()
	if !p.setupAt.IsZero() {
		s.watches, s.nwatches = p.setupAt.Sub(p.started), p.setupWatches
		s.setup = setupFigure(p.setupLine)
	}
	p.mu.Unlock()
	switch {
	case s.watches == 0:
		s.status = "no line said its watches were in place"
	case s.nwatches < want:
		s.status = fmt.Sprintf("only %d of %d watches when it said they were in place", s.nwatches, want)
	}

	// It mirrors: a new file in the last directory made.
	probe := filepath.Join(last, "watchsetup-probe")
	mirrored := filepath.Join(dst, strings.TrimPrefix(probe, src))
	t0 := time.Now()
	if err := os.WriteFile(probe, []byte("probe\n"), 0o644); err != nil {
		return s, err
	}
	for {
		if _, err := os.Lstat(mirrored); err == nil {
			s.probe = time.Since(t0)
			break
		}
		if time.Since(t0) > cfg.timeout || !p.alive() || ctx.Err() != nil {
			s.status = "the probe file never reached DST"
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(probe); err != nil {
		return s, err
	}
	// Let the removal be mirrored, then measure the idle CPU.
	for t1 := time.Now(); time.Since(t1) < cfg.timeout && p.alive() && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Lstat(mirrored); err != nil {
			break
		}
	}
	sleepCtx(ctx, time.Second)
	cpu0, _ := procCPU(p.cmd.Process.Pid)
	sleepCtx(ctx, cfg.idle)
	cpu1, _ := procCPU(p.cmd.Process.Pid)
	s.idleCPU = cpu1 - cpu0
	_, s.hwm, _ = procMem(p.cmd.Process.Pid)
	if note := p.stop(30*time.Second, t.cleanExit); note != "" && s.status == "" {
		s.status = note
	}
	return s, nil
}

// setupFigure returns the duration in fsmirror's "..., set up in D" line,
// or "" for another line.
func setupFigure(line string) string {
	_, d, ok := strings.Cut(line, ", set up in ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(d)
}

// countWatches returns the watches held by process pid: inotify watches
// over all its inotify descriptors, or fanotify marks over all its
// fanotify descriptors, from /proc/PID/fdinfo.
func countWatches(pid int, kind string) (int, error) {
	link, prefix := "anon_inode:inotify", "inotify wd:"
	if kind == "fanotify" {
		link, prefix = "anon_inode:[fanotify]", "fanotify "
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(fdDir, e.Name())); l != link {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		n, err := countLines(f, prefix, kind == "fanotify")
		f.Close()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// countLines counts the lines of r that start with prefix; for fanotify,
// only mark lines (not the "fanotify flags:" line of the group).
func countLines(r io.Reader, prefix string, marks bool) (int, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for s.Scan() {
		l := s.Bytes()
		if bytes.HasPrefix(l, []byte(prefix)) && !(marks && bytes.HasPrefix(l, []byte("fanotify flags:"))) {
			n++
		}
	}
	return n, s.Err()
}

// procMem returns VmRSS and VmHWM of process pid in kB.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatusKB(string(b), "VmRSS:"), parseStatusKB(string(b), "VmHWM:"), nil
}

// parseStatusKB returns the value in kB of field key of a /proc/PID/status
// text, or 0.
func parseStatusKB(status, key string) int64 {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// procCPU returns the user and system time of process pid and of the
// children it waited for.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	stat := string(b)
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 15 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	var ticks int64
	for _, s := range f[11:15] { // utime stime cutime cstime
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// A proc is one running tool, its output watched for two lines.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	err     error // of Wait, once exited is closed

	readyCh  chan struct{}
	readyAt  time.Time
	readyCPU time.Duration
	readyRSS int64

	mu           sync.Mutex
	setupAt      time.Time
	setupLine    string
	setupWatches int
	tail         []string // the last lines of output
}

// startProc starts argv in a process group of its own, killed if the
// benchmark dies, with its output read line by line: the first line ready
// accepts closes readyCh (CPU and RSS are read at once), the first one setup
// accepts is kept with its time and what watches(pid) says then.
func startProc(argv []string, ready, setup func(string) bool, watches func(pid int) int) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = wr, wr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, exited: make(chan struct{}), readyCh: make(chan struct{})}
	p.started = time.Now()
	err = cmd.Start()
	wr.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		defer r.Close()
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		isReady := false
		for s.Scan() {
			l, now := s.Text(), time.Now()
			if !isReady && ready(l) {
				isReady = true
				p.readyAt = now
				p.readyCPU, _ = procCPU(cmd.Process.Pid)
				p.readyRSS, _, _ = procMem(cmd.Process.Pid)
				close(p.readyCh)
			}
			if setup != nil && p.setupAt.IsZero() && setup(l) {
				n := watches(cmd.Process.Pid)
				p.mu.Lock()
				p.setupAt, p.setupLine, p.setupWatches = now, l, n
				p.mu.Unlock()
			}
			p.mu.Lock()
			if p.tail = append(p.tail, l); len(p.tail) > 20 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = cmd.Wait()
		// A child that kept the pipe (lsyncd's rsync) must not hold us.
		select {
		case <-lines:
		case <-time.After(2 * time.Second):
		}
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) exitNote() string {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%v; last output:\n\t%s", p.err, strings.Join(p.tail, "\n\t"))
}

// stop ends the process with SIGTERM, then SIGKILL after grace, and returns
// a note if it did not end cleanly.
func (p *proc) stop(grace time.Duration, clean func(error) bool) string {
	if !p.alive() {
		return "exited by itself: " + p.exitNote()
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		if !clean(p.err) {
			return "exit after SIGTERM: " + p.exitNote()
		}
		return ""
	case <-time.After(grace):
		p.kill()
		return fmt.Sprintf("did not exit within %s of SIGTERM: killed", grace)
	}
}

// kill kills the process group, if it still runs, and waits for it.
func (p *proc) kill() {
	if p.alive() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.exited
}
