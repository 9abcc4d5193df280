package watch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNew_Errors(t *testing.T) {
	t.Run("missing root", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		_, err := New(missing, Options{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("got %v, want an error naming %s that wraps fs.ErrNotExist", err, missing)
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		write(t, filepath.Dir(f), "file", "")
		if _, err := New(f, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("got %v, want not a directory", err)
		}
	})
}

func TestWatcher_Watches(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b/c", "a/d", "e", "skip/x/y")
	if err := os.Symlink("a", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	write(t, root, "a/file", "x")
	w, _ := start(t, root, Options{Exclude: func(rel string, isDir bool) bool { return rel == "skip" }})
	if got := w.Watches(); got != 6 { // root a a/b a/b/c a/d e
		t.Fatalf("Watches() = %d, want 6", got)
	}
}

func TestWatcher_File(t *testing.T) {
	forBackends(t, testOptions(), testFile)
}

func testFile(t *testing.T, opt Options) {
	root := t.TempDir()
	_, r := start(t, root, opt)

	t.Run("create", func(t *testing.T) {
		f, err := os.Create(filepath.Join(root, "f"))
		if err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "f"})
		f.Close()
		r.expect(Event{Kind: Closed, Path: "f"})
	})
	t.Run("write", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(root, "f"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("more")
		r.expect(Event{Kind: Opened, Path: "f"})
		f.Close()
		r.expect(Event{Kind: Closed, Path: "f"})
	})
	t.Run("chmod", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(root, "f"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "f"})
	})
	t.Run("symlink", func(t *testing.T) {
		if err := os.Symlink("f", filepath.Join(root, "l")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "l"})
	})
	t.Run("delete", func(t *testing.T) {
		if err := os.Remove(filepath.Join(root, "f")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "f"})
	})
	t.Run("chmod root", func(t *testing.T) {
		if err := os.Chmod(root, 0o750); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "", IsDir: true})
	})
}

func TestWatcher_Dir(t *testing.T) {
	forBackends(t, testOptions(), testDir)
}

func testDir(t *testing.T, opt Options) {
	root := t.TempDir()
	mkdirs(t, root, "old")
	w, r := start(t, root, opt)

	t.Run("mkdir", func(t *testing.T) {
		mkdirs(t, root, "d")
		r.expect(Event{Kind: Rescan, Path: "d", IsDir: true})
		write(t, root, "d/f", "x")
		r.expect(Event{Kind: Closed, Path: "d/f"})
		wantWatches(t, w, 3)
	})
	t.Run("mkdir -p", func(t *testing.T) {
		// The subdirectories may be made before the watch on p exists:
		// they are watched by the walk that precedes Rescan(p).
		mkdirs(t, root, "p/q/r/s")
		r.expect(Event{Kind: Rescan, Path: "p", IsDir: true})
		r.sync()
		write(t, root, "p/q/r/s/f", "x")
		r.expect(Event{Kind: Closed, Path: "p/q/r/s/f"})
	})
	t.Run("chmod", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(root, "old"), 0o700); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "old", IsDir: true})
		// The directory's own IN_ATTRIB is not reported twice.
		for _, e := range r.sync() {
			if e.Path == "old" {
				t.Errorf("unexpected %v", e)
			}
		}
	})
	t.Run("rmdir", func(t *testing.T) {
		before := w.Watches()
		if err := os.RemoveAll(filepath.Join(root, "p")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "p", IsDir: true})
		r.sync()
		wantWatches(t, w, before-4)
	})
}

func TestWatcher_Rename(t *testing.T) {
	forRenameBackends(t, testOptions(), testRename)
}

