package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// t0 is the base of every mtime in the test trees; its nanosecond part
// catches comparisons that round.
const t0 = int64(1_600_000_000_123_456_789)

// bigContent is larger than Diff's read buffer, so a difference past the
// first chunk tests the chunking.
var bigContent = strings.Repeat("0123456789abcdef", 300<<10/16)

// baseTree holds one of everything Diff must compare, with fixed mtimes.
func baseTree() []Node {
	return []Node{
		Dir(".", 0o755).Mtime(t0),
		File("a.txt", "hello", 0o644).Mtime(t0 + 1),
		File("empty", "", 0o600).Mtime(t0 + 2),
		File("big", bigContent, 0o644).Mtime(t0 + 3),
		File("suid", "#!/bin/sh\n", 0o4755).Mtime(t0 + 4),
		Dir("sticky", 0o1777).Mtime(t0 + 5),
		Dir("emptydir", 0o700).Mtime(t0 + 6),
		Dir("sub", 0o2755).Mtime(t0 + 7),
		File("sub/b.txt", "bee", 0o640).Mtime(t0 + 8),
		Dir("sub/deeper", 0o755).Mtime(t0 + 9),
		File("sub/deeper/c", "sea", 0o644).Mtime(t0 + 10),
		Symlink("rel-link", "sub/b.txt").Mtime(t0 + 11),
		Symlink("abs-link", "/etc/passwd").Mtime(t0 + 12),
		Symlink("dangling", "no/such/target").Mtime(t0 + 13),
		Symlink("dir-link", "sub").Mtime(t0 + 14),
		File("linked1", "shared", 0o644).Mtime(t0 + 15),
		HardLink("linked2", "linked1"),
		HardLink("sub/linked3", "linked1"),
		File("twin", "shared", 0o644).Mtime(t0 + 15),
		Fifo("pipe", 0o620).Mtime(t0 + 16),
	}
}

// pair builds the same tree twice and returns the two roots.
func pair(t *testing.T, nodes ...Node) (src, dst string) {
	t.Helper()
	dir := t.TempDir()
	src, dst = filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	Build(t, src, nodes...)
	Build(t, dst, nodes...)
	return src, dst
}

