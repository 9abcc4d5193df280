package watch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestLimitError_Error(t *testing.T) {
	for _, tc := range []struct {
		err  LimitError
		want string
	}{
		{LimitError{Limit: 8192, Needed: 12345},
			"inotify watch limit reached: fs.inotify.max_user_watches is 8192, the tree needs at least 12345 (one per directory, shared with the user's other programs); raise it with: sysctl fs.inotify.max_user_watches=21504"},
		{LimitError{Limit: 192908, NamespaceLimit: 20, Needed: 31},
			"inotify watch limit reached: user.max_inotify_watches is 20 in this user namespace (fs.inotify.max_user_watches is 192908), the tree needs at least 31 (one per directory, shared with the user's other programs); raise it with: sysctl user.max_inotify_watches=1024"},
		{LimitError{Needed: 7},
			"inotify watch limit reached: fs.inotify.max_user_watches could not be read, the tree needs at least 7 (one per directory, shared with the user's other programs); raise it with: sysctl fs.inotify.max_user_watches=1024"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if !errors.Is(&tc.err, ErrWatchLimit) {
			t.Errorf("%v does not wrap ErrWatchLimit", &tc.err)
		}
	}
}

func TestWatcher_limitError(t *testing.T) {
	dir := t.TempDir()
	oldFs, oldNs := maxUserWatchesFile, nsMaxWatchesFile
	t.Cleanup(func() { maxUserWatchesFile, nsMaxWatchesFile = oldFs, oldNs })
	maxUserWatchesFile, nsMaxWatchesFile = filepath.Join(dir, "fs"), filepath.Join(dir, "ns")
	write(t, dir, "fs", "100\n")
	write(t, dir, "ns", "2147483647\n")

	root := t.TempDir()
	mkdirs(t, root, "a/b", "c", "skip/x")
	w, _ := start(t, root, Options{Exclude: func(rel string, _ bool) bool { return rel == "skip" }})
	w.mu.Lock()
	e := w.limitError("a/b")
	w.mu.Unlock()
	want := LimitError{Path: "a/b", Limit: 100, Needed: 4}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	write(t, dir, "ns", "50\n")
	if e := w.limitError(""); e.NamespaceLimit != 50 {
		t.Errorf("NamespaceLimit = %d, want 50", e.NamespaceLimit)
	}
}

// TestWatcher_LimitUserNS runs out of watches for real, in a user namespace
// of its own whose limit (user.max_inotify_watches) it lowers: the global
// fs.inotify.max_user_watches is left alone.
func TestWatcher_LimitUserNS(t *testing.T) {
	if os.Getenv("WATCH_TEST_USERNS") == "1" {
		limitChild(t)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatcher_LimitUserNS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "WATCH_TEST_USERNS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Skipf("cannot start a process in a new user namespace: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("child skipped:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func limitChild(t *testing.T) {
	if err := os.WriteFile(nsMaxWatchesFile, []byte("20"), 0o644); err != nil {
		t.Skipf("cannot set the user namespace's limit: %v", err)
	}

	t.Run("New", func(t *testing.T) {
		root := t.TempDir()
		for i := range 30 {
			mkdirs(t, root, fmt.Sprintf("d%02d", i))
		}
		w, err := New(root, Options{})
		if err == nil {
			w.Close()
			t.Fatal("New succeeded with 31 directories and 20 watches")
		}
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrWatchLimit) {
			t.Fatalf("got %v, want a *LimitError", err)
		}
		if le.Needed != 31 || le.NamespaceLimit != 20 || le.Limit == 0 {
			t.Errorf("got %+v", *le)
		}
		for _, s := range []string{"fs.inotify.max_user_watches is ", "user.max_inotify_watches is 20", "needs at least 31", root} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("message %q lacks %q", err, s)
			}
		}
		t.Log(err)
	})

	t.Run("keep going", func(t *testing.T) {
		// In a user namespace of its own, the process has no
		// CAP_SYS_ADMIN over the file system: Auto cannot use fanotify
		// and says why.
		root := t.TempDir()
		for i := range 30 {
			mkdirs(t, root, fmt.Sprintf("d%02d", i))
		}
		var o onLimitRecorder
		var w *Watcher
		var err error
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(10 * time.Millisecond) {
			if w, err = New(root, Options{Backend: Auto, OnLimit: o.onLimit}); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer closeAndCheck(t, w)
		calls := o.get()
		if len(calls) != 1 || calls[0] == nil || calls[0].Unwatched == 0 {
			t.Fatalf("OnLimit calls: %v, want one with unwatched directories", calls)
		}
		if w.Backend() != Inotify || !errors.Is(calls[0].Fanotify, ErrNoFanotify) {
			t.Errorf("backend %v, fanotify: %v; want inotify, and why not fanotify", w.Backend(), calls[0].Fanotify)
		}
		for _, s := range []string{"needs at least 31", "CAP_SYS_ADMIN", "rescanned every 1m0s"} {
			if !strings.Contains(calls[0].Error(), s) {
				t.Errorf("message %q lacks %q", calls[0], s)
			}
		}
		t.Log(calls[0])
	})

	t.Run("running", func(t *testing.T) {
		root := t.TempDir()
		mkdirs(t, root, "a", "b")
		var w *Watcher
		var err error
		// The watches of the failed New are released when its instance
		// is closed; allow the kernel a moment.
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(10 * time.Millisecond) {
			if w, err = New(root, Options{}); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer closeAndCheck(t, w)
		for i := range 30 {
			mkdirs(t, root, fmt.Sprintf("n%02d", i))
		}
		timeout := time.After(waitTimeout)
		for {
			select {
			case _, ok := <-w.Events():
				if ok {
					continue
				}
				var le *LimitError
				if err := w.Err(); !errors.As(err, &le) || le.Needed < 21 {
					t.Fatalf("Err() = %v, want a *LimitError", err)
				}
				t.Log(w.Err())
				return
			case <-timeout:
				t.Fatal("watcher did not stop")
			}
		}
	})
}

// onLimitRecorder collects what a watcher tells OnLimit.
type onLimitRecorder struct {
	mu    sync.Mutex
	calls []*LimitError
}

func (o *onLimitRecorder) onLimit(e *LimitError) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, e)
}

