package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// keepDirMtimes runs f, then puts back the mtime of every directory below
// root that f stamped with the current time by adding or removing entries,
// so that a test case sees only the difference it means to make. Times f
// sets on purpose are in the past and stay.
func keepDirMtimes(t *testing.T, root string, f func()) {
	t.Helper()
	times := map[string]int64{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			st := lstat(t, path)
			times[path] = st.Mtim.Nano()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second).UnixNano() // clocks of file systems are coarse
	f()
	for path, ns := range times {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err == nil && st.Mtim.Nano() >= start {
			if err := setMtime(path, ns); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestVerify_Differences(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	testutil.Build(t, src, richTree(os.Geteuid() == 0)...)
	testutil.Build(t, src,
		testutil.File("new\nline", "nasty", 0o644).Mtime(t0),
		testutil.File("sub/\xff", "nasty", 0o644).Mtime(t0),
	)

	for _, tc := range []struct {
		name     string
		checksum bool // the difference is seen only with --checksum
		root     bool // the difference is seen only by root
		mutate   func(t *testing.T, dst string)
		want     []string // the lines verify prints: a path, then what differs
	}{
		{name: "size", mutate: func(t *testing.T, dst string) {
			writeKeepMtime(t, filepath.Join(dst, "plain.txt"), "longer content\n")
		}, want: []string{"plain.txt: size 6 != 15"}},
		{name: "file mode", mutate: func(t *testing.T, dst string) {
			chmod(t, filepath.Join(dst, "exec.sh"), 0o744)
		}, want: []string{"exec.sh: mode 0755 != 0744"}},
		{name: "dir mode", mutate: func(t *testing.T, dst string) {
			chmod(t, filepath.Join(dst, "a/b"), 0o755)
		}, want: []string{"a/b: mode 0750 != 0755"}},
		{name: "file mtime", mutate: func(t *testing.T, dst string) {
			mtime(t, filepath.Join(dst, "empty"), t0+2+1)
		}, want: []string{"empty: mtime 2020-09-13T12:26:40.123456791Z != 2020-09-13T12:26:40.123456792Z"}},
		{name: "dir mtime", mutate: func(t *testing.T, dst string) {
			mtime(t, filepath.Join(dst, "emptydir"), t0)
		}, want: []string{"emptydir: mtime 2020-09-13T12:26:40.123456796Z != 2020-09-13T12:26:40.123456789Z"}},
		{name: "symlink mtime", mutate: func(t *testing.T, dst string) {
			mtime(t, filepath.Join(dst, "dangling"), t0)
		}, want: []string{"dangling: mtime 2020-09-13T12:26:40.123456808Z != 2020-09-13T12:26:40.123456789Z"}},
		{name: "symlink target", mutate: func(t *testing.T, dst string) {
			p := filepath.Join(dst, "rel-link")
			remove(t, p)
			if err := os.Symlink("a/b/c/other", p); err != nil {
				t.Fatal(err)
			}
			mtime(t, p, t0+17)
		}, want: []string{"rel-link: symlink target a/b/c/file != a/b/c/other"}},
		{name: "type", mutate: func(t *testing.T, dst string) {
			p := filepath.Join(dst, "a/b/c/file")
			remove(t, p)
			testutil.Build(t, dst, testutil.Dir("a/b/c/file", 0o644).Mtime(t0+16))
		}, want: []string{"a/b/c/file: type file in source, dir in destination"}},
		{name: "missing", mutate: func(t *testing.T, dst string) {
			remove(t, filepath.Join(dst, "readonly"))
			if err := os.RemoveAll(filepath.Join(dst, "ro-dir/sub")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"readonly: missing in destination", "ro-dir/sub: missing in destination"}},
		{name: "extra", mutate: func(t *testing.T, dst string) {
			testutil.Build(t, dst, testutil.File("a/extra", "", 0o644), testutil.Symlink("extra-link", "x"))
		}, want: []string{"a/extra: extra in destination (file)", "extra-link: extra in destination (symlink)"}},
		{name: "hard link", mutate: func(t *testing.T, dst string) {
			p := filepath.Join(dst, "a/linked-too")
			remove(t, p)
			testutil.Build(t, dst, testutil.File("a/linked-too", "shared inode", 0o644).Mtime(t0+22))
			if os.Geteuid() == 0 {
				if err := os.Chown(p, 1234, 5678); err != nil {
					t.Fatal(err)
				}
			}
		}, want: []string{"a/linked-too: not hard-linked to linked as in source"}},
		{name: "content", checksum: true, mutate: func(t *testing.T, dst string) {
			writeKeepMtime(t, filepath.Join(dst, "big"), strings.Replace(big, "tail", "TAIL", 1))
		}, want: []string{"big: content differs"}},
		{name: "owner", root: true, mutate: func(t *testing.T, dst string) {
			if err := os.Lchown(filepath.Join(dst, "abs-link"), 0, 0); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"abs-link: owner 1111:2222 != 0:0"}},
		{name: "nasty names", mutate: func(t *testing.T, dst string) {
			chmod(t, filepath.Join(dst, "new\nline"), 0o600)
			chmod(t, filepath.Join(dst, "sub/\xff"), 0o600)
		}, want: []string{strconv.Quote("new\nline") + ": mode 0644 != 0600", strconv.Quote("sub/\xff") + ": mode 0644 != 0600"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.root && os.Geteuid() != 0 {
				t.Skip("only root compares owners")
			}
			dst := filepath.Join(t.TempDir(), "dst")
			mustRun(t, 0, "sync", src, dst)
			if r := mustRun(t, 0, "verify", "--checksum", src, dst); r.stdout != "" {
				t.Fatalf("verify of a fresh mirror lists differences:\n%s", r.stdout)
			}
			keepDirMtimes(t, dst, func() { tc.mutate(t, dst) })

			args := []string{"verify", src, dst}
			if tc.checksum {
				if r := mustRun(t, 0, args...); r.stdout != "" {
					t.Errorf("verify without --checksum lists differences:\n%s", r.stdout)
				}
				args = []string{"verify", "--checksum", src, dst}
			}
			r := mustRun(t, 1, args...)
			got := lines(r.stdout)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("verify printed\n%s\nwant\n%s", r.stdout, strings.Join(tc.want, "\n"))
			}
			// sync repairs what verify finds.
			mustRun(t, 0, "sync", "--checksum", src, dst)
			testutil.AssertMirror(t, src, dst, diffOpt())
			mustRun(t, 0, "verify", "--checksum", src, dst)
		})
	}
}

func TestVerify_Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	testutil.Build(t, src, testutil.File("f", "x", 0o644))
	file := filepath.Join(src, "f")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing source", []string{"verify", filepath.Join(dir, "nosuch"), src}, "no such file or directory"},
		{"missing destination", []string{"verify", src, filepath.Join(dir, "nosuch")}, "no such file or directory"},
		{"source is a file", []string{"verify", file, src}, "is not a directory"},
		{"destination is a file", []string{"verify", src, file}, "is not a directory"},
		{"one argument", []string{"verify", src}, "arg"},
		{"three arguments", []string{"verify", src, src, src}, "arg"},
		{"unknown flag", []string{"verify", "--delete", src, src}, "unknown flag: --delete"},
		{"bad exclude", []string{"verify", "--exclude", "[a-", src, src}, "[a-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRun(t, 2, tc.args...)
			if len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "fsmirror: ") {
				t.Errorf("want one line on stderr saying %q, got:\n%s", tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mtime(t *testing.T, path string, ns int64) {
	t.Helper()
	if err := setMtime(path, ns); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
