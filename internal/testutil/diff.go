package testutil

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// DiffOptions adjusts what Diff compares. Always compared are the type of
// every node, the size and bytes of regular files, permission bits (07777)
// of everything but symlinks, symlink targets, device numbers, and
// hard-link structure; mtimes, to the nanosecond, unless ignored here;
// owners only when asked. Access and change times are never compared.
type DiffOptions struct {
	// Owner compares uid and gid, which only root can mirror.
	Owner bool
	// IgnoreDirMtime skips directory mtimes, which a tool that is still
	// working, or that deliberately leaves them, does not keep.
	IgnoreDirMtime bool
	// IgnoreSymlinkMtime skips symlink mtimes, for tools that cannot set them.
	IgnoreSymlinkMtime bool
	// IgnoreRootMeta skips the mode, mtime and owner of the two roots.
	IgnoreRootMeta bool
	// Ignore, when set, is asked about every path below the roots
	// (relative, '/'-separated); a path it accepts is skipped in both
	// trees, and so is everything below it.
	Ignore func(rel string) bool
}

// Diff compares the trees at src and dst and returns one line per
// difference, each naming the path relative to the roots ("." for the roots
// themselves, Go-quoted when it is not plain printable text). No difference
// gives an empty list. The roots must be directories (reached through a
// symlink if so named); below them no symlink is followed, and depth is not
// limited by PATH_MAX. The error reports a tree that cannot be read,
// such as a vanished or unreadable path.
//
// Lines come in walk order (names in byte order, parents before children),
// followed by hard-link differences: paths that share an inode in one tree
// must share one in the other.
func Diff(src, dst string, opt DiffOptions) (diffs []string, err error) {
	sfd, err := openRootDir(src)
	if err != nil {
		return nil, err
	}
	defer closeErr(sfd, &err)
	dfd, err := openRootDir(dst)
	if err != nil {
		return nil, err
	}
	defer closeErr(dfd, &err)

	d := &differ{
		opt:  opt,
		sbuf: make([]byte, 128<<10),
		dbuf: make([]byte, 128<<10),
		src:  links{},
		dst:  links{},
	}
	var sroot, droot unix.Stat_t
	if err := unix.Fstat(sfd, &sroot); err != nil {
		return nil, fmt.Errorf("stat %s: %w", src, err)
	}
	if err := unix.Fstat(dfd, &droot); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dst, err)
	}
	if !opt.IgnoreRootMeta {
		d.compareMeta("", &sroot, &droot)
	}
	if err := d.walk("", sfd, dfd); err != nil {
		return nil, err
	}
	d.compareLinks()
	return d.diffs, nil
}

// AssertMirror fails the test, listing up to 50 differences, unless dst is
// an exact mirror of src as Diff judges it.
func AssertMirror(t testing.TB, src, dst string, opt DiffOptions) {
	t.Helper()
	diffs, err := Diff(src, dst, opt)
	if err != nil {
		t.Fatalf("compare %s and %s: %v", src, dst, err)
	}
	if len(diffs) == 0 {
		return
	}
	const max = 50
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not a mirror of %s: %d differences", dst, src, len(diffs))
	for i, d := range diffs {
		if i == max {
			fmt.Fprintf(&b, "\n\t... and %d more", len(diffs)-max)
			break
		}
		b.WriteString("\n\t")
		b.WriteString(d)
	}
	t.Error(b.String())
}

// ListTree returns the paths of everything below root, relative to it and
// sorted, without following symlinks.
func ListTree(root string) (paths []string, err error) {
	fd, err := openRootDir(root)
	if err != nil {
		return nil, err
	}
	defer closeErr(fd, &err)
	if err := list(fd, "", &paths); err != nil {
		return nil, err
	}
	slices.Sort(paths)
	return paths, nil
}

