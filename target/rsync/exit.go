package rsync

import (
	"fmt"
	"strings"

	"github.com/fsmirror/fsmirror"
)

// Class is what fsmirror does about an rsync exit status.
type Class uint8

// The classes of rsync exit statuses (see the table in Codes).
const (
	// OK: everything given was transferred, or vanished from the source
	// meanwhile (24), which the source's own events cover.
	OK Class = iota
	// Partial: rsync reached the destination, but some files failed (23),
	// or --max-delete stopped deletions (25). The paths are retried a few
	// times, then reported. The error wraps fsmirror.ErrPartial.
	Partial
	// Retried: the destination could not be reached or the connection
	// broke (a daemon restart, a network failure, a timeout, a full disk):
	// the paths are kept and retried, backing off, for as long as fsmirror
	// runs. The error wraps fsmirror.ErrTargetDown.
	Retried
	// Fatal: retrying cannot help (a syntax error, an option the far side
	// does not support, a wrong password): fsmirror stops with the error.
	Fatal
)

var classNames = [...]string{"ok", "partial", "retried", "fatal"}

// String returns the class's name, such as "retried".
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "?"
}

// ExitCode is one documented rsync exit status.
type ExitCode struct {
	Status  int
	Meaning string // as rsync's manual says it
	Class   Class
}

// Codes lists rsync's exit statuses (rsync(1), EXIT VALUES) with what
// fsmirror does about each. A status that is not listed is fatal, but death
// by a signal (the kernel's OOM killer, a shutdown) is retried.
//
// Two statuses depend on what rsync printed: 5 is retried when the daemon
// said "max connections ... reached" or said nothing (the connection broke
// during the handshake), and fatal when the daemon refused with its own
// @ERROR (auth failed, unknown module, access denied); 12 and 255 are
// fatal when ssh refused the login or the far side has no rsync, and
// retried otherwise.
var Codes = []ExitCode{
	{0, "success", OK},
	{1, "syntax or usage error", Fatal},
	{2, "protocol incompatibility", Fatal},
	{3, "errors selecting input/output files, dirs", Fatal},
	{4, "requested action not supported", Fatal},
	{5, "error starting client-server protocol", Retried},
	{6, "daemon unable to append to log-file", Fatal},
	{10, "error in socket I/O", Retried},
	{11, "error in file I/O", Retried},
	{12, "error in rsync protocol data stream", Retried},
	{13, "errors with program diagnostics", Fatal},
	{14, "error in IPC code", Fatal},
	{15, "sibling process crashed", Retried},
	{16, "sibling process was killed by a signal", Retried},
	{19, "received SIGUSR1", Retried},
	{20, "received SIGINT, SIGTERM, or SIGHUP", Retried},
	{21, "some error returned by waitpid()", Retried},
	{22, "error allocating core memory buffers", Retried},
	{23, "partial transfer due to error", Partial},
	{24, "partial transfer due to vanished source files", OK},
	{25, "the --max-delete limit stopped deletions", Partial},
	{30, "timeout in data send/receive", Retried},
	{35, "timeout waiting for daemon connection", Retried},
	{126, "(from the remote shell) the far side's rsync cannot be run", Fatal},
	{127, "(from the remote shell) the far side has no such rsync", Fatal},
	{255, "unexplained error (with ssh: the connection failed)", Retried},
}

// classify returns the class of an exit status (-1: killed by a signal)
// given what rsync printed on stderr, and a hint for the user.
func classify(status int, stderr string) (Class, string) {
	lower := strings.ToLower(stderr)
	switch {
	case status == -1:
		return Retried, ""
	case status == 5 && strings.Contains(stderr, "@ERROR") && !strings.Contains(stderr, "max connections"):
		hint := ""
		switch {
		case strings.Contains(stderr, "auth failed"):
			hint = "check the user in the URL and the password in --password-file (the daemon's secrets file has user:password lines)"
		case strings.Contains(stderr, "Unknown module"):
			hint = "the module name is the first path component of rsync://host/module/path; `rsync rsync://host/` lists the modules"
		}
		return Fatal, hint
	case status == 126 || status == 127 || (status == 12 || status == 255) && (strings.Contains(lower, "command not found") || strings.Contains(lower, "rsync: not found") ||
		strings.Contains(lower, "no such file or directory") && strings.Contains(lower, "connection unexpectedly closed (0 bytes")):
		return Fatal, "the far side has no rsync in its PATH: install it, or give its location with --rsync-path"
	case (status == 12 || status == 255) && (strings.Contains(stderr, "Permission denied") || strings.Contains(stderr, "Host key verification failed")):
		return Fatal, "ssh refused the login: check the user, the key (--ssh 'ssh -i KEY') and known_hosts; fsmirror runs ssh with BatchMode, so it cannot ask for a password"
	case status == 1 && strings.Contains(stderr, "password file"):
		return Fatal, "the --password-file must exist, hold the password on its first line, and be readable only by its owner (chmod 600)"
	}
	for _, c := range Codes {
		if c.Status == status {
			return c.Class, ""
		}
	}
	return Fatal, ""
}

// meaning returns what rsync's manual says about an exit status.
func meaning(status int) string {
	if status == -1 {
		return "killed by a signal"
	}
	for _, c := range Codes {
		if c.Status == status {
			return c.Meaning
		}
	}
	return "unknown exit status"
}

// ExitError is the failure of one rsync run.
type ExitError struct {
	Status int    // rsync's exit status; -1 when it was killed by a signal
	Class  Class  // what the caller should do about it
	Stderr string // the first and last lines rsync printed on stderr
	Hint   string // what the user can do, when known
}

// Error describes the failure with rsync's most telling line.
func (e *ExitError) Error() string {
	s := fmt.Sprintf("rsync exited with status %d (%s)", e.Status, meaning(e.Status))
	if e.Status == -1 {
		s = "rsync was killed by a signal"
	}
	if l := tellingLine(e.Stderr); l != "" {
		s += ": " + l
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap makes a retried error wrap fsmirror.ErrTargetDown and a partial one
// fsmirror.ErrPartial.
func (e *ExitError) Unwrap() error {
	switch e.Class {
	case Retried:
		return fsmirror.ErrTargetDown
	case Partial:
		return fsmirror.ErrPartial
	}
	return nil
}

// tellingLine picks the line of rsync's stderr that says what went wrong:
// the daemon's @ERROR, else a line of the remote shell (ssh, or the shell
// that found no rsync), else the first "rsync:" line, else the first line
// that is not rsync's own summary. Warnings and vanished files never tell.
func tellingLine(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.Contains(l, "vanished") && !strings.HasPrefix(l, "Warning:") && !strings.HasPrefix(l, "rsync error: ") && l != "[...]" {
			lines = append(lines, l)
		}
	}
	for _, l := range lines {
		if i := strings.Index(l, "@ERROR"); i >= 0 {
			return l[i:]
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "rsync") && !strings.HasPrefix(l, "ERROR: ") {
			return l
		}
	}
	if len(lines) > 0 {
		return lines[0]
	}
	return ""
}
