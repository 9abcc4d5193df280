package testutil

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the directory-fd primitives everything else is built on.
// Every path below a root is reached one component at a time with openat and
// O_NOFOLLOW, so a symlink is never followed and no path handed to the kernel
// is longer than one name: trees deeper than PATH_MAX work like any other.

// dirFlags opens a directory for reading its entries, refusing a symlink in
// its place.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openat is unix.Openat retried on EINTR, which slow filesystems (FUSE, NFS)
// can return when the runtime's preemption signal arrives.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// read is unix.Read retried on EINTR.
func read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// openRootDir opens the directory a caller names as a tree's root. The root
// itself may be reached through a symlink; nothing below it is.
func openRootDir(path string) (int, error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open root %s: %w", path, err)
	}
	return fd, nil
}

// splitRel splits a relative '/'-separated path into its names, rejecting
// the forms that would leave the tree or are ambiguous.
func splitRel(rel string) ([]string, error) {
	if rel == "" || rel[0] == '/' {
		return nil, fmt.Errorf("path %q: want a non-empty relative path", rel)
	}
	names := strings.Split(rel, "/")
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.IndexByte(n, 0) >= 0 {
			return nil, fmt.Errorf("path %q: empty, \".\", \"..\" or NUL component", rel)
		}
	}
	return names, nil
}

// openParent walks every directory component of rel below rootfd without
// following symlinks and returns an fd of rel's parent directory (which the
// caller closes) and rel's last name. With create set, missing directories
// are made with mode 0755.
// The path "." is the root itself, its parent fd rootfd's duplicate.
func openParent(rootfd int, rel string, create bool) (fd int, name string, err error) {
	names := []string{"."}
	if rel != "." {
		if names, err = splitRel(rel); err != nil {
			return -1, "", err
		}
	}
	fd, err = unix.FcntlInt(uintptr(rootfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("dup: %w", err)
	}
	for i, n := range names[:len(names)-1] {
		next, err := openat(fd, n, dirFlags, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, n, 0o755); err == nil || err == unix.EEXIST {
				next, err = openat(fd, n, dirFlags, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", fmt.Errorf("open dir %s: %w", quote(strings.Join(names[:i+1], "/")), err)
		}
		fd = next
	}
	return fd, names[len(names)-1], nil
}

// readNames returns the names in the directory open as fd, without "." and
// "..", in the order the filesystem returns them.
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// readlinkat returns the target of the symlink name in dirfd, however long.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// lstatat is fstatat with AT_SYMLINK_NOFOLLOW.
func lstatat(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// setMtime sets the mtime of name in dirfd, a symlink's own, to ns
// nanoseconds since the epoch, leaving the atime alone.
func setMtime(dirfd int, name string, ns int64) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(ns)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// closeErr closes fd, keeping the first error.
func closeErr(fd int, err *error) {
	if cerr := unix.Close(fd); cerr != nil && *err == nil {
		*err = cerr
	}
}
