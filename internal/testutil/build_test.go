package testutil

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestBuild checks Build with the os package, not with Diff, so that a bug
// shared by both cannot hide.
func TestBuild(t *testing.T) {
	root := t.TempDir()
	Build(t, root,
		Dir("d", 0o750).Mtime(t0),
		File("d/suid", "#!/bin/sh\n", 0o4755).Mtime(t0+1),
		File("d/zero", "", 0).Mtime(-1), // mode 0 and a time before the epoch are values too
		Symlink("d/abs", "/nowhere/at/all").Mtime(t0+2),
		HardLink("d/also-suid", "d/suid"),
		Fifo("fifo", 0o640),
		Dir("empty", 0o1777),
		File("a/b/c/implied", "x", 0o644),
	)
	lstat := func(rel string) fs.FileInfo {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	checkMode := func(rel string, want fs.FileMode) {
		t.Helper()
		if got := lstat(rel).Mode(); got != want {
			t.Errorf("%s: mode %v, want %v", rel, got, want)
		}
	}
	checkMtime := func(rel string, want int64) {
		t.Helper()
		if got := lstat(rel).ModTime().UnixNano(); got != want {
			t.Errorf("%s: mtime %d, want %d", rel, got, want)
		}
	}
	checkMode("d", fs.ModeDir|0o750)
	checkMode("d/suid", fs.ModeSetuid|0o755)
	checkMode("d/zero", 0)
	checkMode("fifo", fs.ModeNamedPipe|0o640)
	checkMode("empty", fs.ModeDir|fs.ModeSticky|0o777)
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	checkMode("a/b", fs.ModeDir|0o755&^fs.FileMode(umask))
	checkMtime("d", t0) // set after its children were made
	checkMtime("d/suid", t0+1)
	checkMtime("d/zero", -1)
	checkMtime("d/abs", t0+2)
	if target, err := os.Readlink(filepath.Join(root, "d/abs")); err != nil || target != "/nowhere/at/all" {
		t.Errorf("d/abs: target %q, %v", target, err)
	}
	if !os.SameFile(lstat("d/suid"), lstat("d/also-suid")) {
		t.Error("d/also-suid is not a hard link of d/suid")
	}
	if b, err := os.ReadFile(filepath.Join(root, "d/suid")); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("d/suid: content %q, %v", b, err)
	}

	// Building a file again rewrites it in place.
	Build(t, root, File("d/suid", "new", 0o700))
	if b, err := os.ReadFile(filepath.Join(root, "d/also-suid")); err != nil || string(b) != "new" {
		t.Errorf("d/also-suid after rewrite: content %q, %v", b, err)
	}
}

func TestBuild_badPaths(t *testing.T) {
	for _, p := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/./b", "trailing/", "nul\x00"} {
		if err := build(t.TempDir(), []Node{File(p, "", 0o644)}); err == nil {
			t.Errorf("build of %q succeeded", p)
		}
	}
	if err := build(t.TempDir(), []Node{HardLink("l", "missing")}); err == nil {
		t.Error("hard link to a missing path succeeded")
	}
}

func TestNastyNames(t *testing.T) {
	names := NastyNames()
	seen := map[string]bool{}
	has255 := false
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") || len(n) > 255 {
			t.Errorf("%q is not a valid file name", n)
		}
		if seen[n] {
			t.Errorf("%q twice", n)
		}
		seen[n] = true
		has255 = has255 || len(n) == 255
	}
	if !has255 {
		t.Error("no 255-byte name")
	}
	root := t.TempDir()
	NastyTree(t, root)
	got, err := ListTree(filepath.Join(root, "files"))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(got, want) {
		t.Errorf("files/ holds %q, want %q", got, want)
	}
}

func TestSmallFilesTree(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	const files, dirs = 600, 30
	total, err := SmallFilesTree(a, files, dirs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if total2, err := SmallFilesTree(b, files, dirs, 1); err != nil || total2 != total {
		t.Fatalf("second tree: %d bytes, %v; first had %d", total2, err, total)
	}
	AssertMirror(t, a, b, DiffOptions{Owner: true})

	if _, err := SmallFilesTree(c, files, dirs, 2); err != nil {
		t.Fatal(err)
	}
	if diffs, err := Diff(a, c, DiffOptions{}); err != nil || len(diffs) == 0 {
		t.Errorf("trees from different seeds: %d differences, %v", len(diffs), err)
	}

	var sizes []int64
	var sum int64
	var nDirs, nLinks, roundTimes int
	modes := map[fs.FileMode]int{}
	err = filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == a {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsRegular():
			sizes = append(sizes, fi.Size())
			sum += fi.Size()
			modes[fi.Mode().Perm()]++
			if fi.ModTime().Nanosecond()%1000 == 0 {
				roundTimes++
			}
		case fi.IsDir():
			nDirs++
		case fi.Mode()&fs.ModeSymlink != 0:
			nLinks++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != files || nDirs != dirs || sum != total {
		t.Errorf("got %d files, %d dirs, %d bytes; want %d, %d, %d", len(sizes), nDirs, sum, files, dirs, total)
	}
	if nLinks < 3 {
		t.Errorf("only %d symlinks", nLinks)
	}
	slices.Sort(sizes)
	if median := sizes[len(sizes)/2]; median < 4<<10 || median > 6<<10 {
		t.Errorf("median size %d, want about 5 KiB", median)
	}
	if len(modes) != 4 {
		t.Errorf("file modes %v: want 0644, 0600, 0755 and 0444", modes)
	}
	if roundTimes > files/100 {
		t.Errorf("%d of %d mtimes are whole microseconds", roundTimes, files)
	}
}

// BenchmarkSmallFilesTree builds the syncbench tree: 50,000 files, about
// 400 MB, which should take seconds on tmpfs (TMPDIR=/dev/shm).
func BenchmarkSmallFilesTree(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		total, err := SmallFilesTree(dir, 50_000, 2_500, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(total)
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
