package watch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// fanState is the fanotify backend's part of a Watcher, guarded by its mu.
type fanState struct {
	w        *Watcher
	rootFd   int    // the root, held open: the mount descriptor of its file system
	rootAbs  string // the root's absolute path, as the kernel names it now
	rootGone bool
	// rootChecked says that rootAbs was read again in this read: once is
	// enough, since events are read in the order the kernel made them.
	rootChecked bool
	// The root's parent directory (its handle, when on the same file
	// system) and the root's name in it: an event there may be the root
	// itself being deleted or moved.
	parentKey []byte
	rootName  string
	rootFsid  []byte
	mounts    []fanMount // file systems mounted below the root
	cache     dirCache
	// drained says the previous read took every queued event.
	drained bool
	// Without FAN_RENAME: the MOVED_FROMs that ended the last read.
	waiting   []waitingMove
	waitSince time.Time
}

// fanMount is a file system mounted below the root, marked too.
type fanMount struct {
	rel  string // its mount point, relative to the root
	fsid []byte
	fd   int // open while a read is processed, else -1
}

const (
	fanInitFlags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME
	// The events of the marks. With FAN_REPORT_DFID_NAME, an event about
	// a file names its directory and its name; one about a directory
	// itself (its attributes, its mtime) names the directory and ".".
	fanMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MODIFY | unix.FAN_ATTRIB | unix.FAN_CLOSE_WRITE |
		unix.FAN_ONDIR
	fanRenameMask = unix.FAN_RENAME
	fanMoveMask   = unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO

	// fanMinBuffer holds the largest event: metadata and two records,
	// each with a file handle of MAX_HANDLE_SZ and a 255-byte name.
	fanMinBuffer = 4096
	// fanMaxEvent is more than the largest event: a read that leaves that
	// much of the buffer unused took every queued event.
	fanMaxEvent = 1024
)

// noRenameForTest makes the fanotify backend ask for MOVED_FROM and
// MOVED_TO instead of FAN_RENAME, as on kernels before 5.17.
var noRenameForTest bool

// newFanotify makes the fanotify instance of w and marks the file systems
// of the tree. The error wraps ErrNoFanotify when fanotify cannot be used
// at all for this tree.
func newFanotify(w *Watcher, rootFd int) error {
	fd, err := unix.FanotifyInit(fanInitFlags, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		switch err {
		case unix.EPERM:
			return noFanotify("it needs CAP_SYS_ADMIN (run as root)")
		case unix.EINVAL:
			return noFanotify("the kernel does not report directory entries by name (FAN_REPORT_DFID_NAME needs Linux 5.9 or later)")
		case unix.ENOSYS:
			return noFanotify("the kernel has no fanotify")
		case unix.EMFILE:
			if n, ok := readInt("/proc/sys/fs/fanotify/max_user_groups"); ok {
				return fmt.Errorf("create fanotify instance: %w (fs.fanotify.max_user_groups is %d)", err, n)
			}
		}
		return fmt.Errorf("create fanotify instance: %w", err)
	}
	f := &fanState{w: w, rootFd: -1, drained: true}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
			if f.rootFd >= 0 {
				unix.Close(f.rootFd)
			}
		}
	}()
	f.cache.init()
	// Held for the life of the watcher: the mount descriptor of
	// open_by_handle_at (which must not be O_PATH) and the root's path.
	if f.rootFd, err = unix.FcntlInt(uintptr(rootFd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open root directory: %w", err)
	}
	if f.rootAbs, err = fdPath(f.rootFd); err != nil {
		return fmt.Errorf("path of root directory: %w", err)
	}
	if f.rootFsid, err = fsidOf(f.rootFd); err != nil {
		return err
	}
	rootKey, err := handleKey(f.rootFd, "", unix.AT_EMPTY_PATH, f.rootFsid)
	if err != nil {
		return noFanotify("the file system of %s does not report file handles: %v", f.rootAbs, err)
	}
	if f.rootAbs != "/" {
		f.rootName = filepath.Base(f.rootAbs)
		if pfsid, err := fsidAt(f.rootFd, ".."); err == nil && bytes.Equal(pfsid, f.rootFsid) {
			f.parentKey, _ = handleKey(f.rootFd, "..", 0, f.rootFsid)
		}
	}

	mask := uint64(fanMask | fanRenameMask)
	if noRenameForTest {
		mask = fanMask | fanMoveMask
	}
	err = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, f.rootFd, "")
	if err == unix.EINVAL && mask&fanRenameMask != 0 {
		// Before Linux 5.17: no FAN_RENAME; renames come in two halves.
		mask = fanMask | fanMoveMask
		err = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, f.rootFd, "")
	}
	if err != nil {
		return markError(err, f.rootAbs)
	}
	// A handle that can be made may not open (a file system that only
	// encodes them, or a process without CAP_DAC_READ_SEARCH): try the
	// root's.
	rk := parseKey(rootKey)
	rfd, err := openByHandle(f.rootFd, rk.htype, rk.handle)
	if err == unix.EPERM {
		return noFanotify("opening file handles needs CAP_DAC_READ_SEARCH")
	}
	if err != nil {
		return noFanotify("the file system of %s cannot open file handles: %v", f.rootAbs, err)
	}
	unix.Close(rfd)
	if err := f.markMounts(fd, mask); err != nil {
		return err
	}

	file := os.NewFile(uintptr(fd), "fanotify")
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		file.Close()
		ok = true // closed with the file
		unix.Close(f.rootFd)
		return fmt.Errorf("fanotify descriptor cannot be polled: %w", err)
	}
	ok = true
	w.file, w.fan = file, f
	return nil
}

