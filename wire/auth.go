package wire

import (
	"errors"
	"fmt"
	"syscall"
)

// Auth is what a client presents to a server that wants to know who it is
// (the receiver of `fsmirror serve`), right after the hello and before any
// request: a secret, and the directory it wants to write, relative to the
// tree the secret grants.
type Auth struct {
	Token string
	// Path is the destination directory, a clean relative path
	// (fsmirror.IsValidPath) below the granted tree; "" is that tree.
	Path string
	// Create asks the server to make Path, and its missing parents, if it
	// does not exist.
	Create bool
}

func encodeAuth(e *enc, a *Auth) {
	e.string(a.Token)
	e.string(a.Path)
	e.bool(a.Create)
}

// decodeAuth reads an auth message. Its path is checked like every other.
func decodeAuth(d *dec) Auth {
	var a Auth
	a.Token = d.string()
	a.Path = d.path()
	a.Create = d.bool()
	return a
}

// ErrIdle is wrapped by the error of a Server that closed a connection on
// which nothing happened for its IdleTimeout.
var ErrIdle = errors.New("connection idle")

// errIdleClose is what a server tells the client when it closes an idle
// connection. It travels as ETIMEDOUT.
func errIdleClose(after string) error {
	return &textErr{text: fmt.Sprintf("no request for %s: the receiver closed the idle connection", after), errno: syscall.ETIMEDOUT}
}

// errServerIdle marks the end of a connection that the server closed
// because it was idle.
var errServerIdle = errors.New("closed by the server as idle")
