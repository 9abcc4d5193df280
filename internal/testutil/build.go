// Package testutil helps test a mirroring tool: it builds trees holding the
// nodes that break mirrors (hard links, dangling symlinks, fifos, names with
// newlines or invalid UTF-8, paths longer than PATH_MAX), generates large
// deterministic trees for benchmarks, and compares two trees byte for byte
// and attribute for attribute.
//
// The package deliberately imports nothing from fsmirror: it is the judge of
// fsmirror's results, so it must not share fsmirror's bugs. Everything below
// a root is reached one name at a time with openat and O_NOFOLLOW, so no
// symlink is ever followed and depth is not limited by PATH_MAX.
//
// A typical test:
//
//	testutil.Build(t, src,
//		testutil.Dir("www", 0o755).Mtime(1_700_000_000_000_000_001),
//		testutil.File("www/index.html", "<h1>hi</h1>", 0o644).Mtime(1_700_000_000_000_000_002),
//		testutil.Symlink("www/current", "/srv/releases/42"),
//		testutil.HardLink("www/index.bak", "www/index.html"),
//		testutil.Fifo("queue", 0o600),
//	)
//	// ... run fsmirror sync src dst ...
//	testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
package testutil

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
	kindHardLink
	kindFifo
)

// Node is one filesystem node for Build to create. Make one with File, Dir,
// Symlink, HardLink or Fifo, and refine it with Mtime or Owner.
type Node struct {
	path     string
	kind     kind
	content  string
	target   string // symlink target, or the existing path a hard link joins
	mode     uint32
	mtime    int64
	hasMtime bool
	uid, gid int
	hasOwner bool
}

// File is a regular file at path (relative, '/'-separated) holding content,
// with permission bits mode (07777, setuid, setgid and sticky included).
// Build rewrites an existing file in place.
func File(path, content string, mode uint32) Node {
	return Node{path: path, kind: kindFile, content: content, mode: mode}
}

// Dir is a directory at path with permission bits mode. Directories a node's
// path needs are created anyway, with mode 0755 less the umask; Dir is for empty
// directories and for directories whose mode or mtime matters. The path "."
// is the root itself.
func Dir(path string, mode uint32) Node {
	return Node{path: path, kind: kindDir, mode: mode}
}

// Symlink is a symbolic link at path pointing to target, which is stored as
// given: it may be absolute, relative, or dangle.
func Symlink(path, target string) Node {
	return Node{path: path, kind: kindSymlink, target: target}
}

// HardLink is a second name at path for the node an earlier Node created at
// existing.
func HardLink(path, existing string) Node {
	return Node{path: path, kind: kindHardLink, target: existing}
}

// Fifo is a named pipe at path with permission bits mode.
func Fifo(path string, mode uint32) Node {
	return Node{path: path, kind: kindFifo, mode: mode}
}

// Mtime returns n with its modification time set to ns nanoseconds since
// the Unix epoch. Build sets times after creating every node, so a
// directory keeps its mtime even when nodes are created inside it later.
func (n Node) Mtime(ns int64) Node {
	n.mtime, n.hasMtime = ns, true
	return n
}

// Owner returns n owned by uid and gid, which needs root.
func (n Node) Owner(uid, gid int) Node {
	n.uid, n.gid, n.hasOwner = uid, gid, true
	return n
}

// Build creates nodes below root, in order, making root and any missing
// parent directory first, and fails the test on any error. Owners, modes and
// mtimes are applied once everything exists, directories last and deepest
// first, so that neither creating a child nor a read-only directory spoils
// them.
func Build(t testing.TB, root string, nodes ...Node) {
	t.Helper()
	if err := build(root, nodes); err != nil {
		t.Fatalf("build %s: %v", root, err)
	}
}

func build(root string, nodes []Node) (err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	rootfd, err := openRootDir(root)
	if err != nil {
		return err
	}
	defer closeErr(rootfd, &err)
	for _, n := range nodes {
		if err := create(rootfd, n); err != nil {
			return fmt.Errorf("create %s: %w", quote(n.path), err)
		}
	}
	// Non-directories first, then directories deepest first: setting a
	// child's attributes never changes its parent, but a directory made
	// read-only too early would stop a non-root caller from going on.
	order := slices.Clone(nodes)
	slices.SortStableFunc(order, func(a, b Node) int {
		if (a.kind == kindDir) != (b.kind == kindDir) {
			if a.kind == kindDir {
				return 1
			}
			return -1
		}
		return cmp.Compare(strings.Count(b.path, "/"), strings.Count(a.path, "/"))
	})
	for _, n := range order {
		if err := setMeta(rootfd, n); err != nil {
			return fmt.Errorf("set attributes of %s: %w", quote(n.path), err)
		}
	}
	return nil
}

func create(rootfd int, n Node) (err error) {
	dirfd, name, err := openParent(rootfd, n.path, true)
	if err != nil {
		return err
	}
	defer closeErr(dirfd, &err)
	switch n.kind {
	case kindFile:
		fd, err := openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		defer closeErr(fd, &err)
		for b := []byte(n.content); len(b) > 0; {
			w, err := unix.Write(fd, b)
			if err != nil && err != unix.EINTR {
				return err
			}
			b = b[max(w, 0):]
		}
		return nil
	case kindDir:
		err := unix.Mkdirat(dirfd, name, 0o700)
		if err == unix.EEXIST {
			if st, serr := lstatat(dirfd, name); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return nil
			}
		}
		return err
	case kindSymlink:
		return unix.Symlinkat(n.target, dirfd, name)
	case kindHardLink:
		olddir, oldname, err := openParent(rootfd, n.target, false)
		if err != nil {
			return err
		}
		defer closeErr(olddir, &err)
		return unix.Linkat(olddir, oldname, dirfd, name, 0)
	case kindFifo:
		return unix.Mkfifoat(dirfd, name, 0o600)
	}
	return fmt.Errorf("unknown node kind %d", n.kind)
}

func setMeta(rootfd int, n Node) (err error) {
	dirfd, name, err := openParent(rootfd, n.path, false)
	if err != nil {
		return err
	}
	defer closeErr(dirfd, &err)
	if n.hasOwner {
		if err := unix.Fchownat(dirfd, name, n.uid, n.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	// After chown, which clears setuid and setgid. Symlinks have no mode of
	// their own, and a hard link shares its inode's.
	if n.kind != kindSymlink && n.kind != kindHardLink {
		if err := unix.Fchmodat(dirfd, name, n.mode, 0); err != nil {
			return err
		}
	}
	if n.hasMtime {
		return setMtime(dirfd, name, n.mtime)
	}
	return nil
}
