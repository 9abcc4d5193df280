package testutil

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Shape of the tree SmallFilesTree makes; tests may lower them.
var (
	// smallFanout is how many subdirectories a directory gets before the
	// next level starts: 2,500 directories make three levels.
	smallFanout = 16
	// smallMedian and smallSigma make file sizes log-normal with a median
	// of 5 KiB and a mean of about 8 KiB, clamped to smallMax.
	smallMedian = 5 << 10
	smallSigma  = 1.0
	smallMax    = 256 << 10
)

// SmallFilesTree creates below root, which it makes if needed, a tree of
// files regular files spread evenly over dirs directories (16 to a parent,
// so 2,500 make three levels), with sizes whose median is about 5 KiB (2% are empty)
// and random content, plus a symlink in every 50th directory, dangling in
// every 500th, and one absolute symlink in root. Modes vary (0644, 0600,
// 0755, 0444) and every node gets an mtime with a nanosecond part, so a
// mirror that truncates times shows.
//
// The tree is a function of files, dirs and seed only: two calls with the
// same arguments make trees that Diff finds equal. It returns the total
// size of the files' contents.
func SmallFilesTree(root string, files, dirs int, seed int64) (totalBytes int64, err error) {
	if files < 0 || dirs < 0 {
		return 0, fmt.Errorf("small files tree: negative count")
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x736d616c6c747265))
	// A base time in 2023 and random offsets within a year.
	const base = int64(1_672_531_200) * 1e9
	const year = int64(365 * 24 * 3600 * 1e9)
	mtime := func() int64 { return base + rng.Int64N(year) }

	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, err
	}
	// Directory i > 0 lives in directory (i-1)/smallFanout; 0 is root.
	dirPaths := make([]string, dirs+1)
	dirPaths[0] = root
	for i := 1; i <= dirs; i++ {
		dirPaths[i] = filepath.Join(dirPaths[(i-1)/smallFanout], fmt.Sprintf("d%04d", i))
		if err := os.Mkdir(dirPaths[i], 0o755); err != nil {
			return 0, err
		}
	}

	buf := make([]byte, smallMax)
	firstFile := make([]string, dirs+1) // a file name in each directory, for symlinks
	for j := range files {
		d := 0
		if dirs > 0 {
			d = 1 + j%dirs
		}
		size := 0
		if rng.IntN(50) != 0 {
			size = int(math.Min(float64(smallMedian)*math.Exp(smallSigma*rng.NormFloat64()), float64(smallMax)))
		}
		fill(buf[:size], rng.Uint64())
		mode := uint32(0o644)
		switch rng.IntN(20) {
		case 0:
			mode = 0o600
		case 1:
			mode = 0o755
		case 2:
			mode = 0o444
		}
		name := fmt.Sprintf("f%06d.dat", j)
		if firstFile[d] == "" {
			firstFile[d] = name
		}
		if err := writeFile(filepath.Join(dirPaths[d], name), buf[:size], mode, mtime()); err != nil {
			return 0, err
		}
		totalBytes += int64(size)
	}

	symlink := func(target, path string) error {
		if err := os.Symlink(target, path); err != nil {
			return err
		}
		return setMtime(unix.AT_FDCWD, path, mtime())
	}
	for i := 1; i <= dirs; i += 50 {
		if firstFile[i] != "" {
			if err := symlink(firstFile[i], filepath.Join(dirPaths[i], "link")); err != nil {
				return 0, err
			}
		}
		if i%500 == 1 {
			if err := symlink("../no/such/file", filepath.Join(dirPaths[i], "dangling")); err != nil {
				return 0, err
			}
		}
	}
	if err := symlink("/etc/hostname", filepath.Join(root, "absolute-link")); err != nil {
		return 0, err
	}

	// Children have higher numbers than their parents, so going backwards
	// sets every directory's time after its contents are complete.
	for i := dirs; i >= 0; i-- {
		if err := setMtime(unix.AT_FDCWD, dirPaths[i], mtime()); err != nil {
			return 0, err
		}
	}
	return totalBytes, nil
}

// writeFile creates path holding data with exactly mode (no umask) and an
// mtime of ns nanoseconds.
func writeFile(path string, data []byte, mode uint32, ns int64) (err error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer closeErr(fd, &err)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("write %s: %w", path, err)
		}
		data = data[max(n, 0):]
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		// Kernels before 5.8 reject AT_EMPTY_PATH here; use the path.
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, 0); err != nil {
			return fmt.Errorf("set mtime of %s: %w", path, err)
		}
	}
	return nil
}

// fill fills p with pseudo-random bytes from a splitmix64 stream: far
// faster than a cryptographic generator, and incompressible enough.
func fill(p []byte, seed uint64) {
	x := seed
	next := func() uint64 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, next())
		p = p[8:]
	}
	if len(p) > 0 {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], next())
		copy(p, tail[:])
	}
}
