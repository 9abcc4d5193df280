package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The tests in this file run fsmirror as user nobody, on trees that nobody
// owns: root can read everything, so only another user meets unreadable
// files, and only another user is refused special files.

// nobodyTree builds nodes below dir/src, gives dir/src to nobody and
// returns it, with the path dir/dst.
func nobodyTree(t *testing.T, nodes ...testutil.Node) (dir, src, dst string) {
	t.Helper()
	requireRoot(t)
	dir = nobodyDir(t)
	src, dst = filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	testutil.Build(t, src, nodes...)
	chownTree(t, src, nobody, nobody)
	return dir, src, dst
}

func TestSync_Unprivileged(t *testing.T) {
	t.Parallel()
	requireRoot(t)

	t.Run("mirror", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t, richTree(false)...)
		r := runAsNobody(t, dir, "sync", "src", "dst")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("sync as nobody: %v", r)
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
		if r := runAsNobody(t, dir, "verify", "--checksum", "src", "dst"); r.code != 0 || r.stdout != "" {
			t.Errorf("verify as nobody: %v", r)
		}
		if r := runAsNobody(t, dir, "sync", "-v", "src", "dst"); r.code != 0 || r.stdout != "" {
			t.Errorf("second sync as nobody lists changes: %v", r)
		}
	})

	t.Run("unreadable paths", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t,
			testutil.File("ok", "readable", 0o644).Mtime(t0),
			testutil.File("secret", "unreadable", 0o000).Mtime(t0),
			testutil.Dir("locked", 0o000).Mtime(t0),
			testutil.File("locked/inside", "unreachable", 0o644).Mtime(t0),
			testutil.Dir("noexec", 0o600).Mtime(t0),
			testutil.File("noexec/inside", "unreachable", 0o644).Mtime(t0),
			testutil.File("sub/secret2", "unreadable", 0o200).Mtime(t0),
			testutil.File("sub/ok2", "readable", 0o644).Mtime(t0),
			testutil.File("sub/zz", "readable after the failure", 0o644).Mtime(t0),
		)
		r := runAsNobody(t, dir, "sync", "src", "dst")
		if r.code != 1 {
			t.Errorf("sync: exit %d, want 1", r.code)
		}
		for _, p := range []string{"secret", "locked", "noexec", "sub/secret2"} {
			found := false
			for _, l := range lines(r.stderr) {
				// The path itself, or what in it could not be read.
				found = found || strings.Contains(l, " "+p+":") || strings.Contains(l, " "+p+"/")
			}
			if !found {
				t.Errorf("stderr does not report %s:\n%s", p, r.stderr)
			}
		}
		unreadable := map[string]bool{"secret": true, "locked": true, "noexec": true, "sub/secret2": true}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true, Ignore: func(rel string) bool { return unreadable[rel] }})
		for _, p := range []string{"sub/ok2", "sub/zz"} {
			if got := readFile(t, filepath.Join(dst, p)); got == "" {
				t.Errorf("%s not mirrored", p)
			}
		}

		r = runAsNobody(t, dir, "verify", "src", "dst")
		if r.code != 2 {
			t.Errorf("verify of an unreadable tree: exit %d, want 2", r.code)
		}
		if !strings.Contains(r.stderr, "locked") {
			t.Errorf("verify does not report the unreadable directory:\n%s", r.stderr)
		}
	})

	// Once the owner makes them readable, the next run converges.
	t.Run("unreadable paths made readable", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t,
			testutil.File("secret", "unreadable", 0o000).Mtime(t0),
			testutil.Dir("locked", 0o000).Mtime(t0),
			testutil.File("locked/inside", "unreachable", 0o644).Mtime(t0),
		)
		if r := runAsNobody(t, dir, "sync", "src", "dst"); r.code != 1 {
			t.Fatalf("first sync: %v, want exit 1", r)
		}
		for _, p := range []string{"secret", "locked"} {
			if err := os.Chmod(filepath.Join(src, p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if r := runAsNobody(t, dir, "sync", "src", "dst"); r.code != 0 {
			t.Errorf("sync after the source was made readable: %v", r)
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
	})

	t.Run("excluded unreadable directory", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t,
			testutil.File("ok", "readable", 0o644).Mtime(t0),
			testutil.Dir("private", 0o000).Mtime(t0),
			testutil.Dir("sub/private", 0o000).Mtime(t0),
			testutil.File("sub/ok", "readable", 0o644).Mtime(t0),
		)
		r := runAsNobody(t, dir, "sync", "--exclude", "private/", "src", "dst")
		if r.code != 0 || r.stderr != "" {
			t.Errorf("sync of a tree whose unreadable directories are excluded: %v", r)
		}
		excluded := func(rel string) bool { return filepath.Base(rel) == "private" }
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true, Ignore: excluded})
		if r := runAsNobody(t, dir, "verify", "--exclude", "private/", "src", "dst"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("verify with the exclude: %v", r)
		}
		// Without the exclude the same tree fails: the test above proves
		// something.
		if r := runAsNobody(t, dir, "sync", "src", "dst"); r.code != 1 || !strings.Contains(r.stderr, "private") {
			t.Errorf("sync without the exclude: %v, want exit 1 reporting private", r)
		}
	})

	t.Run("special files are skipped", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t,
			testutil.File("file", "data", 0o644).Mtime(t0),
			testutil.Fifo("fifo", 0o644).Mtime(t0),
		)
		makeSocket(t, filepath.Join(src, "sock"))
		chownTree(t, src, nobody, nobody)
		r := runAsNobody(t, dir, "sync", "src", "dst")
		if r.code != 0 {
			t.Errorf("sync: exit %d, want 0 (skipping is not failing)", r.code)
		}
		for _, p := range []string{"fifo", "sock"} {
			if _, err := os.Lstat(filepath.Join(dst, p)); err == nil {
				t.Errorf("%s was mirrored by an unprivileged user", p)
			}
			found := false
			for _, l := range lines(r.stderr) {
				found = found || strings.Contains(l, "skipped "+p+":")
			}
			if !found {
				t.Errorf("stderr does not report skipping %s:\n%s", p, r.stderr)
			}
		}
		if len(lines(r.stderr)) != 2 {
			t.Errorf("want 2 lines on stderr, got:\n%s", r.stderr)
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{
			Owner:  true,
			Ignore: func(rel string) bool { return rel == "fifo" || rel == "sock" },
		})
		if r := runAsNobody(t, dir, "verify", "src", "dst"); r.code != 0 || r.stdout != "" {
			t.Errorf("verify: %v", r)
		}
	})

	// Read-only directories are filled before they are closed, on the
	// first run and on every later one.
	t.Run("read-only directories change", func(t *testing.T) {
		t.Parallel()
		dir, src, dst := nobodyTree(t,
			testutil.Dir("ro", 0o555).Mtime(t0),
			testutil.File("ro/changes", "old", 0o644).Mtime(t0),
			testutil.File("ro/goes", "old", 0o644).Mtime(t0),
			testutil.File("ro/readonly-file", "old", 0o444).Mtime(t0),
			testutil.Dir("ro/sub", 0o500).Mtime(t0),
			testutil.File("ro/sub/f", "old", 0o644).Mtime(t0),
		)
		if r := runAsNobody(t, dir, "sync", "src", "dst"); r.code != 0 {
			t.Fatalf("first sync: %v", r)
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
		// The source changes as its owner may change it: files in place,
		// and the directories opened up and closed again.
		testutil.Build(t, src,
			testutil.Dir("ro", 0o555).Mtime(t0+1),
			testutil.File("ro/changes", "new content", 0o644).Mtime(t0+1),
			testutil.File("ro/readonly-file", "new content", 0o444).Mtime(t0+1),
			testutil.File("ro/new", "new file", 0o644).Mtime(t0+1),
			testutil.Dir("ro/sub", 0o500).Mtime(t0+1),
			testutil.File("ro/sub/f", "new content", 0o644).Mtime(t0+1),
		)
		if err := os.Remove(filepath.Join(src, "ro/goes")); err != nil {
			t.Fatal(err)
		}
		testutil.Build(t, src, testutil.Dir("ro", 0o555).Mtime(t0+2))
		chownTree(t, src, nobody, nobody)
		r := runAsNobody(t, dir, "sync", "src", "dst")
		if r.code != 0 || r.stderr != "" {
			t.Errorf("second sync: %v", r)
		}
		testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: true})
	})
}
