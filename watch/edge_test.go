package watch

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWatcher_OddNames(t *testing.T) {
	forRenameBackends(t, testOptions(), testOddNames)
}

func testOddNames(t *testing.T, opt Options) {
	root := t.TempDir()
	_, r := start(t, root, opt)
	for _, name := range []string{"new\nline", "bad\xffutf8", " space ", "tab\tand\\back", "é"} {
		t.Run(name, func(t *testing.T) {
			write(t, root, name, "x")
			r.expect(Event{Kind: Closed, Path: name})
			mkdirs(t, root, name+"dir")
			r.expect(Event{Kind: Rescan, Path: name + "dir", IsDir: true})
			write(t, root, name+"dir/"+name, "x")
			r.expect(Event{Kind: Closed, Path: name + "dir/" + name})
			rename(t, root, name+"dir", name+"dir2")
			r.expect(Event{Kind: Renamed, Path: name + "dir2", From: name + "dir", IsDir: true})
			write(t, root, name+"dir2/"+name, "y")
			r.expect(Event{Kind: Closed, Path: name + "dir2/" + name})
		})
	}
}

// mkdirDeep makes a chain of directories whose path is longer than
// PATH_MAX, with *at calls, and returns the relative path and an open
// descriptor of the deepest one.
func mkdirDeep(t *testing.T, root string, prefix string, levels int) (string, int) {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for i := range levels {
		name := prefix + strings.Repeat(string(rune('a'+i%26)), 120)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
		rel = append(rel, name)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return strings.Join(rel, "/"), fd
}

func writeAt(t *testing.T, dirfd int, name, content string) {
	t.Helper()
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fd, []byte(content))
	unix.Close(fd)
}

func TestWatcher_DeepPath(t *testing.T) {
	root := t.TempDir()
	deep, fd := mkdirDeep(t, root, "", 40) // about 4840 bytes
	if len(root)+len(deep) <= unix.PathMax {
		t.Fatalf("path of %d bytes is not beyond PATH_MAX", len(root)+len(deep))
	}
	w, r := start(t, root, testOptions())
	if got := w.Watches(); got != 41 {
		t.Fatalf("Watches() = %d, want 41", got)
	}
	writeAt(t, fd, "f", "x")
	r.expect(Event{Kind: Changed, Path: deep + "/f"})
	r.expect(Event{Kind: Closed, Path: deep + "/f"})

	// A new deep directory, and one below it, are watched.
	if err := unix.Mkdirat(fd, "sub", 0o755); err != nil {
		t.Fatal(err)
	}
	r.expect(Event{Kind: Rescan, Path: deep + "/sub", IsDir: true})
	sub, err := unix.Openat(fd, "sub", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sub)
	writeAt(t, sub, "g", "x")
	r.expect(Event{Kind: Closed, Path: deep + "/sub/g"})

	// Renaming the top keeps the watches; paths follow.
	top, rest, _ := strings.Cut(deep, "/")
	rename(t, root, top, "top")
	r.expect(Event{Kind: Renamed, Path: "top", From: top, IsDir: true})
	writeAt(t, sub, "h", "x")
	r.expect(Event{Kind: Closed, Path: "top/" + rest + "/sub/h"})

	// A deep directory moved in is walked.
	outside := t.TempDir()
	deep2, fd2 := mkdirDeep(t, outside, "m", 40)
	_ = fd2
	top2, rest2, _ := strings.Cut(deep2, "/")
	if err := os.Rename(filepath.Join(outside, top2), filepath.Join(root, top2)); err != nil {
		t.Fatal(err)
	}
	r.expect(Event{Kind: Rescan, Path: top2, IsDir: true})
	writeAt(t, fd2, "i", "x")
	r.expect(Event{Kind: Closed, Path: top2 + "/" + rest2 + "/i"})
	if got := w.Watches(); got != 82 {
		t.Errorf("Watches() = %d, want 82", got)
	}
	if err := w.Resync(""); err != nil {
		t.Fatal(err)
	}
	if got := w.Watches(); got != 82 {
		t.Errorf("after Resync: Watches() = %d, want 82", got)
	}
}