func list(fd int, rel string, paths *[]string) error {
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("read dir %s: %w", quote(rel), err)
	}
	for _, name := range names {
		crel := join(rel, name)
		*paths = append(*paths, crel)
		st, err := lstatat(fd, name)
		if err != nil {
			return fmt.Errorf("lstat %s: %w", quote(crel), err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		child, err := openat(fd, name, dirFlags, 0)
		if err != nil {
			return fmt.Errorf("open dir %s: %w", quote(crel), err)
		}
		err = list(child, crel, paths)
		unix.Close(child)
		if err != nil {
			return err
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// inode identifies a node within one tree.
type inode struct{ dev, ino uint64 }

// links maps the paths of multiply linked non-directories to their inodes.
type links map[string]inode

type differ struct {
	opt        DiffOptions
	diffs      []string
	sbuf, dbuf []byte
	src, dst   links
}

func (d *differ) addf(rel, format string, args ...any) {
	d.diffs = append(d.diffs, quote(rel)+": "+fmt.Sprintf(format, args...))
}

// walk compares the directories open as sfd and dfd, whose path is rel.
func (d *differ) walk(rel string, sfd, dfd int) error {
	snames, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("read src dir %s: %w", quote(rel), err)
	}
	dnames, err := readNames(dfd)
	if err != nil {
		return fmt.Errorf("read dst dir %s: %w", quote(rel), err)
	}
	slices.Sort(snames)
	slices.Sort(dnames)
	for i, j := 0, 0; i < len(snames) || j < len(dnames); {
		var name string
		inSrc, inDst := false, false
		switch {
		case j == len(dnames) || i < len(snames) && snames[i] < dnames[j]:
			name, inSrc = snames[i], true
			i++
		case i == len(snames) || dnames[j] < snames[i]:
			name, inDst = dnames[j], true
			j++
		default:
			name, inSrc, inDst = snames[i], true, true
			i++
			j++
		}
		crel := join(rel, name)
		if d.opt.Ignore != nil && d.opt.Ignore(crel) {
			continue
		}
		var sst, dst unix.Stat_t
		if inSrc {
			if sst, err = lstatat(sfd, name); err != nil {
				return fmt.Errorf("lstat src %s: %w", quote(crel), err)
			}
		}
		if inDst {
			if dst, err = lstatat(dfd, name); err != nil {
				return fmt.Errorf("lstat dst %s: %w", quote(crel), err)
			}
		}
		switch {
		case !inDst:
			d.addf(crel, "missing in dst (%s)", typeName(sst.Mode))
		case !inSrc:
			d.addf(crel, "extra in dst (%s)", typeName(dst.Mode))
		default:
			if err := d.compare(crel, sfd, dfd, name, &sst, &dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// compare compares one path present in both trees, descending into it when
// it is a directory in both.
func (d *differ) compare(rel string, sdir, ddir int, name string, sst, dst *unix.Stat_t) error {
	styp, dtyp := sst.Mode&unix.S_IFMT, dst.Mode&unix.S_IFMT
	if styp != dtyp {
		d.addf(rel, "type differs: src %s, dst %s", typeName(sst.Mode), typeName(dst.Mode))
		return nil
	}
	d.compareMeta(rel, sst, dst)
	if styp != unix.S_IFDIR {
		if sst.Nlink > 1 {
			d.src[rel] = inode{sst.Dev, sst.Ino}
		}
		if dst.Nlink > 1 {
			d.dst[rel] = inode{dst.Dev, dst.Ino}
		}
	}
	switch styp {
	case unix.S_IFREG:
		if sst.Size != dst.Size {
			d.addf(rel, "size differs: src %d, dst %d", sst.Size, dst.Size)
			return nil
		}
		return d.compareContent(rel, sdir, ddir, name)
	case unix.S_IFLNK:
		starget, err := readlinkat(sdir, name)
		if err != nil {
			return fmt.Errorf("readlink src %s: %w", quote(rel), err)
		}
		dtarget, err := readlinkat(ddir, name)
		if err != nil {
			return fmt.Errorf("readlink dst %s: %w", quote(rel), err)
		}
		if starget != dtarget {
			d.addf(rel, "symlink target differs: src %q, dst %q", starget, dtarget)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if sst.Rdev != dst.Rdev {
			d.addf(rel, "device differs: src %d:%d, dst %d:%d",
				unix.Major(sst.Rdev), unix.Minor(sst.Rdev), unix.Major(dst.Rdev), unix.Minor(dst.Rdev))
		}
	case unix.S_IFDIR:
		sfd, err := openat(sdir, name, dirFlags, 0)
		if err != nil {
			return fmt.Errorf("open src dir %s: %w", quote(rel), err)
		}
		defer unix.Close(sfd)
		dfd, err := openat(ddir, name, dirFlags, 0)
		if err != nil {
			return fmt.Errorf("open dst dir %s: %w", quote(rel), err)
		}
		defer unix.Close(dfd)
		return d.walk(rel, sfd, dfd)
	}
	return nil
}

// compareMeta compares what every type has: permission bits, mtime, owner.
func (d *differ) compareMeta(rel string, sst, dst *unix.Stat_t) {
	typ := sst.Mode & unix.S_IFMT
	if typ != unix.S_IFLNK && sst.Mode&07777 != dst.Mode&07777 {
		d.addf(rel, "mode differs: src %04o, dst %04o", sst.Mode&07777, dst.Mode&07777)
	}
	skipMtime := typ == unix.S_IFDIR && d.opt.IgnoreDirMtime ||
		typ == unix.S_IFLNK && d.opt.IgnoreSymlinkMtime
	if !skipMtime && sst.Mtim != dst.Mtim {
		d.addf(rel, "mtime differs: src %s, dst %s", fmtTime(sst.Mtim), fmtTime(dst.Mtim))
	}
	if d.opt.Owner && (sst.Uid != dst.Uid || sst.Gid != dst.Gid) {
		d.addf(rel, "owner differs: src %d:%d, dst %d:%d", sst.Uid, sst.Gid, dst.Uid, dst.Gid)
	}
}

// compareContent compares two regular files of equal size byte for byte.
func (d *differ) compareContent(rel string, sdir, ddir int, name string) (err error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	sfd, err := openat(sdir, name, flags, 0)
	if err != nil {
		return fmt.Errorf("open src %s: %w", quote(rel), err)
	}
	defer closeErr(sfd, &err)
	dfd, err := openat(ddir, name, flags, 0)
	if err != nil {
		return fmt.Errorf("open dst %s: %w", quote(rel), err)
	}
	defer closeErr(dfd, &err)
	for off := int64(0); ; {
		// Both reads fill their equal-sized buffers unless the file ends,
		// so equal chunks mean equal progress.
		sn, err := readFull(sfd, d.sbuf)
		if err != nil {
			return fmt.Errorf("read src %s: %w", quote(rel), err)
		}
		dn, err := readFull(dfd, d.dbuf)
		if err != nil {
			return fmt.Errorf("read dst %s: %w", quote(rel), err)
		}
		s, t := d.sbuf[:sn], d.dbuf[:dn]
		if !bytes.Equal(s, t) {
			i := 0
			for i < len(s) && i < len(t) && s[i] == t[i] {
				i++
			}
			d.addf(rel, "content differs at byte %d", off+int64(i))
			return nil
		}
		if sn < len(d.sbuf) {
			return nil
		}
		off += int64(sn)
	}
}

// readFull reads into p until it is full or the file ends.
func readFull(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := read(fd, p[n:])
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// compareLinks reports paths that share an inode in one tree but not in the
// other. Only paths compared in both trees take part.
func (d *differ) compareLinks() {
	d.linkDiffs(d.src, d.dst, "src", "dst")
	d.linkDiffs(d.dst, d.src, "dst", "src")
}

func (d *differ) linkDiffs(these, other links, thisName, otherName string) {
	groups := map[inode][]string{}
	for rel, ino := range these {
		groups[ino] = append(groups[ino], rel)
	}
	var lines []string
	for _, paths := range groups {
		if len(paths) < 2 {
			continue
		}
		slices.Sort(paths)
		inodes := map[inode]bool{}
		for i, p := range paths {
			ino, ok := other[p]
			if !ok { // a single link there: an inode of its own
				ino = inode{dev: ^uint64(0), ino: uint64(i)}
			}
			inodes[ino] = true
		}
		if len(inodes) > 1 {
			quoted := make([]string, len(paths))
			for i, p := range paths {
				quoted[i] = quote(p)
			}
			lines = append(lines, fmt.Sprintf("%s: hard links differ: one inode in %s, %d in %s: %s",
				quoted[0], thisName, len(inodes), otherName, strings.Join(quoted, ", ")))
		}
	}
	slices.Sort(lines)
	d.diffs = append(d.diffs, lines...)
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("unknown type %#o", mode&unix.S_IFMT)
}

// fmtTime shows a timestamp in UTC with all nine fractional digits, so that
// two times differing only in nanoseconds line up visibly.
func fmtTime(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format("2006-01-02T15:04:05.000000000Z")
}
