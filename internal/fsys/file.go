package fsys

import (
	"io"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// File is a regular file open for reading by descriptor. Unlike an *os.File
// it is not registered with the runtime's poller: for the many small files a
// sync copies, that registration costs more syscalls than the copy.
type File struct {
	fd   int
	name string
}

// Fd returns the descriptor, valid until Close.
func (f *File) Fd() int { return f.fd }

// Read reads from the file's current offset.
func (f *File) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(p) bytes at offset off, without moving the offset.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(f.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Seek sets the offset of the next Read.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	return unix.Seek(f.fd, offset, whence)
}

// Stat returns the file's metadata now.
func (f *File) Stat() (fsmirror.Entry, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fsmirror.Entry{}, err
	}
	return EntryFromStat(f.name, &st), nil
}

// Close closes the descriptor.
func (f *File) Close() error { return unix.Close(f.fd) }
