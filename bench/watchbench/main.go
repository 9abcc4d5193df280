// Command watchbench measures live mirroring: fsmirror watch against
// lsyncd (default.rsync), side by side in the same run.
//
// For each tool, each measurement runs on a fresh SRC/DST pair with a freshly
// started tool, after its initial sync is done:
//
//	(a) latency from the close of a new 100-byte file to its full content in
//	    DST, for files written one at a time (median and p99);
//	(b) 5,000 files of 100 B to 4 KiB written as fast as possible into a
//	    new directory: time from the last close until DST has them all;
//	(c) rename of a 200 MiB file already in DST: time from rename() until
//	    DST shows the new name and not the old, and whether DST's inode
//	    was kept (a rename, not a copy);
//	(d) CPU used by the tool and its children while idle, after (b).
//
// Tools alternate their order from one measurement to the next. Every wait
// is bounded: a measurement that does not finish prints TIMEOUT and the
// benchmark goes on. Every fsmirror DST is compared with its SRC by
// testutil.Diff; a wrong mirror prints WRONG RESULT and makes the exit
// status 1, after the report.
//
// Usage:
//
//	go run ./bench/watchbench [-fsmirror PATH] [-dir /dev/shm] [-idle 10s] [-tools fsmirror,lsyncd]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

func main() {
	def := defaultConfig()
	var (
		fsmirrorBin = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir         = flag.String("dir", def.dir, "directory to hold the source and destination trees")
		tools       = flag.String("tools", "fsmirror,lsyncd", "comma-separated `LIST` of tools to measure")
		latFiles    = flag.Int("latency-files", def.latFiles, "(a) files written one at a time")
		latGap      = flag.Duration("gap", def.latGap, "(a) pause between two files")
		burstFiles  = flag.Int("burst-files", def.burstFiles, "(b) files written into a new directory")
		bigMiB      = flag.Int("rename-mib", def.bigMiB, "(c) size of the renamed file in MiB")
		idle        = flag.Duration("idle", def.idle, "(d) how long the idle CPU is measured")
		settle      = flag.Duration("settle", def.settle, "quiet time after a measurement before its CPU is read")
		timeout     = flag.Duration("timeout", def.timeout, "bound of every wait but (a)'s per-file one ("+def.latTimeout.String()+")")
		mode        = flag.String("lsyncd-inotify-mode", def.inotifyMode, `lsyncd's settings.inotifyMode: "CloseWrite", "Modify" or "CloseWrite or Modify"`)
		seed        = flag.Uint64("seed", def.seed, "seed of the file sizes and contents")
		keep        = flag.Bool("keep", false, "keep the work directory")
	)
	benchutil.ParseFlags("watchbench",
		"Runs fsmirror watch and lsyncd side by side and measures the latency of a new file,\n"+
			"a burst of 5,000 files into a new directory, the rename of a 200 MiB file, and\n"+
			"the CPU used while idle.",
		func() bool {
			return *latFiles >= 1 && *burstFiles >= 1 && *bigMiB >= 1 && *idle >= 0 && *settle >= 0 && *timeout > 0 && *latGap >= 0
		})
	cfg := def
	cfg.fsmirror, cfg.dir, cfg.tools = *fsmirrorBin, *dir, strings.Split(*tools, ",")
	cfg.latFiles, cfg.latGap, cfg.burstFiles, cfg.bigMiB = *latFiles, *latGap, *burstFiles, *bigMiB
	cfg.idle, cfg.settle, cfg.timeout, cfg.inotifyMode = *idle, *settle, *timeout, *mode
	cfg.seed, cfg.keep = *seed, *keep
	benchutil.Main("watchbench", func(ctx context.Context) error { return run(ctx, os.Stdout, cfg) })
}

type config struct {
	fsmirror    string
	dir         string
	tools       []string
	latFiles    int
	latGap      time.Duration
	latTimeout  time.Duration // (a): bound of the wait for one file
	pollEvery   time.Duration // (a), (c): DST is polled this often
	burstFiles  int
	burstPoll   time.Duration // (b): DST is polled this often
	bigMiB      int
	idle        time.Duration
	settle      time.Duration
	timeout     time.Duration // every other wait
	converge    time.Duration // how long a DST may take to become exact after it looked done
	inotifyMode string
	seed        uint64
	keep        bool
}