func TestWatcher_Overflow(t *testing.T) {
	restore, ok := setSysctl(t, "/proc/sys/fs/inotify/max_queued_events", "64")
	if !ok {
		t.Skip("cannot lower fs.inotify.max_queued_events (not root?)")
	}
	root := t.TempDir()
	mkdirs(t, root, "gone/sub", "stays")
	w, r := start(t, root, testOptions())
	restore() // the limit was copied into the new inotify instance
	resume := w.PauseForTest()
	for i := range 200 {
		write(t, root, "f"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "")
	}
	// Unseen: a new directory tree, a directory moved out, a rename.
	mkdirs(t, root, "late/deeper")
	if err := os.Rename(filepath.Join(root, "gone"), filepath.Join(t.TempDir(), "gone")); err != nil {
		t.Fatal(err)
	}
	rename(t, root, "stays", "moved")
	resume()
	r.expect(Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
	if got := w.Watches(); got != 4 { // root late late/deeper moved
		t.Errorf("Watches() = %d, want 4", got)
	}
	write(t, root, "late/deeper/x", "")
	r.expect(Event{Kind: Closed, Path: "late/deeper/x"})
	write(t, root, "moved/y", "")
	r.expect(Event{Kind: Closed, Path: "moved/y"})
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestWatcher_Resync(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b/c", "x")
	w, r := start(t, root, testOptions())
	// Forget a subtree, as if its events had been lost.
	w.mu.Lock()
	w.drop(w.top.children["a"].children["b"])
	w.mu.Unlock()
	if got := w.Watches(); got != 3 {
		t.Fatalf("Watches() = %d, want 3", got)
	}
	if err := w.Resync("a/b/c"); err != nil {
		t.Fatal(err)
	}
	r.expect(Event{Kind: Rescan, Path: "a/b", IsDir: true})
	if got := w.Watches(); got != 5 {
		t.Fatalf("Watches() = %d, want 5", got)
	}
	write(t, root, "a/b/c/f", "")
	r.expect(Event{Kind: Closed, Path: "a/b/c/f"})
	if err := w.Resync("../x"); err == nil {
		t.Error("Resync accepted an invalid path")
	}
	closeAndCheck(t, w)
	if err := w.Resync(""); !errors.Is(err, ErrClosed) {
		t.Errorf("Resync after Close: %v, want ErrClosed", err)
	}
}

func TestWatcher_RootGone(t *testing.T) {
	forRenameBackends(t, testOptions(), testRootGone)
}

func testRootGone(t *testing.T, opt Options) {
	for _, how := range []string{"delete", "move"} {
		t.Run(how, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			mkdirs(t, root, "sub")
			w, _ := start(t, root, opt)
			if how == "delete" {
				os.RemoveAll(root)
			} else {
				os.Rename(root, root+"2")
			}
			timeout := time.After(waitTimeout)
			for {
				select {
				case _, ok := <-w.Events():
					if ok {
						continue
					}
					if err := w.Err(); !errors.Is(err, ErrRootGone) {
						t.Fatalf("Err() = %v, want ErrRootGone", err)
					}
					return
				case <-timeout:
					t.Fatal("events not closed")
				}
			}
		})
	}
}

func TestWatcher_Close(t *testing.T) {
	forBackends(t, Options{}, testClose)
}

func testClose(t *testing.T, opt Options) {
	t.Run("consumer not reading", func(t *testing.T) {
		root := t.TempDir()
		o := opt
		o.BufferSize = 1
		w, err := New(root, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			write(t, root, strings.Repeat("f", i+1), "")
		}
		time.Sleep(50 * time.Millisecond) // let the reader block on a send
		closeAndCheck(t, w)
		if err := w.Err(); err != nil {
			t.Errorf("Err() after Close = %v", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		w, err := New(t.TempDir(), opt)
		if err != nil {
			t.Fatal(err)
		}
		closeAndCheck(t, w)
	})
	t.Run("waiting for a pair", func(t *testing.T) {
		root, outside := t.TempDir(), t.TempDir()
		write(t, root, "a", "")
		o := opt
		o.PairWait = time.Hour
		w, err := New(root, o)
		if err != nil {
			t.Fatal(err)
		}
		os.Rename(filepath.Join(root, "a"), filepath.Join(outside, "a"))
		time.Sleep(20 * time.Millisecond)
		closeAndCheck(t, w)
	})
	t.Run("paused", func(t *testing.T) {
		w, err := New(t.TempDir(), opt)
		if err != nil {
			t.Fatal(err)
		}
		w.PauseForTest()
		closeAndCheck(t, w)
	})
	t.Run("no goroutine left", func(t *testing.T) {
		before := runtime.NumGoroutine()
		for range 20 {
			w, err := New(t.TempDir(), opt)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines, %d before", n, before)
		}
	})
}

// An idle watcher sends nothing and its reader sleeps in the poller. With
// fanotify, which reports a whole file system, the tree is on a tmpfs of
// its own that nothing else writes to.
func TestWatcher_Idle(t *testing.T) {
	forBackends(t, Options{}, func(t *testing.T, opt Options) {
		root := t.TempDir()
		if opt.Backend == Fanotify {
			root = privateTmpfs(t)
		}
		_, r := start(t, root, opt)
		if r.receive(200 * time.Millisecond) {
			t.Errorf("events while idle: %v", r.all)
		}
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "watch.(*Watcher).run") && !strings.Contains(g, "[IO wait") {
				t.Errorf("reader is not waiting in the poller:\n%s", g)
			}
			if strings.Contains(g, "watch.(*Watcher).deliver") && !strings.Contains(g, "[select") && !strings.Contains(g, "[chan receive") {
				t.Errorf("sender is not waiting:\n%s", g)
			}
		}
	})
}

// When a file system mounted below the root is unmounted, the directory it
// covered is watched in its place and rescanned.
func TestWatcher_Unmount(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "m/under")
	mnt := filepath.Join(root, "m")
	if err := unix.Mount("none", mnt, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	mkdirs(t, root, "m/inner")
	w, r := start(t, root, testOptions())
	if got := w.Watches(); got != 3 {
		t.Fatalf("Watches() = %d, want 3", got)
	}
	write(t, root, "m/inner/f", "")
	r.expect(Event{Kind: Closed, Path: "m/inner/f"})
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	r.expect(Event{Kind: Rescan, Path: "m", IsDir: true})
	write(t, root, "m/under/g", "")
	r.expect(Event{Kind: Closed, Path: "m/under/g"})
	r.sync()
	if got := w.Watches(); got != 3 { // root m m/under
		t.Errorf("Watches() = %d, want 3", got)
	}
}

// A bind mount of a directory below itself does not make the walks loop.
func TestWatcher_BindMountLoop(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/loop", "b")
	loop := filepath.Join(root, "a/loop")
	if err := unix.Mount(root, loop, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(loop, unix.MNT_DETACH) })
	w, r := start(t, root, testOptions())
	if got := w.Watches(); got != 3 { // root a b; a/loop is the root again
		t.Errorf("Watches() = %d, want 3", got)
	}
	if err := w.Resync(""); err != nil {
		t.Fatal(err)
	}
	if err := w.Resync("a"); err != nil {
		t.Fatal(err)
	}
	if got := w.Watches(); got != 3 {
		t.Errorf("after Resync: Watches() = %d, want 3", got)
	}
	write(t, root, "b/f", "")
	r.expect(Event{Kind: Closed, Path: "b/f"})
	w.mu.Lock()
	n := w.countDirs()
	w.mu.Unlock()
	if n != 3 {
		t.Errorf("countDirs() = %d, want 3", n)
	}
}
