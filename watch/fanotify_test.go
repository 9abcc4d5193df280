package watch

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseBackend(t *testing.T) {
	for _, b := range []Backend{Inotify, Fanotify, Auto} {
		got, err := ParseBackend(b.String())
		if err != nil || got != b {
			t.Errorf("ParseBackend(%q) = %v, %v", b.String(), got, err)
		}
	}
	if _, err := ParseBackend("dnotify"); err == nil {
		t.Error("ParseBackend accepted dnotify")
	}
}

func TestNew_Backend(t *testing.T) {
	root := t.TempDir()
	w, _ := start(t, root, Options{Backend: Auto})
	ok, why := fanotifyUsable()
	switch {
	case ok && w.Backend() != Fanotify:
		t.Errorf("Auto chose %v where fanotify works", w.Backend())
	case !ok && w.Backend() != Inotify:
		t.Errorf("Auto chose %v where fanotify does not work (%s)", w.Backend(), why)
	case !ok && !strings.Contains(w.FanotifyError().Error(), why):
		t.Errorf("FanotifyError() = %v, want %s", w.FanotifyError(), why)
	}
	if w, _ := start(t, root, Options{}); w.Backend() != Inotify || w.FanotifyError() != nil {
		t.Errorf("the zero Options use %v (%v), want inotify", w.Backend(), w.FanotifyError())
	}
}

// Later writes under a name that a rename gave up must be reported after
// the rename: fanotify merges them into an older event of the same name
// still queued, before the rename; the watcher reports the name again.
// (inotify reports events in the order they happened.)
func TestWatcher_ReusedName(t *testing.T) {
	forRenameBackends(t, testOptions(), func(t *testing.T, opt Options) {
		root := t.TempDir()
		write(t, root, "a", "1")
		mkdirs(t, root, "d")
		w, r := start(t, root, opt)
		resume := w.PauseForTest()
		write(t, root, "f", "old")
		rename(t, root, "f", "g")
		write(t, root, "f", "new")
		rename(t, root, "a", "b")
		rename(t, root, "b", "a")
		rename(t, root, "a", "b") // may merge with the first a -> b
		rename(t, root, "d", "e")
		mkdirs(t, root, "d") // may merge with the creation of d...
		resume()
		r.sync()
		evs := r.all
		after := func(i int, p string) bool {
			for _, e := range evs[i+1:] {
				if e.Path == p && e.Kind != Renamed || e.Kind == Rescan && under(e.Path)(p) {
					return true
				}
			}
			return false
		}
		for i, e := range evs {
			if e.Kind == Renamed && e.From == "f" && !after(i, "f") {
				t.Errorf("nothing says f changed after %v: %v", e, evs)
			}
		}
		if w.Backend() == Inotify {
			return
		}
		// a is gone, b is there: whatever the events, the last word on
		// each of them comes after the last rename that names it.
		last := -1
		for i, e := range evs {
			if e.Kind == Renamed && (e.Path == "a" || e.From == "a") {
				last = i
			}
		}
		if last >= 0 && (!after(last, "a") || !after(last, "b")) {
			t.Errorf("a and b are not both reported after the last rename of a: %v", evs)
		}
	})
}

func TestWatcher_FanotifyDeepPath(t *testing.T) {
	requireFanotify(t)
	root := t.TempDir()
	deep, fd := mkdirDeep(t, root, "", 40) // about 4840 bytes
	if len(root)+len(deep) <= unix.PathMax {
		t.Fatalf("path of %d bytes is not beyond PATH_MAX", len(root)+len(deep))
	}
	_, r := start(t, root, Options{Backend: Fanotify})
	// The kernel cannot name a directory that deep: a change in it is a
	// rescan of its deepest ancestor it can name.
	writeAt(t, fd, "f", "x")
	e, _ := r.waitFor("an event covering the new file", func(e Event) bool {
		return e.Kind == Rescan && under(e.Path)(deep+"/f") || e.Path == deep+"/f"
	})
	if e.Kind != Rescan || e.Path == "" || len(root)+len(e.Path) > unix.PathMax {
		t.Errorf("got %v, want a Rescan of an ancestor of %d bytes at most", e, unix.PathMax-len(root))
	}
	// Shallow directories are still reported exactly.
	mkdirs(t, root, "shallow")
	write(t, root, "shallow/f", "x")
	r.expect(Event{Kind: Closed, Path: "shallow/f"})
}

