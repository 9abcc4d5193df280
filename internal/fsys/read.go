package fsys

import (
	"crypto/sha256"
	"errors"
	"io"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// ErrNotRegular is returned by OpenFile when the path is not a regular file
// (it was replaced by something else since it was listed).
var ErrNotRegular = errors.New("not a regular file")

// EntryFromStat converts a stat result into an Entry named name.
func EntryFromStat(name string, st *unix.Stat_t) fsmirror.Entry {
	return fsmirror.Entry{
		Name:  name,
		Type:  typeOf(st.Mode),
		Mode:  st.Mode & 0o7777,
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Uid:   st.Uid,
		Gid:   st.Gid,
		Nlink: uint32(st.Nlink),
		Dev:   st.Dev,
		Ino:   st.Ino,
		Rdev:  st.Rdev,
	}
}

func typeOf(mode uint32) fsmirror.Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return fsmirror.TypeFile
	case unix.S_IFDIR:
		return fsmirror.TypeDir
	case unix.S_IFLNK:
		return fsmirror.TypeSymlink
	case unix.S_IFIFO:
		return fsmirror.TypeFifo
	case unix.S_IFSOCK:
		return fsmirror.TypeSocket
	case unix.S_IFCHR:
		return fsmirror.TypeCharDev
	case unix.S_IFBLK:
		return fsmirror.TypeBlockDev
	}
	return fsmirror.TypeUnknown
}

// ReadDir lists the directory rel: one lstat-ed entry per name, symlinks
// with their targets. Names that vanish while being listed are left out.
func (r *Root) ReadDir(rel string) ([]fsmirror.Entry, error) {
	d, err := r.OpenDir(rel)
	if err != nil {
		return nil, PathErr("read directory", rel, err)
	}
	defer d.Release()
	names, err := d.readNames()
	if err != nil {
		return nil, PathErr("read directory", rel, err)
	}
	entries := make([]fsmirror.Entry, 0, len(names))
	for _, name := range names {
		e, err := StatAt(d.fd, name)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, PathErr("stat", fsmirror.Join(rel, name), err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// readNames returns the names in the directory, without "." and "..".
func (d *Dir) readNames() ([]string, error) {
	if !d.readable {
		fd, err := openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return readNamesFD(fd)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listed {
		if _, err := unix.Seek(d.fd, 0, 0); err != nil {
			return nil, err
		}
	}
	d.listed = true
	return readNamesFD(d.fd)
}

func readNamesFD(fd int) ([]string, error) {
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	names := make([]string, 0, 32)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// StatAt lstats name in the directory dirfd and, for a symlink, reads its
// target.
func StatAt(dirfd int, name string) (fsmirror.Entry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsmirror.Entry{}, err
	}
	e := EntryFromStat(name, &st)
	if e.Type == fsmirror.TypeSymlink {
		t, err := readlinkat(dirfd, name, int(st.Size))
		if err != nil {
			return e, err
		}
		e.Target = t
	}
	return e, nil
}

func readlinkat(dirfd int, name string, size int) (string, error) {
	if size <= 0 || size > unix.PathMax {
		size = unix.PathMax
	}
	for {
		buf := make([]byte, size+1)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n <= size {
			return string(buf[:n]), nil
		}
		size *= 2 // the link was replaced by a longer one meanwhile
	}
}

// Lstat describes rel without following a final symlink.
func (r *Root) Lstat(rel string) (fsmirror.Entry, error) {
	if rel == "" {
		var st unix.Stat_t
		if err := unix.Fstat(r.root.fd, &st); err != nil {
			return fsmirror.Entry{}, PathErr("stat", rel, err)
		}
		return EntryFromStat("", &st), nil
	}
	d, name, err := r.Parent(rel)
	if err != nil {
		return fsmirror.Entry{}, PathErr("stat", rel, err)
	}
	defer d.Release()
	e, err := StatAt(d.fd, name)
	return e, PathErr("stat", rel, err)
}

// OpenFile opens the regular file rel as Open does and returns it with its
// metadata as of the open; anything but a regular file is ErrNotRegular.
func (r *Root) OpenFile(rel string) (*File, fsmirror.Entry, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, fsmirror.Entry{}, err
	}
	e, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fsmirror.Entry{}, PathErr("stat", rel, err)
	}
	if e.Type != fsmirror.TypeFile {
		f.Close()
		return nil, e, PathErr("open", rel, ErrNotRegular)
	}
	return f, e, nil
}

// Open opens the regular file rel for reading, without following a symlink
// and without blocking on a fifo that replaced the file. Unlike OpenFile it
// does not stat it: callers that have a listing check the file after use.
func (r *Root) Open(rel string) (*File, error) {
	d, name, err := r.Parent(rel)
	if err != nil {
		return nil, PathErr("open", rel, err)
	}
	defer d.Release()
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP {
			err = ErrNotRegular
		}
		return nil, PathErr("open", rel, err)
	}
	return &File{fd: fd, name: name}, nil
}

// Hash returns the SHA-256 of the content of the regular file rel.
func (r *Root) Hash(rel string) ([]byte, error) {
	f, _, err := r.OpenFile(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return HashReader(f, rel)
}

// HashReader returns the SHA-256 of what r yields.
func HashReader(r io.Reader, rel string) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, PathErr("read", rel, err)
	}
	return h.Sum(nil), nil
}