func defaultConfig() config {
	return config{
		dir:         "/dev/shm",
		tools:       []string{"fsmirror", "lsyncd"},
		latFiles:    200,
		latGap:      5 * time.Millisecond,
		latTimeout:  10 * time.Second,
		pollEvery:   50 * time.Microsecond,
		burstFiles:  5000,
		burstPoll:   2 * time.Millisecond,
		bigMiB:      200,
		idle:        10 * time.Second,
		settle:      time.Second,
		timeout:     60 * time.Second,
		converge:    3 * time.Second,
		inotifyMode: "CloseWrite or Modify",
		seed:        1,
	}
}

// A tool is one live mirror under test.
type tool struct {
	name string
	// strict tools must leave an exact mirror or the benchmark fails; the
	// others are references whose differences are only noted.
	strict  bool
	diffOpt testutil.DiffOptions
	// start starts mirroring src to dst; scratch is a directory for its
	// own files (a config file).
	start func(src, dst, scratch string) (*benchutil.Daemon, error)
	// cleanExit says whether an exit after SIGTERM is a clean one.
	cleanExit func(error) bool
}

// cell is one measured value, or why there is none ("TIMEOUT", "failed").
type cell struct {
	d      time.Duration
	status string
}

func (c cell) ok() bool { return c.status == "" }

// timedOut stands for a file of (a) that never arrived: it sorts last.
const timedOut = time.Duration(1<<63 - 1)

// result holds every measurement of one tool.
type result struct {
	tool *tool
	// (a)
	lat       []time.Duration // one per file, timedOut if it never came
	latStatus string          // set when (a) did not run
	latWrong  int             // files first seen with wrong content
	latCPU    cell
	// (b)
	burstWrite, burst, burstExact, burstCPU cell
	// (c)
	rename cell
	inode  string // "kept", "new", or "" when unknown
	// (d)
	idle cell
	// notes on the tool's behaviour; wrong lists the measurements whose
	// DST was not an exact mirror.
	notes []string
	wrong []string
}

func (r *result) note(scen, format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf("(%s) ", scen)+fmt.Sprintf(format, args...))
}

type bench struct {
	ctx   context.Context
	cfg   config
	w     io.Writer
	work  string
	wrong bool
}

func run(ctx context.Context, w io.Writer, cfg config) (err error) {
	work, binDir, cleanup, err := benchutil.WorkDirs(w, cfg.dir, "watchbench", cfg.keep)
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
	printMachine(w, cfg, versions)

	b := &bench{ctx: ctx, cfg: cfg, w: w, work: work}
	results := make([]*result, len(tools))
	for i := range tools {
		results[i] = &result{tool: tools[i]}
	}
	scenarios := []struct {
		name string
		f    func(*result) error
	}{{"a", b.latency}, {"b", b.burst}, {"c", b.rename}}
	for k, sc := range scenarios {
		for j := range results {
			r := results[(j+k)%len(results)] // alternate the order
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := sc.f(r); err != nil {
				return fmt.Errorf("(%s) %s: %w", sc.name, r.tool.name, err)
			}
		}
	}
	fmt.Fprintln(w)
	report(w, results, cfg)
	if b.wrong {
		var which []string
		for _, r := range results {
			if len(r.wrong) > 0 {
				which = append(which, fmt.Sprintf("%s in (%s)", r.tool.name, strings.Join(r.wrong, ", ")))
			}
		}
		return fmt.Errorf("WRONG RESULT: %s left a destination that is not a mirror of its source (differences listed above)",
			strings.Join(which, "; "))
	}
	return nil
}