// mutate runs f on root, then puts back the mtime of every directory that
// f's changes stamped with the current time, so that a case sees only the
// difference it means to make. Times a case sets on purpose are in the past
// and stay.
func mutate(t *testing.T, root string, f func(t *testing.T, r *os.Root)) {
	t.Helper()
	paths, err := ListTree(root)
	if err != nil {
		t.Fatal(err)
	}
	rootfd, err := openRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	times := map[string]unix.Timespec{}
	for _, p := range append(paths, ".") {
		withParent(t, rootfd, p, func(dirfd int, name string) {
			if st, err := lstatat(dirfd, name); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				times[p] = st.Mtim
			}
		})
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now().Add(-time.Second).UnixNano()
	f(t, r)
	for p, ts := range times {
		withParent(t, rootfd, p, func(dirfd int, name string) {
			st, err := lstatat(dirfd, name)
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && unix.TimespecToNsec(st.Mtim) > start {
				if err := setMtime(dirfd, name, unix.TimespecToNsec(ts)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func withParent(t *testing.T, rootfd int, rel string, f func(dirfd int, name string)) {
	t.Helper()
	dirfd, name, err := openParent(rootfd, rel, false)
	if errors.Is(err, unix.ENOENT) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	f(dirfd, name)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type diffCase struct {
	name   string
	opt    DiffOptions
	nodes  []Node                         // extra nodes built into both trees
	change func(t *testing.T, r *os.Root) // what to do to dst
	want   []string
}

func TestDiff(t *testing.T) {
	tests := []diffCase{
		{
			name: "equal",
			opt:  DiffOptions{Owner: true},
		},
		{
			name: "content with same size and mtime",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.WriteFile("a.txt", []byte("help!"), 0))
				must(t, r.Chtimes("a.txt", time.Now(), time.Unix(0, t0+1)))
			},
			want: []string{"a.txt: content differs at byte 3"},
		},
		{
			name: "content past the first read",
			change: func(t *testing.T, r *os.Root) {
				f, err := r.OpenFile("big", os.O_WRONLY, 0)
				must(t, err)
				_, err = f.WriteAt([]byte("X"), 200_000)
				must(t, err)
				must(t, f.Close())
				must(t, r.Chtimes("big", time.Now(), time.Unix(0, t0+3)))
			},
			want: []string{"big: content differs at byte 200000"},
		},
		{
			name: "size",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.WriteFile("empty", []byte("x"), 0))
				must(t, r.Chtimes("empty", time.Now(), time.Unix(0, t0+2)))
			},
			want: []string{"empty: size differs: src 0, dst 1"},
		},
		{
			name:   "mode",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chmod("sub/b.txt", 0o644)) },
			want:   []string{"sub/b.txt: mode differs: src 0640, dst 0644"},
		},
		{
			name:   "setuid lost",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chmod("suid", 0o755)) },
			want:   []string{"suid: mode differs: src 4755, dst 0755"},
		},
		{
			name:   "sticky and setgid lost",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chmod("sticky", 0o777)); must(t, r.Chmod("sub", 0o755)) },
			want: []string{
				"sticky: mode differs: src 1777, dst 0777",
				"sub: mode differs: src 2755, dst 0755",
			},
		},
		{
			name:   "fifo mode",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chmod("pipe", 0o600)) },
			want:   []string{"pipe: mode differs: src 0620, dst 0600"},
		},
		{
			name: "file mtime off by a nanosecond",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Chtimes("sub/deeper/c", time.Now(), time.Unix(0, t0+10+1)))
			},
			want: []string{"sub/deeper/c: mtime differs: src 2020-09-13T12:26:40.123456799Z, dst 2020-09-13T12:26:40.123456800Z"},
		},
		{
			name: "mtime truncated to microseconds",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Chtimes("a.txt", time.Now(), time.Unix(0, t0+1).Truncate(time.Microsecond)))
			},
			want: []string{"a.txt: mtime differs: src 2020-09-13T12:26:40.123456790Z, dst 2020-09-13T12:26:40.123456000Z"},
		},
		{
			name:   "dir mtime",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chtimes("emptydir", time.Now(), time.Unix(5, 0))) },
			want:   []string{"emptydir: mtime differs: src 2020-09-13T12:26:40.123456795Z, dst 1970-01-01T00:00:05.000000000Z"},
		},
		{
			name:   "dir mtime ignored",
			opt:    DiffOptions{IgnoreDirMtime: true},
			change: func(t *testing.T, r *os.Root) { must(t, r.Chtimes("emptydir", time.Now(), time.Unix(5, 0))) },
		},
		{
			name: "symlink mtime",
			change: func(t *testing.T, r *os.Root) {
				withParent(t, rootFd(t, r), "rel-link", func(dirfd int, name string) { must(t, setMtime(dirfd, name, 5)) })
			},
			want: []string{"rel-link: mtime differs: src 2020-09-13T12:26:40.123456800Z, dst 1970-01-01T00:00:00.000000005Z"},
		},
		{
			name: "symlink mtime ignored",
			opt:  DiffOptions{IgnoreSymlinkMtime: true},
			change: func(t *testing.T, r *os.Root) {
				withParent(t, rootFd(t, r), "rel-link", func(dirfd int, name string) { must(t, setMtime(dirfd, name, 5)) })
			},
		},
		{
			name: "symlink target",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Remove("dangling"))
				must(t, r.Symlink("no/such/targeT", "dangling"))
				withParent(t, rootFd(t, r), "dangling", func(dirfd int, name string) { must(t, setMtime(dirfd, name, t0+13)) })
			},
			want: []string{`dangling: symlink target differs: src "no/such/target", dst "no/such/targeT"`},
		},
		{
			name:   "missing file",
			change: func(t *testing.T, r *os.Root) { must(t, r.Remove("sub/b.txt")) },
			want:   []string{"sub/b.txt: missing in dst (file)"},
		},
		{
			name:   "missing subtree is one line",
			change: func(t *testing.T, r *os.Root) { must(t, r.RemoveAll("sub/deeper")) },
			want:   []string{"sub/deeper: missing in dst (dir)"},
		},
		{
			name: "extra paths",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.WriteFile("emptydir/new", nil, 0o644))
				must(t, r.Symlink("x", "zz-link"))
			},
			want: []string{"emptydir/new: extra in dst (file)", "zz-link: extra in dst (symlink)"},
		},
		{
			name: "type changes",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Remove("a.txt"))
				must(t, r.Mkdir("a.txt", 0o755))
				must(t, r.RemoveAll("sub/deeper"))
				must(t, r.Symlink("elsewhere", "sub/deeper"))
				must(t, r.Remove("pipe"))
				must(t, r.WriteFile("pipe", nil, 0o620))
			},
			want: []string{
				"a.txt: type differs: src file, dst dir",
				"pipe: type differs: src fifo, dst file",
				"sub/deeper: type differs: src dir, dst symlink",
			},
		},
		{
			name: "broken hard link",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Remove("linked2"))
				must(t, r.WriteFile("linked2", []byte("shared"), 0o644))
				must(t, r.Chtimes("linked2", time.Now(), time.Unix(0, t0+15)))
			},
			want: []string{"linked1: hard links differ: one inode in src, 2 in dst: linked1, linked2, sub/linked3"},
		},
		{
			name: "extra hard link",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Remove("twin"))
				must(t, r.Link("linked1", "twin"))
			},
			want: []string{"linked1: hard links differ: one inode in dst, 2 in src: linked1, linked2, sub/linked3, twin"},
		},
		{
			name: "root meta",
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Chmod(".", 0o700))
				must(t, r.Chtimes(".", time.Now(), time.Unix(0, t0-1)))
			},
			want: []string{
				".: mode differs: src 0755, dst 0700",
				".: mtime differs: src 2020-09-13T12:26:40.123456789Z, dst 2020-09-13T12:26:40.123456788Z",
			},
		},
		{
			name: "root meta ignored",
			opt:  DiffOptions{IgnoreRootMeta: true},
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Chmod(".", 0o700))
				must(t, r.Chtimes(".", time.Now(), time.Unix(0, t0-1)))
			},
		},
		{
			name: "ignored paths",
			opt: DiffOptions{Ignore: func(rel string) bool {
				return rel == "sub/deeper" || strings.HasSuffix(rel, ".txt")
			}},
			change: func(t *testing.T, r *os.Root) {
				must(t, r.RemoveAll("sub/deeper"))
				must(t, r.Chmod("a.txt", 0o600))
				must(t, r.WriteFile("extra.txt", nil, 0o644))
			},
		},
		{
			name:  "beyond PATH_MAX",
			opt:   DiffOptions{IgnoreDirMtime: true}, // deepRel's directories are made when built
			nodes: []Node{File(deepRel+"/f", "deep", 0o644).Mtime(t0), File(deepRel+"/g", "gone", 0o644).Mtime(t0)},
			change: func(t *testing.T, r *os.Root) {
				must(t, r.WriteFile(deepRel+"/f", []byte("DEEP"), 0))
				must(t, r.Chtimes(deepRel+"/f", time.Now(), time.Unix(0, t0)))
				must(t, r.Remove(deepRel+"/g"))
			},
			want: []string{
				deepRel + "/f: content differs at byte 0",
				deepRel + "/g: missing in dst (file)",
			},
		},
		{
			name: "nasty names",
			nodes: []Node{
				File("new\nline", "x", 0o644).Mtime(t0),
				File("\xff\xfe", "x", 0o644).Mtime(t0),
				File(" lead", "x", 0o644).Mtime(t0),
				File(strings.Repeat("n", 255), "x", 0o644).Mtime(t0),
			},
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Remove("new\nline"))
				must(t, r.Chmod("\xff\xfe", 0o600))
				must(t, r.Chtimes(" lead", time.Now(), time.Unix(0, t0+1)))
				must(t, r.WriteFile(strings.Repeat("n", 255), []byte("y"), 0))
				must(t, r.Chtimes(strings.Repeat("n", 255), time.Now(), time.Unix(0, t0)))
			},
			want: []string{
				`" lead": mtime differs: src 2020-09-13T12:26:40.123456789Z, dst 2020-09-13T12:26:40.123456790Z`,
				`"new\nline": missing in dst (file)`,
				strings.Repeat("n", 255) + ": content differs at byte 0",
				`"\xff\xfe": mode differs: src 0644, dst 0600`,
			},
		},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, diffCase{
			name: "owner",
			opt:  DiffOptions{Owner: true},
			change: func(t *testing.T, r *os.Root) {
				must(t, r.Lchown("abs-link", 1000, 1001))
				must(t, r.Chown("a.txt", 1000, 0))
			},
			want: []string{
				"a.txt: owner differs: src 0:0, dst 1000:0",
				"abs-link: owner differs: src 0:0, dst 1000:1001",
			},
		}, diffCase{
			name:   "owner not compared",
			change: func(t *testing.T, r *os.Root) { must(t, r.Chown("a.txt", 1000, 1000)) },
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := pair(t, append(baseTree(), tt.nodes...)...)
			if tt.change != nil {
				mutate(t, dst, tt.change)
			}
			got, err := Diff(src, dst, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff(src, dst) mismatch (-want +got):\n%s", diff)
			}
			for _, line := range got {
				if strings.ContainsAny(line, "\n\r") || !utf8Valid(line) {
					t.Errorf("difference is not one printable line: %q", line)
				}
			}
			// Every difference is symmetric: swapping the trees finds as many.
			back, err := Diff(dst, src, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(got) {
				t.Errorf("Diff(dst, src) found %d differences, Diff(src, dst) %d:\n%s", len(back), len(got), strings.Join(back, "\n"))
			}
		})
	}
}

