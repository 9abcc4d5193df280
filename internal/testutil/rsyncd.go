package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Rsyncd is a real rsync daemon (`rsync --daemon --no-detach`) listening on
// 127.0.0.1, with one writable module that requires a user and a password,
// as a NAS serves one. Make one with NewRsyncd in a test or StartRsyncd
// elsewhere. Every wait of its methods is bounded.
type Rsyncd struct {
	// Port is the TCP port on 127.0.0.1; it stays the same across
	// Restart.
	Port int
	// Module is the module's name and Path its directory on this machine.
	Module, Path string
	// User and Password authenticate to the module; PasswordFile holds
	// Password for `rsync --password-file` (mode 0600).
	User, Password, PasswordFile string
	// Dir holds the configuration, the secrets file and the log.
	Dir string
	// SanitizesSymlinks is set when the daemon rewrites symlink targets
	// that are absolute or leave the module: a daemon that cannot chroot
	// into the module (one not run by root) does so for safety. A mirror
	// through it cannot keep such symlinks.
	SanitizesSymlinks bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// RsyncdOptions tune StartRsyncd. The zero value is ready to use.
type RsyncdOptions struct {
	// MaxConnections limits the connections the module accepts at once; 0
	// means no limit.
	MaxConnections int
	// Extra lines for the module's section of rsyncd.conf.
	Extra []string
}

// rsyncdWait bounds each wait for the daemon: to accept connections after
// a start, and to exit after a signal.
const rsyncdWait = 15 * time.Second

// NewRsyncd starts an rsync daemon for the test in a temporary directory and
// stops it when the test ends. It skips the test if rsync is not installed.
func NewRsyncd(t testing.TB, opt RsyncdOptions) *Rsyncd {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync is not installed: the rsync daemon tests need it")
	}
	d, err := StartRsyncd(t.TempDir(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop rsync daemon: %v", err)
		}
	})
	return d
}

// StartRsyncd starts an rsync daemon whose files live in dir: the module's
// directory is dir/module, initially empty. When running as root the daemon
// keeps owners (uid 0 in the module), so that a mirror made through it can
// be compared owner for owner. Stop it with Stop.
func StartRsyncd(dir string, opt RsyncdOptions) (*Rsyncd, error) {
	var pw [12]byte
	rand.Read(pw[:])
	d := &Rsyncd{
		Module:   "mirror",
		Path:     filepath.Join(dir, "module"),
		User:     "fsmirror",
		Password: hex.EncodeToString(pw[:]),
		Dir:      dir,
	}
	d.PasswordFile = filepath.Join(dir, "password")
	if err := os.Mkdir(d.Path, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets"), []byte(d.User+":"+d.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.PasswordFile, []byte(d.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	// A port that is free now may be taken before the daemon binds it:
	// try a few.
	var err error
	for range 5 {
		if d.Port, err = freeTCPPort(); err != nil {
			return nil, err
		}
		if err = d.writeConfig(opt); err != nil {
			return nil, err
		}
		if err = d.Start(); err == nil {
			return d, nil
		}
	}
	return nil, err
}

// freeTCPPort returns a TCP port of 127.0.0.1 that nothing listens on.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (d *Rsyncd) writeConfig(opt RsyncdOptions) error {
	lines := []string{
		"address = 127.0.0.1",
		"port = " + strconv.Itoa(d.Port),
		"pid file = " + filepath.Join(d.Dir, "rsyncd.pid"),
		"lock file = " + filepath.Join(d.Dir, "rsyncd.lock"),
		"log file = " + filepath.Join(d.Dir, "rsyncd.log"),
		"",
		"[" + d.Module + "]",
		"path = " + d.Path,
		"read only = no",
		"auth users = " + d.User,
		"secrets file = " + filepath.Join(d.Dir, "secrets"),
		"strict modes = yes",
		"numeric ids = yes",
		"max connections = " + strconv.Itoa(opt.MaxConnections),
	}
	if os.Geteuid() == 0 {
		// As root the daemon drops to nobody unless told otherwise, and
		// could then neither set owners nor read what it wrote. In a
		// chroot it keeps symlink targets as they are.
		lines = append(lines, "uid = 0", "gid = 0", "use chroot = yes")
	} else {
		// Without a chroot it sanitizes symlink targets; munged (the
		// default) they would not even look like the source's.
		lines = append(lines, "use chroot = no", "munge symlinks = no")
		d.SanitizesSymlinks = true
	}
	lines = append(lines, opt.Extra...)
	return os.WriteFile(filepath.Join(d.Dir, "rsyncd.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// URL returns the rsync:// URL of path (relative, may be "") in the module,
// with the user name.
func (d *Rsyncd) URL(path string) string {
	u := fmt.Sprintf("rsync://%s@127.0.0.1:%d/%s", d.User, d.Port, d.Module)
	if path != "" {
		u += "/" + path
	}
	return u
}

// Start starts the daemon, which must not be running, and waits until it
// accepts connections.
func (d *Rsyncd) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return errors.New("rsync daemon already running")
	}
	os.Remove(filepath.Join(d.Dir, "rsyncd.pid")) // left by a SIGKILL, it would stop the start
	cmd := exec.Command("rsync", "--daemon", "--no-detach", "--config="+filepath.Join(d.Dir, "rsyncd.conf"))
	// Output to a file, not a pipe: a pipe would make Wait wait for the
	// connection processes that inherited it.
	out, err := os.OpenFile(filepath.Join(d.Dir, "rsyncd.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that Stop also ends the processes it
	// forked for connections, as a real restart does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsync daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port))
	deadline := time.Now().Add(rsyncdWait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("rsync daemon exited at start (%s):\n%s%s", cmd.ProcessState, b, d.logTail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return fmt.Errorf("rsync daemon does not accept connections on %s after %v:\n%s", addr, rsyncdWait, d.logTail())
		}
	}
	d.cmd, d.exited = cmd, exited
	return nil
}

// Stop stops the daemon and every connection it serves: SIGTERM to its
// process group, SIGKILL if it has not exited after a while. Stopping a
// stopped daemon does nothing.
func (d *Rsyncd) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	pgid := d.cmd.Process.Pid
	defer func() {
		// Connection processes may outlive the daemon by a moment.
		syscall.Kill(-pgid, syscall.SIGKILL)
		d.cmd = nil
	}()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(rsyncdWait):
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-d.exited:
		return fmt.Errorf("rsync daemon ignored SIGTERM for %v", rsyncdWait)
	case <-time.After(rsyncdWait):
		return fmt.Errorf("rsync daemon (pid %d) does not exit after SIGKILL", pgid)
	}
}

// Restart stops the daemon and starts it again on the same port.
func (d *Rsyncd) Restart() error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.Start()
}

// Log returns the daemon's log.
func (d *Rsyncd) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "rsyncd.log"))
	return string(b)
}

func (d *Rsyncd) logTail() string {
	l := d.Log()
	if len(l) > 4000 {
		l = "...\n" + l[len(l)-4000:]
	}
	if l == "" {
		return ""
	}
	return "log:\n" + l
}