func (o *onLimitRecorder) get() []*LimitError {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

// With OnLimit, a watcher that runs out of watches keeps going: what it
// watches is reported as usual, what it could not watch is rescanned every
// LimitRescan, and it says when everything is watched again.
func TestWatcher_Partial(t *testing.T) {
	old := maxWatchesForTest
	maxWatchesForTest = 6
	t.Cleanup(func() { maxWatchesForTest = old })
	root := t.TempDir()
	for i := range 8 {
		mkdirs(t, root, fmt.Sprintf("d%d/sub", i))
	}
	var o onLimitRecorder
	w, r := start(t, root, Options{OnLimit: o.onLimit, LimitRescan: 100 * time.Millisecond, PairWait: 100 * time.Millisecond})
	calls := o.get()
	if len(calls) != 1 || calls[0] == nil {
		t.Fatalf("OnLimit calls after New: %v, want one *LimitError", calls)
	}
	e := calls[0]
	if e.Needed != 17 || e.Unwatched == 0 || e.Rescan != 100*time.Millisecond || !errors.Is(e, ErrWatchLimit) {
		t.Errorf("got %+v", *e)
	}
	for _, s := range []string{"needs at least 17", "rescanned every 100ms"} {
		if !strings.Contains(e.Error(), s) {
			t.Errorf("message %q lacks %q", e, s)
		}
	}
	t.Log(e)
	if got := w.Watches(); got != 6 {
		t.Errorf("Watches() = %d, want 6", got)
	}
	// Which directories are unwatched depends on the order of the
	// directory: find one of each.
	var watched, unwatched string
	w.mu.Lock()
	for i := range 8 {
		d := fmt.Sprintf("d%d", i)
		if c := w.top.children[d]; c == nil && unwatched == "" {
			unwatched = d
		} else if c != nil && c.children["sub"] != nil && watched == "" {
			watched = d
		}
	}
	w.mu.Unlock()
	if watched == "" || unwatched == "" {
		t.Fatalf("no watched or no unwatched directory with 6 watches for 17 directories")
	}
	write(t, root, watched+"/sub/f", "")
	r.expect(Event{Kind: Closed, Path: watched + "/sub/f"})
	// Nothing says this one changed but the periodic rescan.
	write(t, root, unwatched+"/sub/f", "")
	r.expect(Event{Kind: Rescan, Path: unwatched, IsDir: true})
	// A new directory in a watched one cannot be watched either.
	mkdirs(t, root, watched+"/new")
	r.expect(Event{Kind: Rescan, Path: watched + "/new", IsDir: true})
	r.expect(Event{Kind: Rescan, Path: watched + "/new", IsDir: true}) // periodic
	// Deleting watched directories frees watches: everything is watched
	// at the next rescan, which OnLimit hears of.
	for i := range 8 {
		if d := fmt.Sprintf("d%d", i); d != watched && d != unwatched {
			if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(waitTimeout)
	for calls = o.get(); len(calls) < 2 && time.Now().Before(deadline); calls = o.get() {
		r.receive(50 * time.Millisecond)
	}
	if len(calls) != 2 || calls[1] != nil {
		t.Fatalf("OnLimit calls: %v, want a second one with nil", calls)
	}
	if got := w.Watches(); got != 6 { // root watched watched/sub watched/new unwatched unwatched/sub
		t.Errorf("Watches() = %d, want 6", got)
	}
	write(t, root, unwatched+"/sub/g", "")
	r.expect(Event{Kind: Closed, Path: unwatched + "/sub/g"})
	if err := w.Err(); err != nil {
		t.Error(err)
	}
}
