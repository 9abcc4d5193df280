package rsync

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The tests in this file run a real rsync daemon on 127.0.0.1 (see
// testutil.NewRsyncd) and look at what a Target leaves in its module.

const mtime = int64(1_600_000_000_123_456_789)

type daemonEnv struct {
	d        *testutil.Rsyncd
	src, dst string
	tg       *Target
	mu       sync.Mutex
	changes  []Change
}

// newDaemonEnv starts a daemon and returns a Target from an empty source to
// the directory "m" of its module.
func newDaemonEnv(t *testing.T, opt Options) *daemonEnv {
	t.Helper()
	e := &daemonEnv{d: testutil.NewRsyncd(t, testutil.RsyncdOptions{}), src: t.TempDir()}
	e.dst = filepath.Join(e.d.Path, "m")
	dest, err := ParseURL(e.d.URL("m"))
	if err != nil {
		t.Fatal(err)
	}
	opt.PasswordFile = e.d.PasswordFile
	opt.Report = func(c Change) {
		e.mu.Lock()
		e.changes = append(e.changes, c)
		e.mu.Unlock()
	}
	e.tg, err = New(e.src, dest, opt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// took returns the changes reported since the last call.
func (e *daemonEnv) took() []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.changes
	e.changes = nil
	return c
}

func diffOpt() testutil.DiffOptions {
	return testutil.DiffOptions{Owner: os.Geteuid() == 0}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTarget_SyncAll(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t, Options{})
	ctx := context.Background()
	testutil.NastyTree(t, e.src)
	testutil.Build(t, e.src,
		testutil.Dir(".", 0o750).Mtime(mtime),
		testutil.File("linked/a", "hard-linked", 0o644).Mtime(mtime),
		testutil.HardLink("linked/b", "linked/a"),
		testutil.Fifo("fifo", 0o600).Mtime(mtime),
		testutil.Symlink("dangling", "no/such/target").Mtime(mtime),
	)
	must(t, e.tg.SyncAll(ctx))
	testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	if c := e.took(); len(c) < 100 {
		t.Errorf("only %d changes reported for the first sync", len(c))
	}

	// Deletes, and a second run that changes nothing.
	must(t, os.RemoveAll(filepath.Join(e.src, "dirs")))
	must(t, os.Remove(filepath.Join(e.src, "fifo")))
	must(t, e.tg.SyncAll(ctx))
	testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	must(t, e.tg.SyncAll(ctx))
	if c := e.took(); slices.ContainsFunc(c, func(c Change) bool { return c.Kind != fsmirror.OpDelete && c.Path != "" }) {
		t.Errorf("a sync with nothing to do reported changes: %+v", c)
	}
}

func TestTarget_SyncPaths(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t, Options{})
	ctx := context.Background()
	testutil.Build(t, e.src,
		testutil.Dir(".", 0o755).Mtime(mtime),
		testutil.File("keep", "keep", 0o644).Mtime(mtime),
		testutil.File("d/f", "f", 0o644).Mtime(mtime),
		testutil.File("d/g", "g", 0o644).Mtime(mtime),
		testutil.File("tree/a/b/c", "c", 0o644).Mtime(mtime),
		testutil.Dir("tree/a/b", 0o755).Mtime(mtime),
		testutil.Dir("tree/a", 0o755).Mtime(mtime),
		testutil.Dir("tree", 0o755).Mtime(mtime),
		testutil.Dir("d", 0o755).Mtime(mtime),
	)
	must(t, e.tg.SyncAll(ctx))
	testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	e.took()
	path := func(rel string) string { return filepath.Join(e.src, rel) }

	t.Run("files", func(t *testing.T) {
		must(t, os.WriteFile(path("d/new\nline"), []byte("new"), 0o600))
		must(t, os.WriteFile(path("d/\xff\xfe"), []byte("bad utf-8"), 0o644))
		must(t, os.WriteFile(path("d/f"), []byte("changed"), 0o644))
		must(t, os.Remove(path("d/g")))
		must(t, os.Symlink("d/f", path("link")))
		must(t, e.tg.SyncPaths(ctx, []string{"d/new\nline", "d/\xff\xfe", "d/f", "d/g", "link", ""}, nil))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
		got := e.took()
		for _, want := range []Change{{Kind: fsmirror.OpWrite, Path: "d/new\nline"}, {Kind: fsmirror.OpWrite, Path: "d/\xff\xfe"},
			{Kind: fsmirror.OpDelete, Path: "d/g"}, {Kind: fsmirror.OpSymlink, Path: "link"}} {
			if !slices.Contains(got, want) {
				t.Errorf("change %+v not reported; got %+v", want, got)
			}
		}
	})
	t.Run("directory metadata only", func(t *testing.T) {
		must(t, os.Chmod(path("tree"), 0o700))
		must(t, os.WriteFile(filepath.Join(e.dst, "tree", "extra"), []byte("not in the source"), 0o644))
		must(t, os.Chtimes(filepath.Join(e.dst, "tree"), time.Unix(0, mtime), time.Unix(0, mtime)))
		must(t, e.tg.SyncPaths(ctx, []string{"tree"}, nil))
		if fi, err := os.Stat(filepath.Join(e.dst, "tree", "extra")); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("a directory's path (not tree) touched its contents: %v", err)
		}
		must(t, os.Remove(filepath.Join(e.dst, "tree", "extra")))
		must(t, os.Chtimes(filepath.Join(e.dst, "tree"), time.Unix(0, mtime), time.Unix(0, mtime)))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	})
	t.Run("trees and a directory rename", func(t *testing.T) {
		// tree -> moved: the old path is deleted, the new one sent whole.
		must(t, os.Rename(path("tree"), path("moved")))
		must(t, os.MkdirAll(path("new/x/y"), 0o755))
		must(t, os.WriteFile(path("new/x/y/z"), []byte("z"), 0o644))
		must(t, os.WriteFile(filepath.Join(e.dst, "moved-extra"), []byte("dst only, at the root"), 0o644))
		must(t, os.Chmod(path("d"), 0o711)) // a directory's own metadata, with trees: a second run
		must(t, e.tg.SyncPaths(ctx, []string{"tree", "d", ""}, []string{"moved", "new"}))
		must(t, os.Remove(filepath.Join(e.dst, "moved-extra")))
		must(t, e.tg.SyncPaths(ctx, []string{""}, nil))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	})
	t.Run("a tree deletes below it", func(t *testing.T) {
		must(t, os.MkdirAll(filepath.Join(e.dst, "new/x/stale/deeper"), 0o755))
		must(t, os.WriteFile(filepath.Join(e.dst, "new/x/stale/deeper/f"), nil, 0o644))
		must(t, os.RemoveAll(path("new/x/y")))
		must(t, e.tg.SyncPaths(ctx, nil, []string{"new/x"}))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	})
	t.Run("a deleted directory goes with its contents", func(t *testing.T) {
		must(t, os.RemoveAll(path("moved")))
		must(t, e.tg.SyncPaths(ctx, []string{"moved", ""}, nil))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	})
	t.Run("a file replaced by a directory and back", func(t *testing.T) {
		must(t, os.Remove(path("keep")))
		must(t, os.MkdirAll(path("keep/in"), 0o755))
		must(t, e.tg.SyncPaths(ctx, []string{""}, []string{"keep"}))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
		must(t, os.RemoveAll(path("keep")))
		must(t, os.WriteFile(path("keep"), []byte("a file again"), 0o644))
		must(t, e.tg.SyncPaths(ctx, []string{"keep", ""}, nil))
		testutil.AssertMirror(t, e.src, e.dst, diffOpt())
	})
	t.Run("invalid paths", func(t *testing.T) {
		for _, p := range []string{"../x", "/abs", "a//b", "."} {
			if err := e.tg.SyncPaths(ctx, []string{p}, nil); err == nil {
				t.Errorf("SyncPaths(%q) succeeded", p)
			}
		}
		if err := e.tg.SyncPaths(ctx, nil, []string{""}); err == nil {
			t.Errorf("SyncPaths with the root as a tree succeeded")
		}
	})
}