// pickTools resolves the tools named in cfg, building fsmirror into binDir
// if needed, and returns them with version lines for the header.
func pickTools(ctx context.Context, w io.Writer, cfg config, binDir string) ([]*tool, []string, error) {
	names, err := benchutil.ToolNames(cfg.tools)
	if err != nil {
		return nil, nil, err
	}
	var (
		tools    []*tool
		versions []string
	)
	for _, name := range names {
		switch name {
		case "fsmirror":
			bin, err := benchutil.FsmirrorBinary(ctx, w, cfg.fsmirror, binDir,
				"(give a binary with -fsmirror, or leave fsmirror out with -tools lsyncd)")
			if err != nil {
				return nil, nil, err
			}
			how := "given with -fsmirror"
			if cfg.fsmirror == "" {
				how = "built from ./cmd/fsmirror"
			}
			versions = append(versions, fmt.Sprintf("fsmirror: %s (%s): fsmirror watch SRC DST", bin, how))
			tools = append(tools, &tool{
				name: "fsmirror", strict: true,
				diffOpt: testutil.DiffOptions{Owner: os.Geteuid() == 0},
				start: func(src, dst, _ string) (*benchutil.Daemon, error) {
					return benchutil.StartDaemon("fsmirror", []string{bin, "watch", src, dst}, func(line string) bool {
						return strings.HasPrefix(line, "fsmirror: watching")
					})
				},
				cleanExit: func(err error) bool { return err == nil },
			})
		case "lsyncd":
			bin, vs, err := benchutil.FindLsyncd(ctx, benchutil.LsyncdConfig("SRC", "DST", cfg.inotifyMode))
			if err != nil {
				return nil, nil, err
			}
			versions = append(versions, vs...)
			tools = append(tools, &tool{
				name: "lsyncd",
				// default.rsync runs rsync -rlts: modes of existing files,
				// owners and directory times are not its business.
				diffOpt: testutil.DiffOptions{IgnoreDirMtime: true, IgnoreRootMeta: true},
				start: func(src, dst, scratch string) (*benchutil.Daemon, error) {
					return benchutil.StartLsyncd(bin, scratch, benchutil.LsyncdConfig(src, dst, cfg.inotifyMode))
				},
				cleanExit: benchutil.LsyncdCleanExit,
			})
		default:
			return nil, nil, fmt.Errorf("unknown tool %q in -tools; known: fsmirror, lsyncd", name)
		}
	}
	return tools, versions, nil
}

// A session is one tool running on one fresh SRC/DST pair.
type session struct {
	tool     *tool
	scen     string
	d        *benchutil.Daemon
	src, dst string
	// notReady says why the tool never became ready; nil when it did.
	notReady error
}

const marker = ".watchbench-marker"

// open makes a fresh SRC/DST pair for measurement scen, fills SRC with a
// marker file and whatever prepare writes, starts the tool and waits until
// it is ready: its ready line, then the marker in DST and, if given,
// initialDone true. A tool that does not become ready gives a session with
// notReady set; only a failure of the benchmark itself is an error.
func (b *bench) open(t *tool, scen string, prepare func(src string) error, initialDone func(dst string) bool) (*session, error) {
	dir := filepath.Join(b.work, scen+"-"+t.name)
	s := &session{tool: t, scen: scen, src: filepath.Join(dir, "src"), dst: filepath.Join(dir, "dst")}
	for _, d := range []string{dir, s.src, s.dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(s.src, marker), []byte("watchbench\n"), 0o644); err != nil {
		return nil, err
	}
	if prepare != nil {
		if err := prepare(s.src); err != nil {
			return nil, err
		}
	}
	d, err := t.start(s.src, s.dst, dir)
	if err != nil {
		return nil, err
	}
	s.d = d
	t0 := time.Now()
	if err := d.WaitReady(b.ctx, b.cfg.timeout); err != nil {
		s.notReady = err
		return s, nil
	}
	markerPath := filepath.Join(s.dst, marker)
	_, ok := benchutil.Poll(b.ctx, t0, time.Millisecond, b.cfg.timeout, func() bool {
		var st unix.Stat_t
		return unix.Lstat(markerPath, &st) == nil && (initialDone == nil || initialDone(s.dst))
	})
	if !ok {
		s.notReady = fmt.Errorf("%w: %s's initial sync not complete in DST after %s although it said so",
			benchutil.ErrTimeout, t.name, b.cfg.timeout)
	}
	return s, nil
}

