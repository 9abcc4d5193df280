package benchutil

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DirHas reports whether dir holds exactly the regular files of want with
// their sizes: what a burst of new files looks like once it has arrived.
// It counts the entries first (cheap: no names are kept), then lists the
// names and stats them only when the count is right, so that it can be
// polled often. buf is a scratch buffer for getdents.
func DirHas(dir string, want map[string]int64, buf []byte) bool {
	if n, err := countEntries(dir, buf); err != nil || n != len(want) {
		return false
	}
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil || len(names) != len(want) {
		return false
	}
	for _, n := range names {
		if _, ok := want[n]; !ok {
			return false
		}
	}
	var st unix.Stat_t
	for _, n := range names {
		if unix.Lstat(filepath.Join(dir, n), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != want[n] {
			return false
		}
	}
	return true
}

// countEntries counts the entries of dir but "." and "..".
func countEntries(dir string, buf []byte) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	count := -2 // "." and ".."
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return 0, err
		}
		if n <= 0 {
			return count, nil
		}
		// struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
		for off := 0; off+19 <= n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				return 0, fmt.Errorf("getdents %s: zero record length", dir)
			}
			count++
			off += reclen
		}
	}
}
