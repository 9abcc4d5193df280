package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The control socket: each running config (instance) listens on
// <runtime dir>/<name>.sock, next to <name>.pid. A client sends one JSON
// request line, {"cmd":"status"|"reload"|"stop"}, and reads one JSON reply
// line; after a stop the connection stays open until the instance has
// exited, so that a client can wait for that.

const (
	defaultInstance = "default"
	nameRule        = "a name is a letter or digit, then up to 63 letters, digits, '.', '_' or '-'"
)

// runtimeDir is where the control sockets and pid files are:
// $FSMIRROR_RUNTIME_DIR, else /run/fsmirror for root, else
// $XDG_RUNTIME_DIR/fsmirror, else a directory of the user's in /tmp.
func runtimeDir() string {
	if d := os.Getenv("FSMIRROR_RUNTIME_DIR"); d != "" {
		return d
	}
	if unix.Geteuid() == 0 {
		return "/run/fsmirror"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "fsmirror")
	}
	return filepath.Join(os.TempDir(), "fsmirror-"+strconv.Itoa(os.Getuid()))
}

func socketPath(name string) string { return filepath.Join(runtimeDir(), name+".sock") }
func pidPath(name string) string    { return filepath.Join(runtimeDir(), name+".pid") }

type controlRequest struct {
	Cmd   string `json:"cmd"`
	reply func(controlReply)
}

type controlReply struct {
	OK      bool            `json:"ok"`
	Message string          `json:"message,omitempty"`
	Error   string          `json:"error,omitempty"`
	Status  *instanceStatus `json:"status,omitempty"`
}

// control is an instance's listening control socket and pid file.
type control struct {
	ln      *net.UnixListener
	sock    string
	pidFile string
}

// listenControl creates the control socket and pid file of in, refusing
// to start a second instance of the same name.
func listenControl(in *instance) (*control, error) {
	dir := runtimeDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, setupErr("runtime directory: %v", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, setupErr("runtime directory: %v", err)
	}
	sock, pidFile := socketPath(in.name), pidPath(in.name)
	if len(sock) >= 108 {
		return nil, setupErr("control socket path %s is too long for a unix socket; set FSMIRROR_RUNTIME_DIR to a shorter directory", sock)
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		pid, _ := os.ReadFile(pidFile)
		return nil, setupErr("instance %q is already running (pid %s); stop it first, or give another --name", in.name, strings.TrimSpace(string(pid)))
	}
	os.Remove(sock) // left by an instance that did not stop cleanly
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, setupErr("control socket: %v", err)
	}
	ln.SetUnlinkOnClose(true)
	os.Chmod(sock, 0o600)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		ln.Close()
		return nil, setupErr("pid file: %v", err)
	}
	c := &control{ln: ln, sock: sock, pidFile: pidFile}
	go c.serve(in)
	return c, nil
}

// checkPrivateDir refuses a runtime directory that someone else could have
// made for us (the fallback is in /tmp): it must be a directory of ours,
// not a symlink, that no one else may write to.
func checkPrivateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to another user (uid %d); remove it, or set FSMIRROR_RUNTIME_DIR", dir, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s may be written by others (mode %o); make it 0700, or set FSMIRROR_RUNTIME_DIR", dir, st.Mode&0o777)
	}
	return nil
}

func (c *control) close() {
	c.ln.Close()
	os.Remove(c.pidFile)
}

func (c *control) serve(in *instance) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.handle(in, conn)
	}
}

func (c *control) handle(in *instance, conn net.Conn) {
	var req controlRequest
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	conn.SetReadDeadline(time.Time{})
	enc := json.NewEncoder(conn)
	if err != nil {
		enc.Encode(controlReply{Error: "bad request: " + err.Error()})
		conn.Close()
		return
	}
	switch req.Cmd {
	case "status":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st := in.status(ctx)
		cancel()
		enc.Encode(controlReply{OK: true, Status: &st})
		conn.Close()
	case "reload", "stop":
		replied := make(chan struct{})
		req.reply = func(r controlReply) {
			enc.Encode(r)
			close(replied)
		}
		select {
		case in.requests <- req:
		case <-time.After(time.Minute):
			enc.Encode(controlReply{Error: "the instance is busy; try again"})
			conn.Close()
			return
		}
		<-replied
		if req.Cmd == "reload" {
			conn.Close()
		}
		// After stop, conn stays open until the process exits: the client
		// waits for that.
	default:
		enc.Encode(controlReply{Error: fmt.Sprintf("unknown command %q", req.Cmd)})
		conn.Close()
	}
}

// errNotRunning says no instance of that name answers.
var errNotRunning = errors.New("not running")

// dialControl connects to the control socket of instance name.
func dialControl(name string) (net.Conn, error) {
	conn, err := net.DialTimeout("unix", socketPath(name), 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, errNotRunning
		}
		return nil, err
	}
	return conn, nil
}

// ask sends cmd to instance name and returns its reply, and the
// connection, still open, for stop.
func ask(name, cmd string, timeout time.Duration) (controlReply, net.Conn, error) {
	conn, err := dialControl(name)
	if err != nil {
		return controlReply{}, nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(conn).Encode(controlRequest{Cmd: cmd}); err != nil {
		conn.Close()
		return controlReply{}, nil, err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		conn.Close()
		return controlReply{}, nil, fmt.Errorf("no answer from instance %q: %w", name, err)
	}
	var r controlReply
	if err := json.Unmarshal(line, &r); err != nil {
		conn.Close()
		return controlReply{}, nil, fmt.Errorf("bad answer from instance %q: %w", name, err)
	}
	return r, conn, nil
}

// instances lists the names of the instances with a control socket in
// the runtime directory.
func instances() []string {
	matches, _ := filepath.Glob(filepath.Join(runtimeDir(), "*.sock"))
	var names []string
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".sock"))
	}
	return names
}

// readPid returns the pid in the pid file of instance name, or 0.
func readPid(name string) int {
	b, err := os.ReadFile(pidPath(name))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether process pid exists and has not exited: a zombie
// that its parent (init, for a started instance) has not reaped yet is
// dead.
func alive(pid int) bool {
	if pid <= 0 || unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) STATE ...: comm may hold anything, ")" included.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
