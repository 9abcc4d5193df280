package wire

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/fsmirror/fsmirror"
)

// ErrProtocol is wrapped by errors that end a connection because the peer
// broke the protocol.
var ErrProtocol = errors.New("protocol error")

// encodeError writes err as the fields of an error message.
func encodeError(e *enc, id uint64, err error, fatal bool) {
	e.uint(id)
	var errno syscall.Errno
	var op, path string
	inner := err
	if pe, ok := errors.AsType[*fsmirror.PathError](err); ok {
		op, path, inner = pe.Op, pe.Path, pe.Err
	}
	text := inner.Error()
	switch {
	case errors.As(err, &errno):
	case errors.Is(err, fs.ErrNotExist):
		errno = syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		errno = syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		errno = syscall.EACCES
	}
	e.uint(uint64(errno))
	e.string(op)
	e.string(path)
	e.string(text)
	e.bool(fatal)
}

// decodeError reads an error message. The error is a *fsmirror.PathError
// around the syscall.Errno the far side reported, so errors.Is(err,
// fs.ErrNotExist) and the like work across the connection.
func decodeError(d *dec) (id uint64, err error, fatal bool) {
	id = d.uint()
	errno := syscall.Errno(d.uint32())
	op, path, text := d.string(), d.string(), d.string()
	fatal = d.bool()
	var inner error = errno
	if errno == 0 {
		inner = errors.New(text)
	} else if text != errno.Error() {
		inner = &textErr{text: text, errno: errno}
	}
	if op == "" {
		return id, inner, fatal
	}
	return id, &fsmirror.PathError{Op: op, Path: path, Err: inner}, fatal
}

// textErr is an errno with the far side's own words for it.
type textErr struct {
	text  string
	errno syscall.Errno
}

func (e *textErr) Error() string { return e.text }
func (e *textErr) Unwrap() error { return e.errno }
