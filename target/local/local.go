// Package local is the Target for a destination on a local filesystem.
//
// Every path is resolved below the destination root one component at a time
// without following symlinks (see internal/fsys), so nothing is ever written
// outside the root, whatever the destination holds. A file is written under a
// temporary name in its own directory, given its metadata, and renamed over
// its final name: a reader sees the old file or the new one, never half of
// it, and an inode that is also linked elsewhere (a hard-link snapshot) is
// never modified in place.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/fsys"
)

// Target is a local destination tree.
type Target struct {
	root  *fsys.Root
	umask uint32
	// Owner makes the target set owner and group, which needs root.
	Owner bool
}

var (
	_ fsmirror.Target = (*Target)(nil)
	_ fsmirror.Hasher = (*Target)(nil)
	_ fsmirror.Spacer = (*Target)(nil)
)

// New opens the existing directory path as a destination.
func New(path string) (*Target, error) {
	r, err := fsys.OpenRoot(path, false)
	if err != nil {
		return nil, fmt.Errorf("open destination: %w", err)
	}
	return &Target{root: r, umask: processUmask(), Owner: unix.Geteuid() == 0}, nil
}

// NewBelow opens directory rel below the directory root as a destination.
// root is the caller's choice and may be reached through symlinks; rel is
// resolved one component at a time without following any, so that a
// symlink planted below root cannot lead the target outside it. With
// create, missing directories of rel are made, owner-only.
func NewBelow(root, rel string, create bool) (*Target, error) {
	r, err := fsys.OpenRoot(root, true)
	if err != nil {
		return nil, fmt.Errorf("open destination: %w", err)
	}
	defer r.Close()
	sub, err := r.Sub(rel, create, false)
	if err != nil {
		return nil, fsys.PathErr("open destination", rel, err)
	}
	return &Target{root: sub, umask: processUmask(), Owner: unix.Geteuid() == 0}, nil
}

// processUmask reads the umask once per process. Reading it means setting
// it for a moment, so two targets opened at once (watch with several
// sources) must not both do it: one could read the 0 the other just set.
var processUmask = sync.OnceValue(func() uint32 {
	umask := unix.Umask(0)
	unix.Umask(umask)
	return uint32(umask)
})

// Close releases the open directories.
func (t *Target) Close() error { return t.root.Close() }

// ReadDir lists directory dir of the destination.
func (t *Target) ReadDir(_ context.Context, dir string) ([]fsmirror.Entry, error) {
	entries, err := t.root.ReadDir(dir)
	if errors.Is(err, unix.EACCES) && unix.Geteuid() != 0 {
		// Our own directory, mirrored from an unreadable one.
		restore := t.makeAccessible(dir, 0o500)
		entries, err = t.root.ReadDir(dir)
		restore()
	}
	return entries, err
}

// Lstat describes path without following a final symlink.
func (t *Target) Lstat(_ context.Context, path string) (fsmirror.Entry, error) {
	return t.root.Lstat(path)
}

// Hash returns the SHA-256 of the file at path.
func (t *Target) Hash(_ context.Context, path string) ([]byte, error) {
	return t.root.Hash(path)
}

// FreeSpace returns the room left on the destination's filesystem: the
// bytes and inodes this process may still use.
func (t *Target) FreeSpace(context.Context) (bytes, files uint64, err error) {
	d, err := t.root.OpenDir("")
	if err != nil {
		return 0, 0, err
	}
	defer d.Release()
	var st unix.Statfs_t
	if err := unix.Fstatfs(d.FD(), &st); err != nil {
		return 0, 0, fmt.Errorf("statfs: %w", err)
	}
	blocks := st.Bavail
	if unix.Geteuid() == 0 {
		blocks = st.Bfree // root may use the reserved blocks too
	}
	files = st.Ffree
	if st.Files == 0 {
		files = math.MaxUint64 // no inode count (btrfs, some network filesystems)
	}
	return blocks * uint64(st.Bsize), files, nil
}

