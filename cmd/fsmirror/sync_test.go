package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// t0 is the base of the mtimes in the test trees; its nanosecond part shows
// a mirror that rounds times.
const t0 = int64(1_600_000_000_123_456_789)

// big is larger than one copy_file_range request and a user-space buffer.
var big = strings.Repeat("0123456789abcdef", 3<<20/16) + "tail"

// richTree is one of everything sync mirrors as any user: files of every
// mode, read-only and sticky directories, an empty directory, symlinks of
// every sort, hard links across directories, all with nanosecond mtimes.
// With owners set, files belong to users other than the caller (root only).
func richTree(owners bool) []testutil.Node {
	own := func(n testutil.Node, uid, gid int) testutil.Node {
		if owners {
			return n.Owner(uid, gid)
		}
		return n
	}
	return []testutil.Node{
		testutil.Dir(".", 0o755).Mtime(t0),
		own(testutil.File("plain.txt", "hello\n", 0o644).Mtime(t0+1), 1234, 5678),
		testutil.File("empty", "", 0o600).Mtime(t0 + 2),
		testutil.File("exec.sh", "#!/bin/sh\n", 0o755).Mtime(t0 + 3),
		own(testutil.File("readonly", "ro", 0o444).Mtime(t0+4), 1001, 1001),
		own(testutil.File("setuid", "su", 0o6755).Mtime(t0+5), 1234, 5678),
		testutil.File("big", big, 0o640).Mtime(t0 + 6),
		testutil.Dir("emptydir", 0o700).Mtime(t0 + 7),
		testutil.Dir("sticky", 0o1777).Mtime(t0 + 8),
		own(testutil.Dir("ro-dir", 0o555).Mtime(t0+9), 4321, 8765),
		testutil.File("ro-dir/inside", "in a read-only dir", 0o644).Mtime(t0 + 10),
		testutil.Dir("ro-dir/sub", 0o500).Mtime(t0 + 11),
		testutil.File("ro-dir/sub/deeper", "x", 0o400).Mtime(t0 + 12),
		testutil.Dir("a", 0o2755).Mtime(t0 + 13),
		testutil.Dir("a/b", 0o750).Mtime(t0 + 14),
		testutil.Dir("a/b/c", 0o755).Mtime(t0 + 15),
		testutil.File("a/b/c/file", "deep", 0o644).Mtime(t0 + 16),
		testutil.Symlink("rel-link", "a/b/c/file").Mtime(t0 + 17),
		own(testutil.Symlink("abs-link", "/etc/passwd").Mtime(t0+18), 1111, 2222),
		testutil.Symlink("dangling", "no/such/thing").Mtime(t0 + 19),
		testutil.Symlink("dir-link", "a").Mtime(t0 + 20),
		testutil.Symlink("a/up-link", "../plain.txt").Mtime(t0 + 21),
		own(testutil.File("linked", "shared inode", 0o644).Mtime(t0+22), 1234, 5678),
		testutil.HardLink("a/linked-too", "linked"),
		testutil.HardLink("a/b/c/linked-three", "linked"),
		testutil.File("twin", "shared inode", 0o644).Mtime(t0 + 22),
	}
}

// diffOpt is what testutil.Diff compares for a mirror made by this process.
func diffOpt() testutil.DiffOptions {
	return testutil.DiffOptions{Owner: os.Geteuid() == 0}
}

// srcDst returns the paths of a source and a destination directory, neither
// of which exists yet.
func srcDst(t *testing.T) (src, dst string) {
	dir := t.TempDir()
	return filepath.Join(dir, "src"), filepath.Join(dir, "dst")
}

