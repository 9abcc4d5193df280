package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SSHD is a real OpenSSH server on 127.0.0.1, started for one test with
// throw-away host and user keys. It accepts the current user with the user
// key only.
type SSHD struct {
	Addr    string // 127.0.0.1:port
	Port    int
	User    string
	KeyFile string // the user's private key
	// Command is the ssh command that reaches this server without asking
	// anything: "ssh -p PORT -i KEY -o ...", to be split on spaces.
	Command string

	dir    string
	sshd   string
	config string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

// ErrNoSSHD is returned by NewSSHD when sshd or the ssh client is not
// installed.
var ErrNoSSHD = errors.New("sshd or ssh is not installed (apt-get install openssh-server openssh-client)")

// StartSSHD starts an sshd for the test and stops it when the test ends. It
// skips the test when no sshd or ssh is installed, and fails it when one is
// but does not start.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	dir, err := os.MkdirTemp("", "fsmirror-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := NewSSHD(dir)
	if errors.Is(err, ErrNoSSHD) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewSSHD starts an sshd whose keys and configuration live in dir, a
// private directory of the caller's (short, without symlinks: sshd's
// checks care). The caller stops it.
func NewSSHD(dir string) (*SSHD, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			return nil, ErrNoSSHD
		}
		sshd = "/usr/sbin/sshd"
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, ErrNoSSHD
		}
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshd: current user: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	s := &SSHD{User: u.Username, dir: dir, sshd: sshd, KeyFile: filepath.Join(dir, "id_ed25519")}
	for _, key := range []string{filepath.Join(dir, "host_ed25519"), s.KeyFile} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		return nil, err
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, pub, 0o600); err != nil {
		return nil, err
	}
	// Privilege separation needs this directory when sshd runs as root.
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	s.config = filepath.Join(dir, "sshd_config")
	config := strings.Join([]string{
		"ListenAddress " + s.Addr,
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + authKeys,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"AllowUsers " + u.Username,
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel ERROR",
		"Subsystem sftp internal-sftp",
		"AcceptEnv XDG_CACHE_HOME",
		"",
	}, "\n")
	if err := os.WriteFile(s.config, []byte(config), 0o600); err != nil {
		return nil, err
	}
	s.Command = strings.Join([]string{
		"ssh", "-p", strconv.Itoa(s.Port), "-i", s.KeyFile,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=10", "-F", "/dev/null",
	}, " ")
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts (or restarts) the server and waits until it accepts
// connections.
func (s *SSHD) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("sshd: already running")
	}
	// -D: stay in the foreground; -e: log to stderr.
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", s.config)
	s.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Sessions inherit the log pipe: without a limit, Wait would wait for
	// every open connection to end too.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("sshd exited at start: %s", s.log)
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return fmt.Errorf("sshd did not listen on %s within 10s: %s", s.Addr, s.log)
}

// Stop stops the listening server. Connections already open have their own
// sshd processes and stay up; KillSessions ends them.
func (s *SSHD) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// KillSessions kills the per-connection sshd processes of this server,
// which drops every open SSH connection to it, as a network failure or a
// reboot would. The listening server stays up.
func (s *SSHD) KillSessions() int {
	s.mu.Lock()
	var listener int
	if s.cmd != nil {
		listener = s.cmd.Process.Pid
	}
	s.mu.Unlock()
	n := 0
	for _, pid := range childrenOf(listener) {
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			n++
		}
	}
	return n
}

// childrenOf lists the pids whose parent is ppid.
func childrenOf(ppid int) []int {
	if ppid == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Run runs a command on the server through ssh and returns its combined
// output.
func (s *SSHD) Run(ctx context.Context, command string) ([]byte, error) {
	args := append(strings.Fields(s.Command)[1:], s.User+"@127.0.0.1", command)
	return exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
}

// Log returns what the server has logged so far.
func (s *SSHD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