// close stops the tool and notes how it went.
func (b *bench) close(s *session, r *result) {
	if note := s.d.Stop(10*time.Second, s.tool.cleanExit); note != "" {
		r.note(s.scen, "%s", note)
	}
}

// status is the table cell for a measurement that could not run.
func status(err error) string {
	if errors.Is(err, benchutil.ErrTimeout) {
		return "TIMEOUT"
	}
	return "failed"
}

// skip records that the tool never became ready for scen.
func (b *bench) skip(s *session, r *result) {
	r.note(s.scen, "%s was not ready, nothing measured: %v", s.tool.name, s.notReady)
	fmt.Fprintf(b.w, "(%s) %-9s %s: %v\n", s.scen, s.tool.name, status(s.notReady), benchutil.FirstLine(s.notReady.Error()))
}

// waitSettled waits the settle time, then until the tool has no running
// child (lsyncd's rsync), at most the timeout.
func (b *bench) waitSettled(s *session) {
	select {
	case <-b.ctx.Done():
		return
	case <-time.After(b.cfg.settle):
	}
	benchutil.Poll(b.ctx, time.Now(), 50*time.Millisecond, b.cfg.timeout, func() bool { return len(s.d.Children()) == 0 })
}

// verify compares DST with SRC until they are equal, at most the converge
// time, and returns the time from since until they were. A strict tool whose
// DST stays different is a WRONG RESULT; a reference tool's differences are
// noted.
func (b *bench) verify(s *session, r *result, since time.Time) cell {
	var (
		diffs []string
		err   error
	)
	_, ok := benchutil.Poll(b.ctx, time.Now(), 20*time.Millisecond, b.cfg.converge, func() bool {
		diffs, err = testutil.Diff(s.src, s.dst, s.tool.diffOpt)
		return err == nil && len(diffs) == 0
	})
	if ok {
		return cell{d: time.Since(since)} // the end of the successful Diff
	}
	var msg string
	if err != nil {
		msg = fmt.Sprintf("DST cannot be compared: %v", err)
	} else {
		msg = fmt.Sprintf("%d differences after %s:\n\t%s", len(diffs), b.cfg.converge, benchutil.FormatDiffs(diffs))
	}
	if s.tool.strict {
		r.wrong = append(r.wrong, s.scen)
		b.wrong = true
		fmt.Fprintf(b.w, "WRONG RESULT: (%s) %s's DST %s is not a mirror of SRC %s: %s\n", s.scen, s.tool.name, s.dst, s.src, msg)
		r.note(s.scen, "WRONG RESULT: DST is not a mirror of SRC: %s", msg)
	} else {
		r.note(s.scen, "%s's DST differs from SRC (reference tool, not fatal): %s", s.tool.name, msg)
	}
	return cell{status: "WRONG"}
}

// writeFile creates name, writes data and closes it.
func writeFile(name string, data []byte) error {
	return writeFileAt(name, data, nil)
}

// writeFileAt is writeFile, and sets *closing, if not nil, to the time just
// before the close.
func writeFileAt(name string, data []byte, closing *time.Time) error {
	fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: name, Err: err}
	}
	for p := data; len(p) > 0; {
		n, err := unix.Write(fd, p)
		if err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: name, Err: err}
		}
		p = p[n:]
	}
	if closing != nil {
		*closing = time.Now()
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: name, Err: err}
	}
	return nil
}

// fill fills p with bytes from rng.
func fill(p []byte, rng *rand.Rand) {
	for i := 0; i < len(p); i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, len(p)); j++ {
			p[j] = byte(v)
			v >>= 8
		}
	}
}

