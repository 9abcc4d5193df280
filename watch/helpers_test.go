package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait of the tests; the machine may be slow.
const waitTimeout = 15 * time.Second

// testOptions are the options of most tests: a generous PairWait, so that a
// busy machine does not turn a rename into a move out and a move in.
func testOptions() Options {
	return Options{PairWait: 100 * time.Millisecond}
}

// start returns a watcher on root that the test closes at its end, checking
// that Close returns promptly and the reader goroutine is gone.
func start(t *testing.T, root string, opt Options) (*Watcher, *recorder) {
	t.Helper()
	w, err := New(root, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAndCheck(t, w) })
	return w, &recorder{t: t, w: w, root: root}
}

func closeAndCheck(t *testing.T, w *Watcher) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	select {
	case <-w.exited:
	default:
		t.Error("reader goroutine still running after Close")
	}
	// The channel must be closed, after at most one batch left in it.
	for range 2 {
		select {
		case _, ok := <-w.events:
			if !ok {
				return
			}
		case <-time.After(waitTimeout):
			t.Fatal("Events not closed after Close")
		}
	}
	t.Error("Events not closed after Close")
}

// recorder receives a watcher's events and keeps them.
type recorder struct {
	t    *testing.T
	w    *Watcher
	root string
	all  []Event // every event received
	next int     // all[next:] were not yet looked at by waitFor
	seq  atomic.Int64
}

// receive waits up to d for one batch; false on timeout.
func (r *recorder) receive(d time.Duration) bool {
	r.t.Helper()
	select {
	case b, ok := <-r.w.Events():
		if !ok {
			r.t.Fatalf("events closed: %v", r.w.Err())
		}
		if len(b) == 0 {
			r.t.Error("empty batch")
		}
		r.all = append(r.all, b...)
		return true
	case <-time.After(d):
		return false
	}
}

// waitFor returns the first event not looked at yet that satisfies ok,
// and the events before it; it fails the test after waitTimeout.
func (r *recorder) waitFor(what string, ok func(Event) bool) (Event, []Event) {
	r.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		for i := r.next; i < len(r.all); i++ {
			if ok(r.all[i]) {
				before := r.all[r.next:i]
				r.next = i + 1
				return r.all[i], before
			}
		}
		if left := time.Until(deadline); left <= 0 || !r.receive(left) {
			r.t.Fatalf("timed out waiting for %s; got %v", what, r.all[r.next:])
		}
	}
}

// expect waits for event e.
func (r *recorder) expect(e Event) []Event {
	r.t.Helper()
	_, before := r.waitFor(e.String(), func(g Event) bool { return g == e })
	return before
}

// sync writes a new sentinel file and waits for its event: everything the
// test did before has been reported. It returns the events before it.
func (r *recorder) sync() []Event {
	r.t.Helper()
	name := fmt.Sprintf("sentinel-%d", r.seq.Add(1))
	if err := os.WriteFile(filepath.Join(r.root, name), nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return r.expect(Event{Kind: Closed, Path: name})
}

// quiet receives until no event came for d, and returns what came.
func (r *recorder) quiet(d time.Duration) []Event {
	r.t.Helper()
	deadline := time.Now().Add(4 * waitTimeout)
	for r.receive(d) {
		if time.Now().After(deadline) {
			r.t.Fatal("events never stopped")
		}
	}
	evs := r.all[r.next:]
	r.next = len(r.all)
	return evs
}

func has(evs []Event, e Event) bool {
	for _, g := range evs {
		if g == e {
			return true
		}
	}
	return false
}

func hasPath(evs []Event, pred func(string) bool) bool {
	for _, e := range evs {
		if pred(e.Path) || e.From != "" && pred(e.From) {
			return true
		}
	}
	return false
}

func under(dir string) func(string) bool {
	return func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, root, from, to string) {
	t.Helper()
	// Not os.Rename, which refuses to replace a directory.
	if err := unix.Rename(filepath.Join(root, from), filepath.Join(root, to)); err != nil {
		t.Fatal(err)
	}
}

// setSysctl writes value to the sysctl file path and returns a function
// that restores the old value; it is also restored at the end of the test.
// It returns false if the file cannot be written (not root).
func setSysctl(t *testing.T, path, value string) (restore func(), ok bool) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return nil, false
	}
	restore = sync.OnceFunc(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Errorf("restore %s: %v", path, err)
		}
	})
	t.Cleanup(restore)
	return restore, true
}

// fanotifyUsable says whether this process can watch a tree in the
// temporary directory with fanotify, and if not, why.
var fanotifyUsable = sync.OnceValues(func() (bool, string) {
	dir, err := os.MkdirTemp("", "fanotify-probe-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	w, err := New(dir, Options{Backend: Fanotify})
	if err != nil {
		return false, err.Error()
	}
	w.Close()
	return true, ""
})

// requireFanotify skips the test, saying why, when fanotify cannot be used
// here (CI runs the tests as root, where it can).
func requireFanotify(t *testing.T) {
	t.Helper()
	if ok, why := fanotifyUsable(); !ok {
		t.Skipf("fanotify backend unavailable: %s", why)
	}
}

// backends are the backends each backend-independent test runs against;
// "fanotify-moves" is fanotify as on kernels before 5.17, where a rename
// comes as MOVED_FROM and MOVED_TO rather than one FAN_RENAME.
var backends = []struct {
	name     string
	backend  Backend
	noRename bool
}{
	{"inotify", Inotify, false},
	{"fanotify", Fanotify, false},
	{"fanotify-moves", Fanotify, true},
}

// forBackends runs test once per backend, each as a subtest named after the
// backend, with opt.Backend set; fanotify-moves only runs in
// forRenameBackends, for tests of renames.
func forBackends(t *testing.T, opt Options, test func(t *testing.T, opt Options)) {
	t.Helper()
	runBackends(t, opt, false, test)
}

// forRenameBackends is forBackends with fanotify-moves too.
func forRenameBackends(t *testing.T, opt Options, test func(t *testing.T, opt Options)) {
	t.Helper()
	runBackends(t, opt, true, test)
}

func runBackends(t *testing.T, opt Options, moves bool, test func(t *testing.T, opt Options)) {
	t.Helper()
	for _, b := range backends {
		if b.noRename && !moves {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			if b.backend == Fanotify {
				requireFanotify(t)
			}
			noRenameForTest = b.noRename
			defer func() { noRenameForTest = false }()
			o := opt
			o.Backend = b.backend
			test(t, o)
		})
	}
}

// wantWatches checks the number of inotify watches; fanotify uses none.
func wantWatches(t *testing.T, w *Watcher, want int) {
	t.Helper()
	if w.Backend() != Inotify {
		want = 0
	}
	if got := w.Watches(); got != want {
		t.Errorf("Watches() = %d, want %d", got, want)
	}
}

// privateTmpfs mounts a tmpfs of its own on a new directory, unmounted at
// the end of the test, for a test that needs a file system no other
// process writes to. It skips the test if it cannot mount (not root).
func privateTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("fsmirror-test", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