func testRename(t *testing.T, opt Options) {
	root := t.TempDir()
	outside := t.TempDir()
	mkdirs(t, root, "d/sub/deeper")
	write(t, root, "a", "x")
	w, r := start(t, root, opt)

	t.Run("file", func(t *testing.T) {
		rename(t, root, "a", "b")
		r.expect(Event{Kind: Renamed, Path: "b", From: "a"})
	})
	t.Run("file over file", func(t *testing.T) {
		write(t, root, "c", "y")
		rename(t, root, "c", "b")
		r.expect(Event{Kind: Renamed, Path: "b", From: "c"})
	})
	t.Run("dir", func(t *testing.T) {
		before := w.Watches()
		rename(t, root, "d", "e")
		r.expect(Event{Kind: Renamed, Path: "e", From: "d", IsDir: true})
		write(t, root, "e/sub/deeper/f", "x")
		r.expect(Event{Kind: Closed, Path: "e/sub/deeper/f"})
		wantWatches(t, w, before)
	})
	t.Run("dir into subdir", func(t *testing.T) {
		mkdirs(t, root, "m")
		r.expect(Event{Kind: Rescan, Path: "m", IsDir: true})
		rename(t, root, "e", "m/e2")
		r.expect(Event{Kind: Renamed, Path: "m/e2", From: "e", IsDir: true})
		write(t, root, "m/e2/sub/g", "x")
		r.expect(Event{Kind: Closed, Path: "m/e2/sub/g"})
	})
	t.Run("dir then create, no wait", func(t *testing.T) {
		mkdirs(t, root, "q")
		r.expect(Event{Kind: Rescan, Path: "q", IsDir: true})
		rename(t, root, "q", "q2")
		write(t, root, "q2/f", "x")
		r.expect(Event{Kind: Renamed, Path: "q2", From: "q", IsDir: true})
		r.expect(Event{Kind: Closed, Path: "q2/f"})
	})
	t.Run("move file out", func(t *testing.T) {
		if err := os.Rename(filepath.Join(root, "b"), filepath.Join(outside, "b")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "b"})
	})
	t.Run("move dir out", func(t *testing.T) {
		before := w.Watches()
		if err := os.Rename(filepath.Join(root, "m"), filepath.Join(outside, "m")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "m", IsDir: true})
		write(t, outside, "m/e2/sub/h", "x")
		for _, e := range r.sync() {
			if strings.Contains(e.Path, "h") {
				t.Errorf("event from outside the tree: %v", e)
			}
		}
		wantWatches(t, w, before-4) // m m/e2 m/e2/sub m/e2/sub/deeper
	})
	t.Run("move file in", func(t *testing.T) {
		write(t, outside, "in", "x")
		if err := os.Rename(filepath.Join(outside, "in"), filepath.Join(root, "in")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "in"})
	})
	t.Run("move dir in", func(t *testing.T) {
		before := w.Watches()
		if err := os.Rename(filepath.Join(outside, "m"), filepath.Join(root, "back")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Rescan, Path: "back", IsDir: true})
		wantWatches(t, w, before+4)
		write(t, root, "back/e2/sub/deeper/i", "x")
		r.expect(Event{Kind: Closed, Path: "back/e2/sub/deeper/i"})
	})
}

func TestWatcher_RenameDirOverDir(t *testing.T) {
	forRenameBackends(t, testOptions(), func(t *testing.T, opt Options) {
		root := t.TempDir()
		mkdirs(t, root, "a/x", "b")
		w, r := start(t, root, opt)
		rename(t, root, "a", "b")
		r.expect(Event{Kind: Renamed, Path: "b", From: "a", IsDir: true})
		write(t, root, "b/x/f", "")
		r.expect(Event{Kind: Closed, Path: "b/x/f"})
		r.sync()
		wantWatches(t, w, 3)
	})
}

func TestWatcher_RenameExchange(t *testing.T) {
	forRenameBackends(t, testOptions(), func(t *testing.T, opt Options) {
		root := t.TempDir()
		mkdirs(t, root, "a/asub", "b/bsub")
		w, r := start(t, root, opt)
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "a"), unix.AT_FDCWD, filepath.Join(root, "b"), unix.RENAME_EXCHANGE)
		if err != nil {
			t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
		}
		if noRenameForTest {
			// The four halves of the exchange merge into two events,
			// each both a MOVED_FROM and a MOVED_TO: each side is
			// rescanned instead.
			for _, p := range []string{"a", "b"} {
				r.waitFor("rescan of "+p, func(e Event) bool {
					return e.Kind == Rescan && e.Path == p || e.Kind == Renamed && e.Path == p
				})
			}
		} else {
			r.expect(Event{Kind: Renamed, Path: "b", From: "a", IsDir: true})
			r.expect(Event{Kind: Renamed, Path: "a", From: "b", IsDir: true})
		}
		write(t, root, "a/bsub/f", "")
		r.expect(Event{Kind: Closed, Path: "a/bsub/f"})
		write(t, root, "b/asub/g", "")
		r.expect(Event{Kind: Closed, Path: "b/asub/g"})
		wantWatches(t, w, 5)
	})
}