// latency is measurement (a).
func (b *bench) latency(r *result) error {
	cfg := b.cfg
	s, err := b.open(r.tool, "a", nil, nil)
	if err != nil {
		return err
	}
	defer b.close(s, r)
	if s.notReady != nil {
		r.latStatus = status(s.notReady)
		r.latCPU = cell{status: r.latStatus}
		b.skip(s, r)
		return nil
	}
	cpu0, _ := s.d.CPU()
	rng := rand.New(rand.NewPCG(cfg.seed, 1))
	data := make([]byte, 100)
	got := make([]byte, 200)
	var st unix.Stat_t
	consecutive := 0
	for i := range cfg.latFiles {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		name := fmt.Sprintf("new-%05d", i)
		fill(data, rng)
		if consecutive >= 3 { // do not wait 10 s for each of the rest
			r.lat = append(r.lat, timedOut)
			continue
		}
		// The clock starts just before close(), not after it: close wakes
		// the tool's inotify reader, which may preempt the writer and do
		// all its work before close returns.
		var t0 time.Time
		if err := writeFileAt(filepath.Join(s.src, name), data, &t0); err != nil {
			return err
		}
		dpath := filepath.Join(s.dst, name)
		lat, ok := benchutil.Poll(b.ctx, t0, cfg.pollEvery, cfg.latTimeout, func() bool {
			return unix.Stat(dpath, &st) == nil && st.Size == int64(len(data))
		})
		if !ok {
			r.lat = append(r.lat, timedOut)
			consecutive++
			continue
		}
		consecutive = 0
		r.lat = append(r.lat, lat)
		if n, err := readFile(dpath, got); err != nil || !bytes.Equal(got[:n], data) {
			r.latWrong++
		}
		benchutil.Sleep(cfg.latGap)
	}
	if consecutive >= 3 {
		r.note("a", "3 files in a row never arrived within %s; the remaining files were not written", cfg.latTimeout)
	}
	if r.latWrong > 0 {
		r.note("a", "%d files had their full size in DST but not their content when first seen", r.latWrong)
		if r.tool.strict {
			r.wrong = append(r.wrong, "a")
			b.wrong = true
		}
	}
	b.verify(s, r, time.Now())
	b.waitSettled(s)
	if cpu1, err := s.d.CPU(); err == nil && s.d.Alive() {
		r.latCPU = cell{d: cpu1 - cpu0}
	} else {
		r.latCPU = cell{status: "exited"}
	}
	med, p99 := percentile(r.lat, 50), percentile(r.lat, 99)
	fmt.Fprintf(b.w, "(a) %-9s %d files: median %s, p99 %s, %d timeouts\n", r.tool.name, len(r.lat),
		fmtLat(med), fmtLat(p99), countTimeouts(r.lat))
	return nil
}

func readFile(name string, p []byte) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, p)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return n, err
}

// burst is measurement (b), followed by (d) on the same tool.
func (b *bench) burst(r *result) error {
	cfg := b.cfg
	s, err := b.open(r.tool, "b", nil, nil)
	if err != nil {
		return err
	}
	defer b.close(s, r)
	if s.notReady != nil {
		st := cell{status: status(s.notReady)}
		r.burstWrite, r.burst, r.burstExact, r.burstCPU, r.idle = st, st, st, st, st
		b.skip(s, r)
		return nil
	}
	cpu0, _ := s.d.CPU()
	rng := rand.New(rand.NewPCG(cfg.seed, 2))
	want := make(map[string]int64, cfg.burstFiles)
	buf := make([]byte, 4096)
	sdir, ddir := filepath.Join(s.src, "burst"), filepath.Join(s.dst, "burst")
	start := time.Now()
	if err := os.Mkdir(sdir, 0o755); err != nil {
		return err
	}
	for i := range cfg.burstFiles {
		size := 100 + rng.IntN(4096-100+1)
		fill(buf[:size], rng)
		name := fmt.Sprintf("f-%05d", i)
		if err := writeFile(filepath.Join(sdir, name), buf[:size]); err != nil {
			return err
		}
		want[name] = int64(size)
	}
	last := time.Now()
	r.burstWrite = cell{d: last.Sub(start)}
	dents := make([]byte, 256<<10)
	d, ok := benchutil.Poll(b.ctx, last, cfg.burstPoll, cfg.timeout, func() bool { return benchutil.DirHas(ddir, want, dents) })
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if ok {
		r.burst = cell{d: d}
	} else {
		r.burst = cell{status: "TIMEOUT"}
		r.note("b", "DST did not have the %d files with their sizes %s after the last close", cfg.burstFiles, cfg.timeout)
	}
	r.burstExact = b.verify(s, r, last)
	if !ok && r.burstExact.ok() {
		r.burstExact = cell{status: "TIMEOUT"}
	}
	b.waitSettled(s)
	cpu1, err := s.d.CPU()
	if err != nil || !s.d.Alive() {
		r.burstCPU, r.idle = cell{status: "exited"}, cell{status: "exited"}
		return nil
	}
	r.burstCPU = cell{d: cpu1 - cpu0}
	fmt.Fprintf(b.w, "(b) %-9s %d files written in %s; DST had them %s after the last close, exact %s\n",
		r.tool.name, cfg.burstFiles, fmtCell(r.burstWrite), fmtCell(r.burst), fmtCell(r.burstExact))

	// (d): idle.
	select {
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-time.After(cfg.idle):
	}
	cpu2, err := s.d.CPU()
	if err != nil || !s.d.Alive() {
		r.idle = cell{status: "exited"}
		return nil
	}
	r.idle = cell{d: cpu2 - cpu1}
	fmt.Fprintf(b.w, "(d) %-9s CPU while idle for %s: %.2fs\n", r.tool.name, cfg.idle, r.idle.d.Seconds())
	return nil
}