func TestSync_Mirror(t *testing.T) {
	t.Parallel()
	asRoot := os.Geteuid() == 0
	src, dst := srcDst(t)
	testutil.Build(t, src, richTree(asRoot)...)

	t.Run("new destination", func(t *testing.T) {
		r := mustRun(t, 0, "sync", src, dst)
		if r.stdout != "" || r.stderr != "" {
			t.Errorf("sync printed without -v, want nothing:\n%v", r)
		}
		testutil.AssertMirror(t, src, dst, diffOpt())
		if got := tempNames(t, dst); len(got) > 0 {
			t.Errorf("temporaries left in the destination: %q", got)
		}
	})
	t.Run("hard links", func(t *testing.T) {
		ino := inode(t, filepath.Join(dst, "linked"))
		for _, p := range []string{"a/linked-too", "a/b/c/linked-three"} {
			if got := inode(t, filepath.Join(dst, p)); got != ino {
				t.Errorf("%s: inode %d, want %d, that of linked", p, got, ino)
			}
		}
		if inode(t, filepath.Join(dst, "twin")) == ino {
			t.Errorf("twin, a copy with equal content in the source, is a hard link in the destination")
		}
	})
	t.Run("symlinks are not followed", func(t *testing.T) {
		for _, p := range []string{"dir-link", "abs-link", "rel-link", "dangling"} {
			if st := lstat(t, filepath.Join(dst, p)); st.Mode&unix.S_IFMT != unix.S_IFLNK {
				t.Errorf("%s: mode %o, want a symlink", p, st.Mode)
			}
		}
	})
	t.Run("verify", func(t *testing.T) {
		r := mustRun(t, 0, "verify", src, dst)
		if r.stdout != "" {
			t.Errorf("verify of a fresh mirror lists differences:\n%s", r.stdout)
		}
	})
	t.Run("second run changes nothing", func(t *testing.T) {
		before, err := treeState(dst)
		if err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, 0, "sync", "-v", src, dst)
		if r.stdout != "" {
			t.Errorf("second sync -v lists changes, want none:\n%s", r.stdout)
		}
		after, err := treeState(dst)
		if err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Errorf("second sync changed the destination\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

func TestSync_Owner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root mirrors owners")
	}
	src, dst := srcDst(t)
	testutil.Build(t, src, richTree(true)...)
	mustRun(t, 0, "sync", src, dst)
	testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})

	t.Run("changed owner only", func(t *testing.T) {
		p := filepath.Join(dst, "plain.txt")
		ino := inode(t, p)
		if err := os.Lchown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(dst, "abs-link"), 0, 0); err != nil {
			t.Fatal(err)
		}
		if r := mustRun(t, 1, "verify", src, dst); !strings.Contains(r.stdout, "plain.txt: owner 1234:5678 != 0:0") {
			t.Errorf("verify does not report the owner of plain.txt:\n%s", r.stdout)
		}
		mustRun(t, 0, "sync", src, dst)
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
		if got := inode(t, p); got != ino {
			t.Errorf("plain.txt was rewritten (inode %d, was %d) when only its owner differed", got, ino)
		}
	})
}

func TestSync_SpecialFiles(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("as root fifos and devices are mirrored; TestSync_Unprivileged covers other users")
	}
	src, dst := srcDst(t)
	testutil.Build(t, src,
		testutil.Fifo("fifo", 0o640).Mtime(t0),
		testutil.Dir("sub", 0o755).Mtime(t0+1),
		testutil.Fifo("sub/fifo2", 0o600).Mtime(t0+2),
		testutil.File("file", "data", 0o644).Mtime(t0+3),
	)
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	sock := filepath.Join(src, "sock")
	makeSocket(t, sock)
	for _, p := range []string{src, filepath.Join(src, "null")} {
		if err := setMtime(p, t0+4); err != nil {
			t.Fatal(err)
		}
	}

	r := mustRun(t, 0, "sync", src, dst)
	testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true, Ignore: func(rel string) bool { return rel == "sock" }})
	if _, err := os.Lstat(filepath.Join(dst, "sock")); err == nil {
		t.Errorf("the socket was mirrored")
	}
	if !strings.Contains(r.stderr, "sock") || len(lines(r.stderr)) != 1 {
		t.Errorf("want one line on stderr reporting the skipped socket, got:\n%s", r.stderr)
	}
	if r := mustRun(t, 0, "verify", src, dst); r.stdout != "" {
		t.Errorf("verify lists differences:\n%s", r.stdout)
	}
	if r := mustRun(t, 0, "sync", "-v", src, dst); r.stdout != "" {
		t.Errorf("second sync -v lists changes:\n%s", r.stdout)
	}
}

// makeSocket leaves a Unix socket file at path.
func makeSocket(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatalf("bind %s: %v", path, err)
	}
}

