package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A daemon is one running mirroring tool: fsmirror watch or lsyncd.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	out    *logWriter
	exited chan struct{} // closed once the process has been waited for
	err    error         // cmd.Wait's result, valid once exited is closed
}

// startDaemon starts argv in its own process group, its stdout and stderr
// collected by a logWriter that watches for the line ready accepts. The
// process is killed if the benchmark dies.
func startDaemon(name string, argv []string, ready func(line string) bool) (*daemon, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	lw := newLogWriter(ready)
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A child that inherited the output pipe (lsyncd's rsync) must not
	// keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, out: lw, exited: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

var errTimeout = errors.New("TIMEOUT")

// waitReady waits until the daemon prints its ready line, at most timeout.
func (d *daemon) waitReady(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.out.ready:
		return nil
	case <-d.exited:
		return fmt.Errorf("%s exited before it was ready (%v); its output:\n%s", d.name, d.err, d.out.tail(20))
	case <-t.C:
		return fmt.Errorf("%w: %s not ready after %s; its output:\n%s", errTimeout, d.name, timeout, d.out.tail(20))
	}
}

// alive reports whether the process is still running.
func (d *daemon) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop ends the daemon with SIGTERM, then SIGKILL after grace. It returns
// a note when the daemon did not stop cleanly: it had exited by itself, it
// needed SIGKILL, or it exited with an error. A daemon that exits cleanly
// on SIGTERM but with a status lsyncd-style ("killed by SIGTERM") is not
// worth a note when cleanExit says so.
func (d *daemon) stop(grace time.Duration, cleanExit func(error) bool) string {
	if !d.alive() {
		return fmt.Sprintf("%s had exited by itself before it was stopped (%v); last output:\n%s",
			d.name, d.err, d.out.tail(20))
	}
	start := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d.exited:
		if !cleanExit(d.err) {
			return fmt.Sprintf("%s exited with %v after SIGTERM; last output:\n%s", d.name, d.err, d.out.tail(20))
		}
		return ""
	case <-t.C:
	}
	_ = d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		return fmt.Sprintf("%s (pid %d) survived SIGKILL for 5s", d.name, d.cmd.Process.Pid)
	}
	return fmt.Sprintf("%s did not exit within %s of SIGTERM and was killed (waited %s); last output:\n%s",
		d.name, grace, time.Since(start).Round(time.Millisecond), d.out.tail(20))
}

// cpu returns the CPU time (user + sys) of the daemon and of the children
// it has waited for.
func (d *daemon) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// parseStatCPU sums utime, stime, cutime and cstime (fields 14 to 17) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted after the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 15 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat line %q: %w", stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseStatPPID returns the parent pid (field 4) of a /proc/PID/stat line.
func parseStatPPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// children returns the pids of the running children of pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if pp, ok := parseStatPPID(string(b)); ok && pp == pid {
			kids = append(kids, n)
		}
	}
	return kids
}

// A logWriter keeps the last part of a daemon's output and closes ready at
// the first complete line that match accepts.
type logWriter struct {
	mu      sync.Mutex
	buf     []byte // the last maxLog bytes
	line    []byte // the line being written
	match   func(string) bool
	ready   chan struct{}
	isReady bool
}

const maxLog = 64 << 10

func newLogWriter(match func(string) bool) *logWriter {
	return &logWriter{match: match, ready: make(chan struct{})}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*maxLog {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-maxLog:]...)
	}
	if w.isReady {
		return len(p), nil
	}
	for _, c := range p {
		if c != '\n' {
			if len(w.line) < 4096 {
				w.line = append(w.line, c)
			}
			continue
		}
		if w.match(string(w.line)) {
			w.isReady = true
			close(w.ready)
			break
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

// tail returns the last n lines written.
func (w *logWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimRight(string(w.buf), "\n")
	if s == "" {
		return "\t(no output)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// sleep pauses the calling thread for d with a system call: time.Sleep
// rounds short sleeps up to about a millisecond, too coarse for polling.
func sleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		var rem unix.Timespec
		if err := unix.Nanosleep(&ts, &rem); err != unix.EINTR {
			return
		}
		ts = rem
	}
}

// poll calls cond every interval until it is true and returns the time from
// t0 to the end of that call, or false after timeout or when ctx is done.
func poll(ctx context.Context, t0 time.Time, interval, timeout time.Duration, cond func() bool) (time.Duration, bool) {
	for {
		if cond() {
			return time.Since(t0), true
		}
		if time.Since(t0) > timeout || ctx.Err() != nil {
			return 0, false
		}
		sleep(interval)
	}
}