// A MOVED_FROM that ends a read is paired with the MOVED_TO of the next.
func TestWatcher_RenameAcrossReads(t *testing.T) {
	root := t.TempDir()
	// One event per read: each name is longer than half the buffer.
	long := strings.Repeat("n", 200)
	mkdirs(t, root, "d")
	write(t, root, long+"1", "")
	_, r := start(t, root, Options{BufferSize: 1, PairWait: 500 * time.Millisecond})
	rename(t, root, long+"1", long+"2")
	r.expect(Event{Kind: Renamed, Path: long + "2", From: long + "1"})
	rename(t, root, "d", long+"d")
	r.expect(Event{Kind: Renamed, Path: long + "d", From: "d", IsDir: true})
	write(t, root, long+"d/f", "")
	r.expect(Event{Kind: Closed, Path: long + "d/f"})
}

// With the default (short) PairWait, a move out is reported quickly and
// renames still pair.
func TestWatcher_DefaultPairWait(t *testing.T) {
	forRenameBackends(t, Options{}, func(t *testing.T, opt Options) {
		root, outside := t.TempDir(), t.TempDir()
		write(t, root, "a", "")
		_, r := start(t, root, opt)
		if err := os.Rename(filepath.Join(root, "a"), filepath.Join(outside, "a")); err != nil {
			t.Fatal(err)
		}
		r.expect(Event{Kind: Changed, Path: "a"})
	})
}

func TestWatcher_Exclude(t *testing.T) {
	forRenameBackends(t, Options{PairWait: 100 * time.Millisecond}, testExclude)
}

func testExclude(t *testing.T, opt Options) {
	root := t.TempDir()
	mkdirs(t, root, "ex/old", "a", "d/sub")
	exclude := func(rel string, isDir bool) bool {
		if !isDir {
			t.Errorf("Exclude(%q, false)", rel)
		}
		return filepath.Base(rel) == "ex"
	}
	opt.Exclude = exclude
	w, r := start(t, root, opt)
	wantWatches(t, w, 4) // root a d d/sub
	excluded := func(p string) bool {
		return p == "ex" || strings.HasPrefix(p, "ex/") || strings.HasSuffix(p, "/ex") || strings.Contains(p, "/ex/")
	}

	t.Run("no events", func(t *testing.T) {
		write(t, root, "ex/f", "x")
		mkdirs(t, root, "ex/new", "a/ex/new")
		write(t, root, "a/ex/new/f", "x")
		write(t, root, "a/ex/g", "x")
		if err := os.Chmod(filepath.Join(root, "a/ex"), 0o700); err != nil {
			t.Fatal(err)
		}
		if evs := r.sync(); hasPath(evs, excluded) {
			t.Errorf("events for excluded directories: %v", evs)
		}
		wantWatches(t, w, 4)
	})
	t.Run("file into excluded", func(t *testing.T) {
		write(t, root, "f", "")
		r.expect(Event{Kind: Closed, Path: "f"})
		rename(t, root, "f", "ex/f2")
		r.expect(Event{Kind: Changed, Path: "f"})
	})
	t.Run("file out of excluded", func(t *testing.T) {
		rename(t, root, "ex/f2", "g")
		r.expect(Event{Kind: Changed, Path: "g"})
	})
}

func TestWatcher_ExcludeRenames(t *testing.T) {
	forRenameBackends(t, Options{PairWait: time.Minute}, testExcludeRenames)
}

func testExcludeRenames(t *testing.T, opt Options) {
	root := t.TempDir()
	mkdirs(t, root, "ex/inside/deep", "d/sub", "a")
	opt.Exclude = func(rel string, isDir bool) bool { return filepath.Base(rel) == "ex" }
	w, r := start(t, root, opt)
	wantWatches(t, w, 4)
	// A watched directory renamed to an excluded name leaves the tree at
	// once (no PairWait).
	rename(t, root, "d", "a/ex")
	r.expect(Event{Kind: Changed, Path: "d", IsDir: true})
	write(t, root, "a/ex/sub/f", "")
	if evs := r.sync(); hasPath(evs, under("a/ex")) {
		t.Errorf("events for an excluded directory: %v", evs)
	}
	wantWatches(t, w, 2)
	// A directory moved out of an excluded one is moved in.
	rename(t, root, "ex/inside", "in")
	r.expect(Event{Kind: Rescan, Path: "in", IsDir: true})
	write(t, root, "in/deep/f", "")
	r.expect(Event{Kind: Closed, Path: "in/deep/f"})
	// An excluded directory renamed to a name that is not excluded too.
	rename(t, root, "a/ex", "out")
	r.expect(Event{Kind: Rescan, Path: "out", IsDir: true})
	write(t, root, "out/sub/f", "")
	r.expect(Event{Kind: Closed, Path: "out/sub/f"})
	wantWatches(t, w, 6) // root a in in/deep out out/sub
}