// markError explains why a file system could not be marked.
func markError(err error, path string) error {
	switch err {
	case unix.EPERM:
		return noFanotify("marking the file system of %s needs CAP_SYS_ADMIN", path)
	case unix.EXDEV, unix.EOPNOTSUPP, unix.ENODEV, unix.EINVAL:
		return noFanotify("the file system of %s cannot be watched with fanotify (%v)", path, err)
	case unix.ENOSPC:
		if n, ok := readInt("/proc/sys/fs/fanotify/max_user_marks"); ok {
			return fmt.Errorf("mark file system of %s: %w (fs.fanotify.max_user_marks is %d)", path, err, n)
		}
	}
	return fmt.Errorf("mark file system of %s: %w", path, err)
}

// markMounts marks the file systems mounted below the root, but for those in
// excluded directories. A bind mount of a file system the tree holds
// already would show the same directories at two places, which one path per
// directory cannot report: it is refused.
func (f *fanState) markMounts(fd int, mask uint64) error {
	points, err := mountPoints()
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	seen := map[string]string{string(f.rootFsid): ""}
	for _, p := range points {
		rel, ok := relTo(f.rootAbs, p)
		if !ok || rel == "" || f.w.excludedBelow(rel) {
			continue
		}
		mfd, err := unix.Openat(f.rootFd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone, or covered by another mount
		}
		fsid, err := fsidOf(mfd)
		if err == nil {
			if at, dup := seen[string(fsid)]; dup {
				unix.Close(mfd)
				if at == rel {
					continue // mounted over itself, listed twice
				}
				where := "the root"
				if at != "" {
					where = fsmirror.QuotePath(at)
				}
				return noFanotify("%s is a mount of the same file system as %s (a bind mount)", fsmirror.QuotePath(rel), where)
			}
			seen[string(fsid)] = rel
			err = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, mfd, "")
			if err != nil {
				err = markError(err, filepath.Join(f.rootAbs, rel))
			}
		}
		unix.Close(mfd)
		if err != nil {
			return err
		}
		f.mounts = append(f.mounts, fanMount{rel: rel, fsid: fsid, fd: -1})
	}
	return nil
}

