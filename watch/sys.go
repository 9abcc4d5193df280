package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// openDirAt opens directory name in dirfd for reading, never following a
// symlink.
func openDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openRoot opens the root directory, following a symlink. The root is
// opened anew each time instead of being held open: a held descriptor
// would delay the IN_DELETE_SELF of a deleted root until it is closed.
func openRoot(root string) (int, error) {
	for {
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// isDirAt reports whether name in dirfd is a directory (not a symlink to one).
func isDirAt(dirfd int, name string) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// readDirents calls fn for each entry of the directory open as fd, except
// "." and "..", with its raw name and its d_type. The name is only valid
// during the call.
func readDirents(fd int, buf []byte, fn func(name []byte, typ uint8)) error {
	const (
		reclenOff = 16 // linux_dirent64: ino u64, off s64, reclen u16, type u8, name
		typeOff   = 18
		nameOff   = 19
	)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) >= nameOff {
			reclen := int(binary.NativeEndian.Uint16(b[reclenOff:]))
			if reclen < nameOff || reclen > len(b) {
				return errors.New("malformed directory entry")
			}
			typ, name := b[typeOff], b[nameOff:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			fn(name, typ)
		}
	}
}

// readInt reads a number from a file such as a sysctl under /proc/sys.
func readInt(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}