func TestSync_Delete(t *testing.T) {
	t.Parallel()
	srcTree := []testutil.Node{
		testutil.Dir(".", 0o755).Mtime(t0),
		testutil.File("keep", "keep", 0o644).Mtime(t0 + 1),
		testutil.Dir("dir", 0o755).Mtime(t0 + 2),
		testutil.File("dir/keep", "keep", 0o644).Mtime(t0 + 3),
		// Types that differ on the destination.
		testutil.File("was-dir", "now a file", 0o644).Mtime(t0 + 4),
		testutil.Dir("was-file", 0o755).Mtime(t0 + 5),
		testutil.File("was-file/inside", "x", 0o644).Mtime(t0 + 6),
		testutil.Symlink("was-file-too", "keep").Mtime(t0 + 7),
		testutil.File("was-link", "now a file", 0o644).Mtime(t0 + 8),
		testutil.Dir("was-link-dir", 0o755).Mtime(t0 + 9),
	}
	// extra is what the destination has and the source does not.
	extra := []testutil.Node{
		testutil.File("extra-file", "x", 0o644),
		testutil.Dir("extra-dir/sub", 0o755),
		testutil.File("extra-dir/sub/f", "x", 0o644),
		testutil.Dir("extra-dir/ro", 0o555),
		testutil.Symlink("extra-link", "keep"),
		testutil.File("dir/extra", "x", 0o644),
		testutil.Dir("was-dir", 0o755),
		testutil.File("was-dir/old", "x", 0o644),
		testutil.File("was-file", "x", 0o644),
		testutil.File("was-file-too", "x", 0o644),
		testutil.Symlink("was-link", "keep"),
		testutil.Symlink("was-link-dir", "dir"),
	}
	extraPaths := []string{"extra-file", "extra-dir", "extra-link", "dir/extra"}

	t.Run("default", func(t *testing.T) {
		t.Parallel()
		src, dst := srcDst(t)
		testutil.Build(t, src, srcTree...)
		testutil.Build(t, dst, extra...)
		mustRun(t, 0, "sync", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
	})
	t.Run("--no-delete", func(t *testing.T) {
		t.Parallel()
		src, dst := srcDst(t)
		testutil.Build(t, src, srcTree...)
		testutil.Build(t, dst, extra...)
		mustRun(t, 0, "sync", "--no-delete", src, dst)
		for _, p := range extraPaths {
			if _, err := os.Lstat(filepath.Join(dst, p)); err != nil {
				t.Errorf("--no-delete: %v", err)
			}
		}
		if _, err := os.Lstat(filepath.Join(dst, "extra-dir/sub/f")); err != nil {
			t.Errorf("--no-delete: %v", err)
		}
		// Everything the source has is mirrored, types replaced; the
		// directories that keep extra entries have other mtimes.
		isExtra := func(rel string) bool {
			for _, p := range extraPaths {
				if rel == p {
					return true
				}
			}
			return rel == "was-dir/old"
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: diffOpt().Owner, IgnoreDirMtime: true, Ignore: isExtra})
		if _, err := os.Lstat(filepath.Join(dst, "was-dir/old")); err == nil {
			t.Errorf("was-dir is still a directory")
		}
	})
}