// deepRel is a directory path longer than PATH_MAX.
var deepRel = strings.TrimSuffix(strings.Repeat(strings.Repeat("x", 250)+"/", 20), "/")

func rootFd(t *testing.T, r *os.Root) int {
	t.Helper()
	fd, err := openRootDir(r.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestDiff_builders checks that the nasty and deep builders make trees that
// Diff reads, that two builds are equal, and that a change deep inside them
// shows.
func TestDiff_builders(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	var deepest string
	for _, root := range []string{src, dst} {
		NastyTree(t, root)
		deepest = DeepTree(t, root)
	}
	if len(deepest) <= 4096 {
		t.Fatalf("DeepTree path is %d bytes, want more than PATH_MAX", len(deepest))
	}
	if _, err := os.Lstat(filepath.Join(src, deepest)); err == nil {
		t.Fatalf("a path-based lstat reached %d bytes deep; the deep tree is not deep enough", len(deepest))
	}
	AssertMirror(t, src, dst, DiffOptions{Owner: true, IgnoreRootMeta: true})

	mutate(t, dst, func(t *testing.T, r *os.Root) {
		must(t, r.Remove("dirs/new\nline/new\nline"))
		must(t, r.Chmod(deepest, 0o600))
	})
	got, err := Diff(src, dst, DiffOptions{IgnoreRootMeta: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		quote(deepest) + ": mode differs: src 0644, dst 0600",
		`"dirs/new\nline/new\nline": missing in dst (file)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff mismatch (-want +got):\n%s", diff)
	}
}

// TestDiff_cp checks Diff against an independent copier: GNU cp -a keeps
// everything Diff compares, so its copy must be clean. (Not beyond PATH_MAX:
// cp fails there with "File name too long".)
func TestDiff_cp(t *testing.T) {
	cp, err := exec.LookPath("cp")
	if err != nil {
		t.Skip("no cp")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	Build(t, src, baseTree()...)
	NastyTree(t, src)
	if out, err := exec.Command(cp, "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	AssertMirror(t, src, dst, DiffOptions{Owner: true})
}

func TestAssertMirror(t *testing.T) {
	src, dst := pair(t, baseTree()...)
	mutate(t, dst, func(t *testing.T, r *os.Root) {
		for i := range 60 {
			must(t, r.WriteFile("emptydir/"+strings.Repeat("e", i+1), nil, 0o644))
		}
	})
	rec := &recorder{TB: t}
	AssertMirror(rec, src, dst, DiffOptions{})
	if !rec.failed {
		t.Fatal("AssertMirror passed trees that differ")
	}
	if n := strings.Count(rec.msg, "extra in dst"); n != 50 {
		t.Errorf("AssertMirror listed %d differences, want 50", n)
	}
	if !strings.Contains(rec.msg, "... and 10 more") {
		t.Errorf("AssertMirror does not say how many it left out:\n%s", rec.msg)
	}

	rec = &recorder{TB: t}
	AssertMirror(rec, src, src, DiffOptions{})
	if rec.failed {
		t.Errorf("AssertMirror failed a tree against itself: %s", rec.msg)
	}
}

// recorder catches a failure instead of failing the test.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Error(args ...any) {
	r.failed = true
	r.msg = args[0].(string)
}

func TestListTree(t *testing.T) {
	root := t.TempDir()
	Build(t, root, baseTree()...)
	got, err := ListTree(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a.txt", "abs-link", "big", "dangling", "dir-link", "empty", "emptydir",
		"linked1", "linked2", "pipe", "rel-link", "sticky", "sub", "sub/b.txt",
		"sub/deeper", "sub/deeper/c", "sub/linked3", "suid", "twin",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListTree mismatch (-want +got):\n%s", diff)
	}
}

func TestDiff_errors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Diff(filepath.Join(dir, "nope"), dir, DiffOptions{}); err == nil {
		t.Error("Diff of a missing src gave no error")
	}
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if _, err := Diff(dir, file, DiffOptions{}); err == nil {
		t.Error("Diff with a file as dst root gave no error")
	}
}