func TestTarget_Excludes(t *testing.T) {
	t.Parallel()
	flt, err := filter.New([]string{"*.tmp", "cache/", "!keep.tmp", "/top-only"})
	must(t, err)
	e := newDaemonEnv(t, Options{Filter: flt})
	ctx := context.Background()
	testutil.Build(t, e.src,
		testutil.File("a.tmp", "excluded", 0o644),
		testutil.File("keep.tmp", "re-included", 0o644),
		testutil.File("sub/cache/x", "excluded dir", 0o644),
		testutil.File("sub/cache.txt", "not a dir", 0o644),
		testutil.File("top-only", "excluded at the top", 0o644),
		testutil.File("sub/top-only", "not excluded below", 0o644),
	)
	// On the destination, excluded paths that the source does not have
	// must survive --delete.
	testutil.Build(t, e.dst,
		testutil.File("dst.tmp", "excluded, dst only", 0o600),
		testutil.File("other/cache/y", "excluded, dst only", 0o600),
		testutil.File("other/gone", "not excluded, dst only", 0o600),
	)
	must(t, e.tg.SyncAll(ctx))
	ignore := func(rel string) bool { return flt.Excluded(rel, false) || flt.Excluded(rel, true) }
	for _, p := range []string{"dst.tmp", "other/cache/y", "keep.tmp", "sub/cache.txt", "sub/top-only"} {
		if _, err := os.Lstat(filepath.Join(e.dst, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"a.tmp", "sub/cache", "top-only", "other/gone"} {
		if _, err := os.Lstat(filepath.Join(e.dst, p)); err == nil {
			t.Errorf("%s is on the destination", p)
		}
	}
	// A tree run and a path run with the same rules.
	testutil.Build(t, e.src,
		testutil.File("new/b.tmp", "excluded", 0o644),
		testutil.File("new/cache/z", "excluded", 0o644),
		testutil.File("new/ok", "sent", 0o644),
	)
	must(t, os.Remove(filepath.Join(e.src, "keep.tmp")))
	must(t, e.tg.SyncPaths(ctx, []string{"keep.tmp", "dst.tmp", ""}, []string{"new"}))
	if _, err := os.Lstat(filepath.Join(e.dst, "dst.tmp")); err != nil {
		t.Errorf("an excluded path was deleted: %v", err)
	}
	must(t, os.RemoveAll(filepath.Join(e.dst, "other")))
	must(t, os.Remove(filepath.Join(e.dst, "dst.tmp")))
	must(t, e.tg.SyncPaths(ctx, []string{""}, nil))
	testutil.AssertMirror(t, e.src, e.dst, testutil.DiffOptions{Owner: os.Geteuid() == 0, Ignore: ignore})
}

func TestTarget_NoDelete(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t, Options{NoDelete: true})
	ctx := context.Background()
	testutil.Build(t, e.src, testutil.File("a", "a", 0o644), testutil.File("d/b", "b", 0o644))
	must(t, e.tg.SyncAll(ctx))
	must(t, os.Remove(filepath.Join(e.src, "a")))
	must(t, os.RemoveAll(filepath.Join(e.src, "d")))
	must(t, e.tg.SyncPaths(ctx, []string{"a", "d"}, nil))
	must(t, e.tg.SyncAll(ctx))
	for _, p := range []string{"a", "d/b"} {
		if _, err := os.Lstat(filepath.Join(e.dst, p)); err != nil {
			t.Errorf("with NoDelete, %s was deleted: %v", p, err)
		}
	}
}

func TestNew_noRsync(t *testing.T) {
	// Not parallel: it changes PATH.
	t.Setenv("PATH", t.TempDir())
	_, err := New(t.TempDir(), Dest{Daemon: true, Host: "h", Module: "m"}, Options{})
	if !errors.Is(err, ErrNoRsync) || !strings.Contains(err.Error(), "install rsync") {
		t.Errorf("New without rsync in PATH: %v", err)
	}
}

func TestTarget_Errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newDaemonEnv(t, Options{})
	must(t, os.WriteFile(filepath.Join(e.src, "f"), []byte("x"), 0o644))
	t.Run("wrong password", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong")
		must(t, os.WriteFile(wrong, []byte("wrong\n"), 0o600))
		tg, err := New(e.src, e.tg.Dest(), Options{PasswordFile: wrong})
		must(t, err)
		err = tg.SyncAll(ctx)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Class != Fatal || errors.Is(err, fsmirror.ErrTargetDown) ||
			!strings.Contains(err.Error(), "auth failed") || !strings.Contains(err.Error(), "--password-file") {
			t.Errorf("wrong password: %v", err)
		}
	})
	t.Run("unknown module", func(t *testing.T) {
		dest := e.tg.Dest()
		dest.Module = "nosuchmodule"
		tg, err := New(e.src, dest, Options{PasswordFile: e.d.PasswordFile})
		must(t, err)
		if err := tg.SyncAll(ctx); err == nil || errors.Is(err, fsmirror.ErrTargetDown) || !strings.Contains(err.Error(), "Unknown module") {
			t.Errorf("unknown module: %v", err)
		}
	})
	t.Run("bad argument", func(t *testing.T) {
		tg, err := New(e.src, e.tg.Dest(), Options{PasswordFile: e.d.PasswordFile, Args: []string{"--no-such-option"}})
		must(t, err)
		err = tg.SyncPaths(ctx, []string{"f"}, nil)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status != 1 || ee.Class != Fatal {
			t.Errorf("unknown rsync option: %v", err)
		}
	})
	t.Run("daemon down, then back", func(t *testing.T) {
		must(t, e.d.Stop())
		err := e.tg.SyncPaths(ctx, []string{"f"}, nil)
		if !errors.Is(err, fsmirror.ErrTargetDown) {
			t.Errorf("daemon down: %v, want an error wrapping ErrTargetDown", err)
		}
		must(t, e.d.Start())
		must(t, e.tg.SyncPaths(ctx, []string{"f"}, nil))
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := e.tg.SyncAll(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: %v", err)
		}
	})
}