// Open opens the regular file at path for reading, without following a
// symlink. The remote agent reads a file's current version through it to
// patch a delta against.
func (t *Target) Open(_ context.Context, path string) (io.ReadSeekCloser, error) {
	f, _, err := t.root.OpenFile(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Apply makes op true in the destination.
func (t *Target) Apply(ctx context.Context, op *fsmirror.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if op.Path == "" && op.Kind != fsmirror.OpSetMeta {
		return &fsmirror.PathError{Op: op.Kind.String(), Path: "", Err: errors.New("refusing to replace the destination root")}
	}
	if !fsmirror.IsValidPath(op.Path) || !fsmirror.IsValidPath(op.From) {
		return &fsmirror.PathError{Op: op.Kind.String(), Path: op.Path, Err: errors.New("invalid path")}
	}
	err := t.apply(op)
	if errors.Is(err, unix.EACCES) && unix.Geteuid() != 0 {
		// A read-only directory of ours (mirrored from a read-only source
		// directory) must still take changes: open it up for the op and
		// put its mode back.
		restore := t.makeAccessible(parentOf(op.Path), 0o300)
		if op.From != "" {
			defer t.makeAccessible(parentOf(op.From), 0o300)()
		}
		err = t.apply(op)
		restore()
	}
	return fsys.PathErr(op.Kind.String(), op.Path, err)
}

func parentOf(p string) string {
	d, _ := fsmirror.Split(p)
	return d
}

// makeAccessible gives the owner the permission bits want (0o300 to change
// entries, 0o500 to list them) on directory dir and returns the function
// that puts its mode back. It does nothing for a directory that is not ours
// or already has them.
func (t *Target) makeAccessible(dir string, want uint32) (restore func()) {
	d, err := t.root.OpenDir(dir)
	if err != nil {
		return func() {}
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.FD(), &st); err != nil || int(st.Uid) != unix.Geteuid() || st.Mode&want == want {
		d.Release()
		return func() {}
	}
	// The descriptor may be a path-only one, which fchmod refuses; its
	// /proc entry names the directory itself.
	self := "/proc/self/fd/" + strconv.Itoa(d.FD())
	if err := unix.Fchmodat(unix.AT_FDCWD, self, st.Mode&0o7777|want, 0); err != nil {
		d.Release()
		return func() {}
	}
	return func() {
		unix.Fchmodat(unix.AT_FDCWD, self, st.Mode&0o7777, 0)
		d.Release()
	}
}

// apply applies one op without retrying.
func (t *Target) apply(op *fsmirror.Op) error {
	var err error
	switch op.Kind {
	case fsmirror.OpMkdir:
		err = t.mkdir(op)
	case fsmirror.OpWrite:
		err = t.write(op)
	case fsmirror.OpSymlink, fsmirror.OpMknod:
		err = t.replaceWith(op, func(dirfd int, tmp string) error {
			if op.Kind == fsmirror.OpSymlink {
				return unix.Symlinkat(op.Entry.Target, dirfd, tmp)
			}
			return unix.Mknodat(dirfd, tmp, nodeMode(op.Entry), int(op.Entry.Rdev))
		})
	case fsmirror.OpLink:
		err = t.link(op)
	case fsmirror.OpRename:
		err = t.rename(op)
	case fsmirror.OpDelete:
		err = t.delete(op.Path)
	case fsmirror.OpSetMeta:
		err = t.setMeta(op.Path, &op.Entry)
	default:
		err = fmt.Errorf("unknown op %d", op.Kind)
	}
	return err
}

func nodeMode(e fsmirror.Entry) uint32 {
	m := e.Mode & 0o7777
	switch e.Type {
	case fsmirror.TypeFifo:
		return m | unix.S_IFIFO
	case fsmirror.TypeCharDev:
		return m | unix.S_IFCHR
	case fsmirror.TypeBlockDev:
		return m | unix.S_IFBLK
	}
	return m
}

func (t *Target) mkdir(op *fsmirror.Op) error {
	d, name, err := t.root.Parent(op.Path)
	if err != nil {
		return err
	}
	defer d.Release()
	// Owner-only until its metadata is set after its contents: a directory
	// that will be read-only must stay writable while it is filled.
	err = unix.Mkdirat(d.FD(), name, 0o700)
	if err == unix.EEXIST {
		e, serr := fsys.StatAt(d.FD(), name)
		if serr == nil && e.Type == fsmirror.TypeDir {
			return nil
		}
		if rerr := removeAt(d.FD(), name); rerr != nil {
			return rerr
		}
		t.root.Invalidate(op.Path)
		err = unix.Mkdirat(d.FD(), name, 0o700)
	}
	return err
}

// tempName returns a fresh name for a temporary file.
func tempName() string {
	var b [8]byte
	rand.Read(b[:])
	return fsmirror.TempPrefix + hex.EncodeToString(b[:]) + ".tmp"
}

func (t *Target) write(op *fsmirror.Op) error {
	if op.Data == nil {
		return errors.New("write without data")
	}
	d, name, err := t.root.Parent(op.Path)
	if err != nil {
		return err
	}
	defer d.Release()
	// An unnamed file (O_TMPFILE) is given its final name only when it is
	// complete, with one link: nothing to clean up after a crash, and the
	// directory is touched once. Where the filesystem cannot do that, or the
	// name is taken, a named temporary is renamed over it.
	perm := op.Entry.Mode & 0o777 & ^t.umask
	fd, err := unix.Openat(d.FD(), ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm|0o200)
	named := ""
	if err != nil {
		named = tempName()
		fd, err = unix.Openat(d.FD(), named, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, perm|0o200)
		if err != nil {
			return err
		}
	}
	err = copyData(fd, op.Data, op.Entry.Size)
	if err == nil {
		err = t.setMetaFD(fd, &op.Entry, perm|0o200)
	}
	if err == nil && named == "" {
		if !op.Replace {
			err = linkFD(fd, d.FD(), name)
		}
		if op.Replace || err == unix.EEXIST {
			named = tempName()
			err = linkFD(fd, d.FD(), named)
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		if named != "" {
			unix.Unlinkat(d.FD(), named, 0)
		}
		return err
	}
	if named == "" {
		return nil
	}
	return t.renameInto(d, named, name, op.Path)
}

// linkFD gives the unnamed file fd the name name in dirfd. Linking by
// descriptor needs CAP_DAC_READ_SEARCH; without it the file is linked through
// its /proc/self/fd entry.
func linkFD(fd, dirfd int, name string) error {
	err := unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT || err == unix.EPERM {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}

// copyData copies src into the file fd. From another file it copies in the
// kernel (copy_file_range), asking for the expected size at once, so a small
// file costs one call; what the source really held is checked by the caller.
func copyData(fd int, src io.Reader, size int64) error {
	if f, ok := src.(interface{ Fd() int }); ok {
		var done int64
		for {
			n, err := unix.CopyFileRange(f.Fd(), nil, fd, nil, int(max(size-done, 1<<20)), 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if done == 0 && (err == unix.EXDEV || err == unix.EINVAL || err == unix.EOPNOTSUPP || err == unix.ENOSYS) {
					break // not between these filesystems: copy through user space
				}
				return err
			}
			done += int64(n)
			if n == 0 || done == size {
				return nil
			}
		}
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	_, err := io.CopyBuffer(fdWriter(fd), src, *buf)
	return err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// fdWriter writes to a descriptor without registering it with the runtime.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(int(w), p[written:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// setMetaFD sets owner, mode and mtime of a file created with mode created
// (see setMetaAt). A mode the file already has is not set again.
func (t *Target) setMetaFD(fd int, e *fsmirror.Entry, created uint32) error {
	if t.Owner {
		if err := unix.Fchown(fd, int(e.Uid), int(e.Gid)); err != nil {
			return err
		}
	}
	if created != e.Mode&0o7777 {
		if err := unix.Fchmod(fd, e.Mode&0o7777); err != nil {
			return err
		}
	}
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(e.Mtime)}
	// futimens(fd, ts): utimensat with a NULL path.
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// replaceWith creates the new node under a temporary name with create, gives
// it op's metadata, and renames it over op.Path.
func (t *Target) replaceWith(op *fsmirror.Op, create func(dirfd int, tmp string) error) error {
	d, name, err := t.root.Parent(op.Path)
	if err != nil {
		return err
	}
	defer d.Release()
	tmp := tempName()
	if err := create(d.FD(), tmp); err != nil {
		unix.Unlinkat(d.FD(), tmp, 0)
		return err
	}
	if err := t.setMetaAt(d.FD(), tmp, &op.Entry); err != nil {
		unix.Unlinkat(d.FD(), tmp, 0)
		return err
	}
	return t.renameInto(d, tmp, name, op.Path)
}

// renameInto renames tmp over name in d, replacing a directory in the way.
func (t *Target) renameInto(d *fsys.Dir, tmp, name, path string) error {
	err := unix.Renameat(d.FD(), tmp, d.FD(), name)
	if err == unix.EISDIR || err == unix.ENOTEMPTY || err == unix.EEXIST {
		if err = removeAt(d.FD(), name); err == nil {
			t.root.Invalidate(path)
			err = unix.Renameat(d.FD(), tmp, d.FD(), name)
		}
	}
	if err != nil {
		unix.Unlinkat(d.FD(), tmp, 0)
	}
	return err
}

// parents opens the directories holding op.From and op.Path; release
// releases both.
func (t *Target) parents(op *fsmirror.Op) (from *fsys.Dir, fromName string, to *fsys.Dir, name string, release func(), err error) {
	from, fromName, err = t.root.Parent(op.From)
	if err != nil {
		return nil, "", nil, "", nil, err
	}
	to, name, err = t.root.Parent(op.Path)
	if err != nil {
		from.Release()
		return nil, "", nil, "", nil, err
	}
	return from, fromName, to, name, func() { from.Release(); to.Release() }, nil
}

func (t *Target) link(op *fsmirror.Op) error {
	fd, fname, d, name, release, err := t.parents(op)
	if err != nil {
		return err
	}
	defer release()
	tmp := tempName()
	if err := unix.Linkat(fd.FD(), fname, d.FD(), tmp, 0); err != nil {
		return err
	}
	err = t.renameInto(d, tmp, name, op.Path)
	// rename(2) does nothing when both names are already links to one
	// inode, which leaves the temporary behind.
	unix.Unlinkat(d.FD(), tmp, 0)
	return err
}

func (t *Target) rename(op *fsmirror.Op) error {
	fd, fname, d, name, release, err := t.parents(op)
	if err != nil {
		return err
	}
	defer release()
	err = unix.Renameat(fd.FD(), fname, d.FD(), name)
	if err == unix.EISDIR || err == unix.ENOTEMPTY || err == unix.EEXIST || err == unix.ENOTDIR {
		if err = removeAt(d.FD(), name); err == nil {
			err = unix.Renameat(fd.FD(), fname, d.FD(), name)
		}
	}
	t.root.Invalidate(op.From)
	t.root.Invalidate(op.Path)
	return err
}

func (t *Target) delete(path string) error {
	d, name, err := t.root.Parent(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer d.Release()
	err = removeAt(d.FD(), name)
	t.root.Invalidate(path)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

func (t *Target) setMeta(path string, e *fsmirror.Entry) error {
	if path == "" {
		return t.setMetaAt(t.rootFD(), ".", e)
	}
	d, name, err := t.root.Parent(path)
	if err != nil {
		return err
	}
	defer d.Release()
	return t.setMetaAt(d.FD(), name, e)
}

func (t *Target) rootFD() int {
	d, _ := t.root.OpenDir("")
	return d.FD()
}

// setMetaAt sets owner, mode and mtime, in that order: chown clears the
// setuid and setgid bits, and both chown and chmod would be recorded in ctime
// only, but a write to a file after utimes would move its mtime.
func (t *Target) setMetaAt(dirfd int, name string, e *fsmirror.Entry) error {
	if t.Owner {
		if err := unix.Fchownat(dirfd, name, int(e.Uid), int(e.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if e.Type != fsmirror.TypeSymlink {
		if err := unix.Fchmodat(dirfd, name, e.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.Mtime), unix.NsecToTimespec(e.Mtime)}
	// Access time is not mirrored: reading the source moves it anyway. Keep
	// the destination's own.
	ts[0] = unix.Timespec{Sec: 0, Nsec: unix.UTIME_OMIT}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// removeAt removes name from dirfd, recursively when it is a directory. A
// directory without write or search permission for the owner is opened up
// first, since its content must go too.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.EACCES {
		unix.Fchmodat(dirfd, name, 0o700, 0)
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	// All names first: removing entries while reading a directory may skip some.
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		err := removeAt(fd, n)
		if err == unix.EACCES {
			unix.Fchmod(fd, 0o700)
			err = removeAt(fd, n)
		}
		if err != nil && err != unix.ENOENT {
			return err
		}
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