// mountPoints returns the mount points of the mount table, in its order.
func mountPoints() ([]string, error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var points []string
	s := bufio.NewScanner(file)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(s.Text())
		if len(fields) >= 5 {
			points = append(points, unescapeMount(fields[4]))
		}
	}
	return points, s.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of a path in
// the mount table.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fsidOf returns the file system id of the file open as fd, as fanotify
// reports it.
func fsidOf(fd int) ([]byte, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return nil, fmt.Errorf("statfs: %w", err)
	}
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b[0:], uint32(st.Fsid.Val[0]))
	binary.NativeEndian.PutUint32(b[4:], uint32(st.Fsid.Val[1]))
	return b, nil
}

func fsidAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return fsidOf(fd)
}

// handleKey returns the key of the directory name in dirfd, in the form
// the records of events carry: fsid, handle size, type and bytes.
func handleKey(dirfd int, name string, flags int, fsid []byte) ([]byte, error) {
	h, _, err := unix.NameToHandleAt(dirfd, name, flags)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 0, 16+h.Size())
	key = append(key, fsid...)
	key = binary.NativeEndian.AppendUint32(key, uint32(h.Size()))
	key = binary.NativeEndian.AppendUint32(key, uint32(h.Type()))
	return append(key, h.Bytes()...), nil
}

// parseKey splits a key made by handleKey into its parts.
func parseKey(key []byte) fanRecord {
	n := binary.NativeEndian.Uint32(key[8:])
	return fanRecord{key: key, fsid: key[:8], htype: int32(binary.NativeEndian.Uint32(key[12:])), handle: key[16 : 16+n]}
}

// mountFd returns a descriptor on the file system fsid for
// open_by_handle_at, or -1. File systems mounted below the root are opened
// for the length of a read only, so that they can still be unmounted.
func (f *fanState) mountFd(fsid []byte) int {
	if bytes.Equal(fsid, f.rootFsid) {
		return f.rootFd
	}
	for i := range f.mounts {
		m := &f.mounts[i]
		if !bytes.Equal(fsid, m.fsid) {
			continue
		}
		if m.fd < 0 {
			fd, err := unix.Openat(f.rootFd, m.rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return -1
			}
			if got, err := fsidOf(fd); err != nil || !bytes.Equal(got, fsid) {
				unix.Close(fd) // unmounted: the directory it covered
				return -1
			}
			m.fd = fd
		}
		return m.fd
	}
	return -1
}

// closeMounts closes the descriptors mountFd opened.
func (f *fanState) closeMounts() {
	for i := range f.mounts {
		if f.mounts[i].fd >= 0 {
			unix.Close(f.mounts[i].fd)
			f.mounts[i].fd = -1
		}
	}
}

// refreshRoot reads the root's path again: a rename of a directory above
// it moves it (and paths outside the tree, cached as outside, may have
// come below it).
func (f *fanState) refreshRoot() {
	if f.rootGone {
		return
	}
	abs, err := fdPath(f.rootFd)
	if err == nil && abs == f.rootAbs {
		return
	}
	if err != nil || strings.HasSuffix(abs, " (deleted)") && unlinked(f.rootFd) {
		f.rootGone = true
		return
	}
	f.rootAbs = abs
	f.cache.clear()
}

func (f *fanState) close() {
	f.closeMounts()
	if f.rootFd >= 0 {
		unix.Close(f.rootFd)
		f.rootFd = -1
	}
}

// isRoot reports whether r names the root in its parent.
func (f *fanState) isRoot(r *fanRecord) bool {
	return f.parentKey != nil && string(r.name) == f.rootName && bytes.Equal(r.key, f.parentKey)
}

// fanMeta is the fixed part of a fanotify event.
type fanMeta = unix.FanotifyEventMetadata

const fanMetaSize = int(unsafe.Sizeof(fanMeta{}))

// errFanMalformed stops a watcher that reads what it cannot parse.
var errFanMalformed = errors.New("malformed fanotify event")