func TestTarget_SSH(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	ctx := context.Background()
	src := t.TempDir()
	dst := filepath.Join(t.TempDir(), "dst")
	dest, err := ParseHostPath(s.User + "@127.0.0.1:" + dst)
	must(t, err)
	tg, err := New(src, dest, Options{SSH: s.Command})
	must(t, err)
	testutil.NastyTree(t, src)
	testutil.Build(t, src, testutil.Dir(".", 0o751).Mtime(mtime))
	must(t, tg.SyncAll(ctx))
	testutil.AssertMirror(t, src, dst, diffOpt())
	must(t, os.WriteFile(filepath.Join(src, "files", "new\nline"), []byte("changed"), 0o644))
	must(t, os.RemoveAll(filepath.Join(src, "dirs")))
	must(t, tg.SyncPaths(ctx, []string{"files/new\nline", "dirs", ""}, nil))
	testutil.AssertMirror(t, src, dst, diffOpt())

	t.Run("missing parents", func(t *testing.T) {
		deep := filepath.Join(t.TempDir(), "x", "y", "z")
		dest, err := ParseHostPath(s.User + "@127.0.0.1:" + deep)
		must(t, err)
		tg, err := New(src, dest, Options{SSH: s.Command})
		must(t, err)
		must(t, tg.SyncAll(ctx))
		testutil.AssertMirror(t, src, deep, diffOpt())
	})
	t.Run("no rsync on the far side", func(t *testing.T) {
		tg, err := New(src, dest, Options{SSH: s.Command, RsyncPath: "/no/such/rsync"})
		must(t, err)
		err = tg.SyncAll(ctx)
		if err == nil || errors.Is(err, fsmirror.ErrTargetDown) || !strings.Contains(err.Error(), "--rsync-path") {
			t.Errorf("a missing remote rsync: %v, want a fatal error that mentions --rsync-path\n%s", err, stderrOf(err))
		}
	})
	t.Run("login refused", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "other")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		tg, err := New(src, dest, Options{SSH: strings.Replace(s.Command, s.KeyFile, key, 1) + " -o BatchMode=yes"})
		must(t, err)
		err = tg.SyncAll(ctx)
		if err == nil || errors.Is(err, fsmirror.ErrTargetDown) || !strings.Contains(err.Error(), "ssh refused the login") {
			t.Errorf("a key the server does not know: %v, want a fatal error", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		s.Stop()
		if err := tg.SyncAll(ctx); !errors.Is(err, fsmirror.ErrTargetDown) {
			t.Errorf("sshd down: %v, want an error wrapping ErrTargetDown", err)
		}
		must(t, s.Start())
		must(t, tg.SyncAll(ctx))
	})
}

func stderrOf(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) {
		return "stderr: " + ee.Stderr
	}
	return ""
}

func TestTarget_DryRun(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t, Options{DryRun: true, Checksum: true})
	must(t, os.WriteFile(filepath.Join(e.src, "f"), []byte("x"), 0o644))
	must(t, e.tg.SyncAll(context.Background()))
	if _, err := os.Lstat(filepath.Join(e.dst, "f")); err == nil {
		t.Errorf("a dry run wrote f")
	}
	if got := e.took(); !slices.Contains(got, Change{Kind: fsmirror.OpWrite, Path: "f"}) {
		t.Errorf("a dry run did not report what it would write: %+v", got)
	}
}

func TestTarget_MakesParents(t *testing.T) {
	t.Parallel()
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	src := t.TempDir()
	testutil.Build(t, src, testutil.File("f", "x", 0o644))
	dest, err := ParseURL(d.URL("a/b/c"))
	must(t, err)
	tg, err := New(src, dest, Options{PasswordFile: d.PasswordFile})
	must(t, err)
	must(t, tg.SyncAll(context.Background()))
	testutil.AssertMirror(t, src, filepath.Join(d.Path, "a/b/c"), diffOpt())
}
