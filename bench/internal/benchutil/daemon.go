package benchutil

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

// A Daemon is one running program under measurement (fsmirror watch,
// lsyncd), in its own process group, its output kept.
type Daemon struct {
	Name    string
	Started time.Time // just before the exec
	cmd     *exec.Cmd
	out     *logWriter
	exited  chan struct{} // closed once the process has been waited for
	err     error         // cmd.Wait's result, valid once exited is closed
}

// ErrTimeout marks a wait that ran out of time.
var ErrTimeout = errors.New("TIMEOUT")

// killWait bounds the wait for a process to exit after SIGKILL.
const killWait = 30 * time.Second

// StartDaemon starts argv in its own process group, its output collected,
// and ready accepting the line that says it is ready. The process is killed
// if the benchmark dies.
func StartDaemon(name string, argv []string, ready func(line string) bool) (*Daemon, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	lw := &logWriter{match: ready, ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A child that inherited the output pipe (lsyncd's rsync) must not
	// keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	d := &Daemon{Name: name, cmd: cmd, out: lw, exited: make(chan struct{})}
	d.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// WaitReady waits until the daemon prints its ready line, at most timeout,
// or until ctx is done.
func (d *Daemon) WaitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.out.ready:
		return nil
	case <-d.exited:
		return fmt.Errorf("%s exited before it was ready (%v); its output:\n%s", d.Name, d.err, d.Tail(20))
	case <-t.C:
		return fmt.Errorf("%w: %s not ready after %s; its output:\n%s", ErrTimeout, d.Name, timeout, d.Tail(20))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadyLine returns the line that made the daemon ready and when it was
// written: "" and the zero time before.
func (d *Daemon) ReadyLine() (string, time.Time) {
	d.out.mu.Lock()
	defer d.out.mu.Unlock()
	return d.out.readyLine, d.out.readyAt
}

// Alive reports whether the process is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Stop ends the daemon and its process group with SIGTERM, then SIGKILL
// after grace, and returns a note when it did not stop cleanly (cleanExit
// judges its exit status).
func (d *Daemon) Stop(grace time.Duration, cleanExit func(error) bool) string {
	if !d.Alive() {
		return fmt.Sprintf("%s had exited by itself before it was stopped (%v); last output:\n%s", d.Name, d.err, d.Tail(20))
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		syscall.Kill(-d.Pid(), syscall.SIGKILL) // children left behind
		if !cleanExit(d.err) {
			return fmt.Sprintf("%s exited with %v after SIGTERM; last output:\n%s", d.Name, d.err, d.Tail(20))
		}
		return ""
	case <-time.After(grace):
	}
	if err := d.Kill(); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s did not exit within %s of SIGTERM and was killed; last output:\n%s", d.Name, grace, d.Tail(20))
}

// Kill ends the daemon and its process group with SIGKILL and waits for
// the daemon to exit. A daemon that has exited already is no error.
func (d *Daemon) Kill() error {
	syscall.Kill(-d.Pid(), syscall.SIGKILL)
	select {
	case <-d.exited:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for %s", d.Name, d.Pid(), killWait)
	}
}

// CPU returns the CPU time (user + sys) of the daemon and of the children
// it has waited for.
func (d *Daemon) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.Pid()))
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(string(b))
}

// Children returns the pids of the running children of the daemon.
func (d *Daemon) Children() []int {
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
		if pp, ok := ParseStatPPID(string(b)); ok && pp == d.Pid() {
			kids = append(kids, n)
		}
	}
	return kids
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// statFields returns the fields of a /proc/PID/stat line from field 3, the
// state, on. The command name (field 2) is in parentheses and may hold
// spaces and parentheses itself, so fields are counted after the last ')'.
func statFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

// ParseStatCPU sums utime, stime, cutime and cstime (fields 14 to 17) of a
// /proc/PID/stat line.
func ParseStatCPU(stat string) (time.Duration, error) {
	f := statFields(stat)
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

// ParseStatPPID returns the parent pid (field 4) of a /proc/PID/stat line.
func ParseStatPPID(stat string) (int, bool) {
	f := statFields(stat)
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// Tail returns the last n lines the daemon printed, indented.
func (d *Daemon) Tail(n int) string { return d.out.tail(n) }

// logWriter keeps the last part of a daemon's output and closes ready at
// the first complete line that match accepts, noting the line and when it
// was written.
type logWriter struct {
	mu        sync.Mutex
	buf       []byte // the last maxLog bytes
	line      []byte // the line being written
	match     func(string) bool
	ready     chan struct{}
	readyAt   time.Time
	readyLine string
}

const maxLog = 64 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*maxLog {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-maxLog:]...)
	}
	if !w.readyAt.IsZero() {
		return len(p), nil
	}
	for _, c := range p {
		if c != '\n' {
			if len(w.line) < maxLog {
				w.line = append(w.line, c)
			}
			continue
		}
		if w.match(string(w.line)) {
			w.readyAt, w.readyLine = now, string(w.line)
			close(w.ready)
			break
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *logWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return "\t" + strings.ReplaceAll(LastLines(string(w.buf), n), "\n", "\n\t")
}

// Poll calls cond every interval until it is true and returns the time
// from t0 to the end of that call, or false after timeout or when ctx is
// done.
func Poll(ctx context.Context, t0 time.Time, interval, timeout time.Duration, cond func() bool) (time.Duration, bool) {
	for {
		if cond() {
			return time.Since(t0), true
		}
		if time.Since(t0) > timeout || ctx.Err() != nil {
			return 0, false
		}
		Sleep(interval)
	}
}

// Sleep pauses the calling thread for d with a system call: time.Sleep
// rounds short sleeps up to about a millisecond, too coarse for polling.
func Sleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		var rem unix.Timespec
		if err := unix.Nanosleep(&ts, &rem); err != unix.EINTR {
			return
		}
		ts = rem
	}
}

// LoadAverage returns the 1, 5 and 15 minute load averages, or "?".
func LoadAverage() string {
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