// rename is measurement (c).
func (b *bench) rename(r *result) error {
	cfg := b.cfg
	size := int64(cfg.bigMiB) << 20
	const oldName, newName = "big.bin", "big-renamed.bin"
	prepare := func(src string) error {
		f, err := os.OpenFile(filepath.Join(src, oldName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(cfg.seed, 3))
		buf := make([]byte, 1<<20)
		fill(buf, rng)
		for i := range cfg.bigMiB {
			copy(buf, fmt.Sprintf("MiB %d\n", i)) // no two MiB alike
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	}
	full := func(path string) bool {
		var st unix.Stat_t
		return unix.Lstat(path, &st) == nil && st.Size == size
	}
	s, err := b.open(r.tool, "c", prepare, func(dst string) bool { return full(filepath.Join(dst, oldName)) })
	if err != nil {
		return err
	}
	defer b.close(s, r)
	if s.notReady != nil {
		r.rename = cell{status: status(s.notReady)}
		b.skip(s, r)
		return nil
	}
	b.waitSettled(s)
	oldDst, newDst := filepath.Join(s.dst, oldName), filepath.Join(s.dst, newName)
	// An open descriptor pins the old inode: its number cannot be reused
	// by a copy made after a delete, which would look like a kept inode.
	pin, err := unix.Open(oldDst, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		r.rename = cell{status: "failed"}
		r.note("c", "%s vanished from DST before the rename: %v", oldName, err)
		return nil
	}
	defer unix.Close(pin)
	var st, pinned unix.Stat_t
	t0 := time.Now()
	if err := os.Rename(filepath.Join(s.src, oldName), filepath.Join(s.src, newName)); err != nil {
		return err
	}
	d, ok := benchutil.Poll(b.ctx, t0, cfg.pollEvery, cfg.timeout, func() bool {
		return full(newDst) && unix.Lstat(oldDst, &st) == unix.ENOENT
	})
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if !ok {
		r.rename = cell{status: "TIMEOUT"}
		r.note("c", "DST did not show %s in place of %s %s after the rename", newName, oldName, cfg.timeout)
	} else {
		r.rename = cell{d: d}
		if unix.Lstat(newDst, &st) == nil && unix.Fstat(pin, &pinned) == nil {
			r.inode = map[bool]string{true: "kept", false: "new"}[st.Dev == pinned.Dev && st.Ino == pinned.Ino]
		}
	}
	b.verify(s, r, t0)
	fmt.Fprintf(b.w, "(c) %-9s rename of a %d MiB file visible in DST after %s, DST inode %s\n",
		r.tool.name, cfg.bigMiB, fmtCell(r.rename), orDash(r.inode))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
