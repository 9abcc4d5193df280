package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// TestWatch_FanOut mirrors one source to two local destinations and one over
// SSH. The SSH one is taken down in the middle of the changes: the local
// ones must converge while it is down, and it must converge once it is back.
func TestWatch_FanOut(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, dst1, outside := srcDstOut(t)
	dst2 := filepath.Join(filepath.Dir(dst1), "dst2")
	dst3 := filepath.Join(filepath.Dir(dst1), "dst3")
	testutil.NastyTree(t, src)
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	root := os.Geteuid() == 0
	flags, dest3 := sshDest(t, s, dst3)
	args := append([]string{"-v"}, flags...)
	args = append(args, "--to", dst2, "--to", dest3, src, dst1)
	w := startWatch(t, args...)
	waitFor(t, w, readyTimeout, func() string {
		if n := strings.Count(w.stderr.String(), "fsmirror: watching "); n < 3 {
			return "not all three destinations have done their initial sync"
		}
		return ""
	})

	chaos := func(d time.Duration, seed uint64) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if _, err := testutil.Chaos(ctx, src, testutil.ChaosOptions{Seed: seed, Workers: 2, Chown: root, Outside: outside}); err != nil {
			t.Fatal(err)
		}
	}
	chaos(2*time.Second, seed)
	// Down: the open connection dropped, and no new ones.
	if s.KillSessions() == 0 {
		t.Fatal("no ssh session to kill")
	}
	s.Stop()
	chaos(3*time.Second, seed+1)
	waitMirror(t, w, src, dst1, convergeTimeout, watchDiffOpt())
	waitMirror(t, w, src, dst2, convergeTimeout, watchDiffOpt())
	if d := diffs(src, dst3, watchDiffOpt()); len(d) == 0 {
		t.Fatal("the destination that is down is a mirror already: the test did not test a destination that is down")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, w, src, dst3, convergeTimeout, watchDiffOpt())
	w.settle(t)
	w.stop(t, os.Interrupt)
	for _, d := range []string{dst1, dst2, dst3} {
		verifyMirror(t, src, d)
	}
	out := w.stderr.String()
	if !strings.Contains(out, "dst3: destination unreachable") || !strings.Contains(out, "dst3: destination reachable again") {
		t.Errorf("fsmirror did not say the SSH destination was unreachable:\n%s", tail(out, 20))
	}
}