func TestSync_Unchanged(t *testing.T) {
	t.Parallel()
	tree := []testutil.Node{
		testutil.File("a", "aaaa", 0o644).Mtime(t0),
		testutil.File("b", "bbbb", 0o644).Mtime(t0 + 1),
		testutil.File("sub/c", "cccc", 0o600).Mtime(t0 + 2),
		testutil.File("big", big, 0o644).Mtime(t0 + 3),
		testutil.File("linked", "link", 0o644).Mtime(t0 + 4),
		testutil.HardLink("sub/linked", "linked"),
	}
	files := []string{"a", "b", "sub/c", "big", "linked", "sub/linked"}
	setup := func(t *testing.T) (src, dst string, inodes map[string]uint64) {
		src, dst = srcDst(t)
		testutil.Build(t, src, tree...)
		mustRun(t, 0, "sync", src, dst)
		inodes = map[string]uint64{}
		for _, f := range files {
			inodes[f] = inode(t, filepath.Join(dst, f))
		}
		return src, dst, inodes
	}
	// sameInodes fails the test for each file but those in except whose
	// inode changed on the destination.
	sameInodes := func(t *testing.T, dst string, inodes map[string]uint64, except ...string) {
		t.Helper()
		for _, f := range files {
			got := inode(t, filepath.Join(dst, f))
			rewritten := got != inodes[f]
			want := false
			for _, e := range except {
				want = want || e == f
			}
			if rewritten != want {
				t.Errorf("%s: rewritten=%v (inode %d, was %d), want %v", f, rewritten, got, inodes[f], want)
			}
		}
	}

	t.Run("equal files are not rewritten", func(t *testing.T) {
		t.Parallel()
		src, dst, inodes := setup(t)
		for _, args := range [][]string{{"sync"}, {"sync", "--checksum"}} {
			r := mustRun(t, 0, append(args, "-v", src, dst)...)
			if r.stdout != "" {
				t.Errorf("%q lists changes, want none:\n%s", args, r.stdout)
			}
			sameInodes(t, dst, inodes)
		}
	})
	t.Run("metadata only", func(t *testing.T) {
		t.Parallel()
		src, dst, inodes := setup(t)
		if err := os.Chmod(filepath.Join(dst, "a"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := setMtime(filepath.Join(dst, "sub/c"), t0); err != nil { // other mtime: same size, same content
			t.Fatal(err)
		}
		// Content differs though size and mtime are equal: only --checksum
		// can see that, and the default must not look.
		writeKeepMtime(t, filepath.Join(dst, "b"), "BBBB")
		mustRun(t, 0, "sync", "--checksum", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		sameInodes(t, dst, inodes, "b")
	})
	t.Run("same size and mtime, other content", func(t *testing.T) {
		t.Parallel()
		src, dst, inodes := setup(t)
		writeKeepMtime(t, filepath.Join(dst, "b"), "BBBB")
		writeKeepMtime(t, filepath.Join(dst, "big"), strings.ToUpper(big))
		mustRun(t, 0, "sync", src, dst)
		if got := readFile(t, filepath.Join(dst, "b")); got != "BBBB" {
			t.Errorf("without --checksum b was rewritten although size and mtime are equal: %q", got)
		}
		sameInodes(t, dst, inodes)

		r := mustRun(t, 0, "sync", "--checksum", "-v", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		sameInodes(t, dst, inodes, "b", "big")
		for _, want := range []string{"write   b", "write   big"} {
			if !hasLine(r.stdout, want) {
				t.Errorf("sync --checksum -v output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("other mtime, same content, --checksum", func(t *testing.T) {
		t.Parallel()
		src, dst, inodes := setup(t)
		for _, f := range []string{"a", "big", "sub/linked"} {
			if err := setMtime(filepath.Join(dst, f), t0-1e9); err != nil {
				t.Fatal(err)
			}
		}
		r := mustRun(t, 0, "sync", "--checksum", "-v", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		sameInodes(t, dst, inodes)
		for _, want := range []string{"meta    a", "meta    big"} {
			if !hasLine(r.stdout, want) {
				t.Errorf("sync --checksum -v output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("changed source", func(t *testing.T) {
		t.Parallel()
		src, dst, inodes := setup(t)
		testutil.Build(t, src,
			testutil.File("a", "new content", 0o644).Mtime(t0+100),
			testutil.File("linked", "new link", 0o644).Mtime(t0+100), // in place: both names change
		)
		mustRun(t, 0, "sync", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		sameInodes(t, dst, inodes, "a", "linked", "sub/linked")
	})
}

// writeKeepMtime rewrites the file at path in place with content, then puts
// its mtime back.
func writeKeepMtime(t *testing.T, path, content string) {
	t.Helper()
	st := lstat(t, path)
	if err := os.WriteFile(path, []byte(content), 0); err != nil {
		t.Fatal(err)
	}
	if err := setMtime(path, st.Mtim.Nano()); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSync_Workers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if _, err := testutil.SmallFilesTree(src, 400, 40, 1); err != nil {
		t.Fatal(err)
	}
	testutil.Build(t, src,
		testutil.File("d0001/linked", "x", 0o644),
		testutil.HardLink("d0002/linked", "d0001/linked"),
		testutil.HardLink("d0003/linked", "d0001/linked"),
	)
	for _, workers := range []string{"1", "2", "16"} {
		t.Run(workers, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(dir, "dst"+workers)
			mustRun(t, 0, "sync", "--workers", workers, src, dst)
			testutil.AssertMirror(t, src, dst, diffOpt())
			mustRun(t, 0, "verify", "--workers", workers, src, dst)
		})
	}
}

// Symlinks are mirrored as symlinks, and a symlink the destination holds is
// replaced, never followed: nothing is written outside the destination.
func TestSync_Symlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst, outside := filepath.Join(dir, "src"), filepath.Join(dir, "dst"), filepath.Join(dir, "outside")
	testutil.Build(t, outside,
		testutil.Dir(".", 0o755).Mtime(t0),
		testutil.File("file", "outside", 0o644).Mtime(t0),
		testutil.File("dir/file", "outside", 0o644).Mtime(t0),
		testutil.Dir("dir", 0o755).Mtime(t0),
	)
	testutil.Build(t, src,
		testutil.Dir("sub", 0o700).Mtime(t0),
		testutil.File("sub/file", "inside", 0o600).Mtime(t0),
		testutil.File("file", "inside", 0o600).Mtime(t0),
		testutil.Symlink("to-outside", outside).Mtime(t0),
		testutil.Symlink("to-outside-file", filepath.Join(outside, "file")).Mtime(t0),
	)
	// The destination holds symlinks to outside where the source has a
	// directory and a file.
	testutil.Build(t, dst,
		testutil.Symlink("sub", filepath.Join(outside, "dir")),
		testutil.Symlink("file", filepath.Join(outside, "file")),
	)
	before, err := treeState(outside)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, 0, "sync", src, dst)
	testutil.AssertMirror(t, src, dst, diffOpt())
	if after, err := treeState(outside); err != nil || after != before {
		t.Errorf("sync wrote outside the destination (%v)\nbefore:\n%s\nafter:\n%s", err, before, after)
	}

	// A source given as a symlink is the tree it points to.
	link := filepath.Join(dir, "srclink")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	dst2 := filepath.Join(dir, "dst2")
	mustRun(t, 0, "sync", link, dst2)
	testutil.AssertMirror(t, src, dst2, diffOpt())
}
