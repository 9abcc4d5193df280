package main

import (
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's sd_notify protocol: datagrams of
// "KEY=value" lines to the unix socket $NOTIFY_SOCKET. It is the few lines
// of github.com/coreos/go-systemd/v22/daemon that fsmirror needs, written
// out rather than imported. A nil notifier (not under systemd) does
// nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier returns the notifier of $NOTIFY_SOCKET, or nil if it is not
// set. The variable is removed from the environment, so that no child
// (ssh, rsync) talks to systemd in fsmirror's name.
func newNotifier() *notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	os.Unsetenv("NOTIFY_SOCKET")
	if name[0] == '@' { // an abstract socket
		name = "\x00" + name[1:]
	}
	return &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// send sends state, such as "READY=1", and reports whether it could.
func (n *notifier) send(state string) bool {
	if n == nil {
		return false
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err == nil
}

// watchdogInterval returns how often systemd wants WATCHDOG=1
// ($WATCHDOG_USEC, for this process if $WATCHDOG_PID says so), or 0.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// startWatchdog sends WATCHDOG=1 at half the interval systemd asks for,
// when under systemd with WatchdogSec set, until the returned function is
// called.
func (n *notifier) startWatchdog() (stop func()) {
	every := watchdogInterval() / 2
	if n == nil || every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n.send("WATCHDOG=1")
			}
		}
	}()
	return func() { close(done) }
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
