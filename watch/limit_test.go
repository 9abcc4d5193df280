package watch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
