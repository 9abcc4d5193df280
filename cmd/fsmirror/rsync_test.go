package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The tests in this file mirror through a real rsync daemon and a real
// sshd, both on 127.0.0.1 (testutil.NewRsyncd, testutil.StartSSHD).

// rsyncDiffOpt is what a mirror made with rsync is compared on: all of it,
// owners when root.
func rsyncDiffOpt() testutil.DiffOptions { return testutil.DiffOptions{Owner: os.Geteuid() == 0} }

func TestRsync_Sync(t *testing.T) {
	t.Parallel()
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	src, _, _ := srcDstOut(t)
	testutil.NastyTree(t, src)
	testutil.Build(t, src,
		testutil.File("linked/a", "hard-linked", 0o644),
		testutil.HardLink("linked/b", "linked/a"),
		testutil.File("skip.tmp", "excluded", 0o644),
	)
	dst := filepath.Join(d.Path, "m")
	args := []string{"sync", "-v", "--password-file", d.PasswordFile, "--exclude", "*.tmp", src, d.URL("m")}

	r := runFsmirror(t, append(args[:1:1], append([]string{"--dry-run"}, args[1:]...)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "would write   linked/") || !strings.Contains(r.stdout, "would symlink \"links/new\\nline\" -> \"../files/new\\nline\"") {
		t.Fatalf("sync --dry-run: exit %d, listed:\n%s\n%s", r.code, tail(r.stdout, 10), r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dst, "linked")); err == nil {
		t.Fatalf("sync --dry-run wrote to the destination")
	}

	r = runFsmirror(t, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "write   linked/") {
		t.Fatalf("sync: exit %d, listed:\n%s\n%s", r.code, tail(r.stdout, 10), r.stderr)
	}
	excluded := func(rel string) bool { return rel == "skip.tmp" }
	testutil.AssertMirror(t, src, dst, testutil.DiffOptions{Owner: os.Geteuid() == 0, Ignore: excluded})
	if _, err := os.Lstat(filepath.Join(dst, "skip.tmp")); err == nil {
		t.Errorf("an excluded file was sent")
	}
	r = runFsmirror(t, args...)
	if r.code != 0 || strings.Contains(r.stdout, "write") {
		t.Fatalf("second sync: exit %d, listed:\n%s\n%s", r.code, tail(r.stdout, 10), r.stderr)
	}

	// Several sources go to DEST/<basename>: directories rsync must make
	// below a directory that does not exist yet.
	other := filepath.Join(t.TempDir(), "other")
	testutil.Build(t, other, testutil.File("o", "o", 0o600))
	r = runFsmirror(t, "sync", "--password-file", d.PasswordFile, src, other, d.URL("multi/deeper"))
	if r.code != 0 {
		t.Fatalf("sync of two sources: exit %d\n%s", r.code, r.stderr)
	}
	testutil.AssertMirror(t, other, filepath.Join(d.Path, "multi/deeper/other"), rsyncDiffOpt())
}

func TestRsync_Errors(t *testing.T) {
	t.Parallel()
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	src, _, _ := srcDstOut(t)
	testutil.Build(t, src, testutil.File("f", "x", 0o644))
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"WrongPassword", []string{"sync", "--password-file", wrong, src, d.URL("m")}, nil, 2, "auth failed"},
		{"WrongPasswordWatch", []string{"watch", "--password-file", wrong, src, d.URL("m")}, nil, 2, "auth failed"},
		{"UnknownModule", []string{"sync", "--password-file", d.PasswordFile, src, strings.Replace(d.URL("m"), "/mirror/", "/nomodule/", 1)}, nil, 2, "Unknown module"},
		{"NoRsync", []string{"sync", "--password-file", d.PasswordFile, src, d.URL("m")}, []string{"PATH=" + t.TempDir()}, 2, "need the rsync program"},
		{"NoRsyncWatch", []string{"watch", "--password-file", d.PasswordFile, src, d.URL("m")}, []string{"PATH=" + t.TempDir()}, 2, "need the rsync program"},
		{"NoModule", []string{"sync", src, "rsync://127.0.0.1/"}, nil, 2, "no module"},
		{"DaemonDown", []string{"sync", "--password-file", d.PasswordFile, src, "rsync://fsmirror@127.0.0.1:1/mirror/m"}, nil, 2, "Connection refused"},
		{"DaemonDownWatch", []string{"watch", "--password-file", d.PasswordFile, src, "rsync://fsmirror@127.0.0.1:1/mirror/m"}, nil, 2, "Connection refused"},
		{"PasswordForSSH", []string{"sync", "--rsync", "--password-file", d.PasswordFile, src, "127.0.0.1:/x"}, nil, 2, "--password-file is for rsync://"},
		{"Processes", []string{"watch", "--rsync-processes", "0", src, d.URL("m")}, nil, 2, "--rsync-processes must be at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := fsmirrorCmd(t, ctx, c.args...)
			cmd.Env = append(cmd.Env, c.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "goroutine ") {
				t.Fatalf("fsmirror %q: exit %d, stderr:\n%s\nwant exit %d and a message with %q", c.args, code, stderr.String(), c.code, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(d.Path, "m")); err == nil {
		t.Errorf("a failed setup wrote to the module")
	}
}

// TestRsync_WatchConvergence is the convergence workload through `fsmirror
// watch SRC rsync://...`, the daemon restarted (every connection cut) in
// the middle.
func TestRsync_WatchConvergence(t *testing.T) {
	t.Parallel()
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	without := []testutil.ChaosOp{testutil.ChaosLink, testutil.ChaosAppendLink} // see README: hard links made while watching
	if d.SanitizesSymlinks {
		t.Logf("the rsync daemon cannot chroot (not run by root), so it rewrites symlinks that leave the module: no random symlinks")
		without = append(without, testutil.ChaosSymlink)
	}
	src, _, outside := srcDstOut(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	root := os.Geteuid() == 0
	testutil.NastyTree(t, src)
	if _, err := testutil.Chaos(context.Background(), src, testutil.ChaosOptions{Seed: seed, Ops: 2000, Chown: root, Without: without}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(d.Path, "m")
	w := startWatch(t, "-v", "--password-file", d.PasswordFile, "--rsync-processes", "2", src, d.URL("m"))
	testutil.AssertMirror(t, src, dst, rsyncDiffOpt())

	const duration = 6 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(duration / 2)
		restarted <- d.Restart()
	}()
	stats, err := testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: seed + 1, Chown: root, Outside: outside, Without: without})
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart the rsync daemon: %v", err)
	}
	t.Logf("chaos for %v: %d changes: %v", duration, stats.Total(), stats)
	waitMirror(t, w, src, dst, convergeTimeout, rsyncDiffOpt())
	w.settle(t)
	w.stop(t, os.Interrupt)
	if s := w.stderr.String(); !strings.Contains(s, "trying again") {
		t.Logf("no rsync run failed while the daemon restarted (it fell between runs); stderr:\n%s", tail(s, 20))
	}
}

// TestRsync_WatchSSH mirrors with `fsmirror watch --rsync` to a real sshd:
// a few changes, one of them a rename, which costs a copy here.
func TestRsync_WatchSSH(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, dst, _ := srcDstOut(t)
	testutil.Build(t, src,
		testutil.File("a/f", "f", 0o644),
		testutil.File("new\nline", "nasty", 0o600),
	)
	w := startWatch(t, "-v", "--rsync", "--ssh", s.Command, src, s.User+"@127.0.0.1:"+dst)
	testutil.AssertMirror(t, src, dst, rsyncDiffOpt())
	if err := os.Rename(filepath.Join(src, "a"), filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	testutil.Build(t, src, testutil.File("b/g", "g", 0o640), testutil.Symlink("l", "b/g"))
	if err := os.Remove(filepath.Join(src, "new\nline")); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, w, src, dst, basicTimeout, rsyncDiffOpt())
	w.settle(t)
	w.stop(t, os.Interrupt)
}
