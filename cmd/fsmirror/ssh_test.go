package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// agentLink returns a path named fsmirror that runs this test binary as
// fsmirror (see TestMain), for --remote-fsmirror: sshd runs it as the agent.
func agentLink(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "fsmirror")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// sshDest returns the flags and the destination argument that mirror to
// the local directory dir through sshd s.
func sshDest(t *testing.T, s *testutil.SSHD, dir string) (flags []string, dest string) {
	return []string{"--ssh", s.Command, "--remote-fsmirror", agentLink(t)}, s.User + "@127.0.0.1:" + dir
}

func TestSSH_Sync(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, dst, _ := srcDstOut(t)
	testutil.NastyTree(t, src)
	testutil.Build(t, src,
		testutil.File("big", strings.Repeat("0123456789", 100_000), 0o640),
		testutil.File("linked/a", "hard-linked", 0o644),
		testutil.HardLink("linked/b", "linked/a"),
	)
	flags, dest := sshDest(t, s, dst)
	r := runFsmirror(t, append(append([]string{"sync", "-v"}, flags...), src, dest)...)
	if r.code != 0 {
		t.Fatalf("sync over ssh: exit %d\n%s\n%s", r.code, tail(r.stdout, 20), r.stderr)
	}
	verifyMirror(t, "-c", src, dst)

	// A second run finds nothing to do.
	r = runFsmirror(t, append(append([]string{"sync", "-v"}, flags...), src, dest)...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("second sync over ssh: exit %d, listed:\n%s\n%s", r.code, tail(r.stdout, 20), r.stderr)
	}

	// ssh://user@host:port/path names the same place.
	testutil.Build(t, src, testutil.File("new", "new", 0o600))
	u := "ssh://" + s.User + "@" + s.Addr + dst
	cmd := strings.Fields(s.Command) // without -p: the URL gives the port
	for i := range cmd {
		if cmd[i] == "-p" {
			cmd = append(cmd[:i], cmd[i+2:]...)
			break
		}
	}
	r = runFsmirror(t, "sync", "--ssh", strings.Join(cmd, " "), "--remote-fsmirror", flags[3], "-z", src, u)
	if r.code != 0 {
		t.Fatalf("sync to %s: exit %d\n%s", u, r.code, r.stderr)
	}
	verifyMirror(t, src, dst)
}

func TestSSH_Errors(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, dst, _ := srcDstOut(t)
	testutil.Build(t, src, testutil.File("f", "x", 0o644))
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"NoAgent", []string{"--ssh", s.Command, "--remote-fsmirror", "/nonexistent/fsmirror", src, "127.0.0.1:" + dst}, "--install-agent"},
		{"NoSSH", []string{"--ssh", "/nonexistent/ssh", src, "127.0.0.1:" + dst}, "/nonexistent/ssh is not installed"},
		{"NoServer", []string{"--ssh", "ssh -o ConnectTimeout=5 -p 1 -F /dev/null", src, "127.0.0.1:" + dst}, "ssh to 127.0.0.1"},
		{"BadPort", []string{src, "ssh://127.0.0.1:0/x"}, "bad port"},
		{"UnknownScheme", []string{src, "ftp://127.0.0.1/x"}, "unknown scheme"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runFsmirror(t, append([]string{"sync"}, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and a short message with %q", r.code, r.stderr, c.want)
			}
		})
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatalf("a failed setup created %s", dst)
	}
}

var (
	builtOnce sync.Once
	builtBin  string
	builtErr  error
)

// fsmirrorBinary builds the fsmirror command once per test run: the remote
// end of --install-agent must be a real binary.
func fsmirrorBinary(t *testing.T) string {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fsmirror-bin-")
		if err != nil {
			builtErr = err
			return
		}
		builtBin = filepath.Join(dir, "fsmirror")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			builtErr = err
			builtBin = string(out)
		}
	})
	if builtErr != nil {
		t.Skipf("cannot build fsmirror (go build: %v: %s)", builtErr, builtBin)
	}
	t.Cleanup(func() {}) // the binary is shared by tests; the temp dir goes with the machine
	return builtBin
}

func TestSSH_InstallAgent(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	bin := fsmirrorBinary(t)
	src, dst, _ := srcDstOut(t)
	testutil.NastyTree(t, src)
	cache := t.TempDir()
	// The agent goes to $XDG_CACHE_HOME/fsmirror on the far side, which is
	// this machine: point it at a directory of the test's own.
	ssh := s.Command + " -o SetEnv=XDG_CACHE_HOME=" + cache
	if out, err := s.Run(context.Background(), "true"); err != nil {
		t.Fatalf("ssh: %v %s", err, out)
	}
	for i := range 2 { // the second run finds the agent installed
		cmd := exec.Command(bin, "sync", "--ssh", ssh, "--install-agent", src, s.User+"@127.0.0.1:"+dst)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: sync --install-agent: %v\n%s", i, err, out)
		}
	}
	installed, _ := filepath.Glob(filepath.Join(cache, "fsmirror", "fsmirror-*"))
	if len(installed) != 1 {
		t.Fatalf("installed agents in %s: %q, want one", cache, installed)
	}
	verifyMirror(t, src, dst)
}

// TestSSH_Convergence runs the convergence workload through a real sshd and
// kills the SSH connection twice in the middle of it: fsmirror must
// reconnect and converge.
func TestSSH_Convergence(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, dst, outside := srcDstOut(t)
	testutil.NastyTree(t, src)
	root := os.Geteuid() == 0
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	if _, err := testutil.Chaos(context.Background(), src, testutil.ChaosOptions{Seed: seed, Ops: 2000, Chown: root, Outside: outside}); err != nil {
		t.Fatal(err)
	}
	flags, dest := sshDest(t, s, dst)
	w := startWatch(t, append(append([]string{"-v"}, flags...), src, dest)...)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	kills := make(chan int, 2)
	go func() {
		for range 2 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			kills <- s.KillSessions()
		}
	}()
	// Two writers: the agent at the far end runs under the race detector too.
	stats, err := testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: seed + 1, Workers: 2, Chown: root, Outside: outside})
	if err != nil {
		t.Fatal(err)
	}
	close(kills)
	killed := 0
	for n := range kills {
		killed += n
	}
	t.Logf("chaos: %d changes; %d ssh sessions killed", stats.Total(), killed)
	if killed == 0 {
		t.Fatal("no ssh session was killed: the test did not test reconnection")
	}
	waitMirror(t, w, src, dst, convergeTimeout, watchDiffOpt())
	finish(t, w, src, dst)
	if t.Failed() {
		t.Logf("fsmirror's last changes:\n%s\nstderr:\n%s", tail(w.stdout.String(), 80), tail(w.stderr.String(), 20))
	}
	if !strings.Contains(w.stderr.String(), "destination unreachable") || !strings.Contains(w.stderr.String(), "reachable again") {
		t.Errorf("fsmirror did not say it lost and found the destination:\n%s", tail(w.stderr.String(), 30))
	}
}