// The kernel's queue overflows while the watcher does not read: with more
// events than fs.fanotify.max_queued_events (which is not lowered: a
// fanotify instance made meanwhile by another test would get every event
// of the file system in a queue that small).
func TestWatcher_FanotifyOverflow(t *testing.T) {
	requireFanotify(t)
	limit := 16384 // before Linux 5.13, the fixed size of the queue
	if n, ok := readInt("/proc/sys/fs/fanotify/max_queued_events"); ok {
		limit = n
	}
	if limit > 100_000 {
		t.Skipf("fs.fanotify.max_queued_events is %d: too many events to make", limit)
	}
	root := t.TempDir()
	mkdirs(t, root, "gone/sub", "stays", "many")
	w, r := start(t, root, Options{Backend: Fanotify})
	resume := w.PauseForTest()
	for i := range limit + 2000 { // each file its own event
		write(t, root, "many/f"+strconv.Itoa(i), "")
	}
	mkdirs(t, root, "late/deeper")
	if err := os.Rename(filepath.Join(root, "gone"), filepath.Join(t.TempDir(), "gone")); err != nil {
		t.Fatal(err)
	}
	rename(t, root, "stays", "moved")
	resume()
	r.expect(Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
	write(t, root, "late/deeper/x", "")
	r.expect(Event{Kind: Closed, Path: "late/deeper/x"})
	write(t, root, "moved/y", "")
	r.expect(Event{Kind: Closed, Path: "moved/y"})
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

// A consumer that does not take the events makes the outbox overflow, not
// the kernel's queue: the outbox becomes one Rescan of the root, and events
// come again once it is taken.
func TestWatcher_FanotifyOutbox(t *testing.T) {
	requireFanotify(t)
	old := maxOutbox
	maxOutbox = 10
	t.Cleanup(func() { maxOutbox = old })
	root := t.TempDir()
	_, r := start(t, root, Options{Backend: Fanotify})
	write(t, root, "first", "")
	time.Sleep(50 * time.Millisecond) // the sender blocks on its first send
	for i := range 30 {
		write(t, root, "f"+strings.Repeat("x", i), "")
	}
	r.expect(Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
	r.sync()
}

func TestWatcher_FanotifyResync(t *testing.T) {
	requireFanotify(t)
	root := t.TempDir()
	mkdirs(t, root, "a/b")
	w, r := start(t, root, Options{Backend: Fanotify})
	if err := w.Resync("a"); err != nil {
		t.Fatal(err)
	}
	if err := w.Resync("../x"); err == nil {
		t.Error("Resync accepted an invalid path")
	}
	r.sync()
	closeAndCheck(t, w)
	if err := w.Resync(""); !errors.Is(err, ErrClosed) {
		t.Errorf("Resync after Close: %v, want ErrClosed", err)
	}
}

// A file system mounted below the root is marked too.
func TestWatcher_FanotifyMount(t *testing.T) {
	requireFanotify(t)
	root := t.TempDir()
	mkdirs(t, root, "m", "ex/m2")
	for _, dir := range []string{"m", "ex/m2"} {
		mnt := filepath.Join(root, dir)
		if err := unix.Mount("fsmirror-test", mnt, "tmpfs", 0, "size=16m"); err != nil {
			t.Skipf("cannot mount a tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	}
	mkdirs(t, root, "m/inner")
	_, r := start(t, root, Options{Backend: Fanotify, Exclude: func(rel string, _ bool) bool { return rel == "ex" }})
	write(t, root, "m/inner/f", "")
	r.expect(Event{Kind: Closed, Path: "m/inner/f"})
	rename(t, root, "m/inner", "m/renamed")
	r.expect(Event{Kind: Renamed, Path: "m/renamed", From: "m/inner", IsDir: true})
	write(t, root, "ex/m2/g", "")
	if evs := r.sync(); hasPath(evs, under("ex")) {
		t.Errorf("events from an excluded mount: %v", evs)
	}
}

// A bind mount of the tree's own file system below the root would show
// directories at two places: fanotify refuses it, Auto uses inotify.
func TestWatcher_FanotifyBindMount(t *testing.T) {
	requireFanotify(t)
	root := t.TempDir()
	mkdirs(t, root, "a/loop", "b")
	loop := filepath.Join(root, "a/loop")
	if err := unix.Mount(filepath.Join(root, "b"), loop, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(loop, unix.MNT_DETACH) })
	_, err := New(root, Options{Backend: Fanotify})
	if !errors.Is(err, ErrNoFanotify) || !strings.Contains(err.Error(), "bind mount") {
		t.Errorf("New: %v, want an error about the bind mount that wraps ErrNoFanotify", err)
	}
	w, _ := start(t, root, Options{Backend: Auto})
	if w.Backend() != Inotify || !errors.Is(w.FanotifyError(), ErrNoFanotify) {
		t.Errorf("Auto: %v (%v), want inotify", w.Backend(), w.FanotifyError())
	}
	// Excluded, the bind mount is no obstacle.
	w, err = New(root, Options{Backend: Fanotify, Exclude: func(rel string, _ bool) bool { return rel == "a/loop" }})
	if err != nil {
		t.Errorf("New with the bind mount excluded: %v", err)
	} else {
		closeAndCheck(t, w)
	}
}

// A rename of a directory above the root moves the root: paths stay
// relative to it.
func TestWatcher_FanotifyAncestorRenamed(t *testing.T) {
	requireFanotify(t)
	top := t.TempDir()
	root := filepath.Join(top, "above", "root")
	mkdirs(t, root, "d")
	_, r := start(t, root, Options{Backend: Fanotify})
	write(t, root, "d/f", "")
	r.expect(Event{Kind: Closed, Path: "d/f"})
	if err := os.Rename(filepath.Join(top, "above"), filepath.Join(top, "moved")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(top, "moved", "root"), "d/g", "")
	r.expect(Event{Kind: Closed, Path: "d/g"})
}

func TestDirCache(t *testing.T) {
	var c dirCache
	c.init()
	c.max = 2
	put := func(k string) { c.put([]byte(k), dirInfo{state: dirInside, rel: k}) }
	put("a")
	put("b")
	put("c") // a and b become old
	if _, ok := c.get([]byte("a")); !ok {
		t.Error("a forgotten too soon")
	}
	put("d") // c and a become old, b is dropped
	if _, ok := c.get([]byte("b")); ok {
		t.Error("b not forgotten")
	}
	if n := c.len(); n > 2*c.max {
		t.Errorf("%d entries, want at most %d", n, 2*c.max)
	}
	c.clear()
	if _, ok := c.get([]byte("d")); ok {
		t.Error("d survived clear")
	}
}

func TestRelTo(t *testing.T) {
	for _, tc := range []struct {
		root, abs, rel string
		ok             bool
	}{
		{"/a/b", "/a/b", "", true},
		{"/a/b", "/a/b/c/d", "c/d", true},
		{"/a/b", "/a/bc", "", false},
		{"/a/b", "/a", "", false},
		{"/", "/x/y", "x/y", true},
		{"/", "/", "", true},
	} {
		rel, ok := relTo(tc.root, tc.abs)
		if rel != tc.rel || ok != tc.ok {
			t.Errorf("relTo(%q, %q) = %q, %v, want %q, %v", tc.root, tc.abs, rel, ok, tc.rel, tc.ok)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\011c\134d\012`); got != "/a b\tc\\d\n" {
		t.Errorf("got %q", got)
	}
	if got := unescapeMount(`/trailing\04`); got != `/trailing\04` {
		t.Errorf("got %q", got)
	}
}
