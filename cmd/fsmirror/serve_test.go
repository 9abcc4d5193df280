package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// receiverProc is a running `fsmirror serve` on 127.0.0.1, with a key of
// its own and one token file per client.
type receiverProc struct {
	root   string
	fp     string
	addr   string
	tokens map[string]string // client name → token file
	cmd    *exec.Cmd
	stderr lockedBuffer
	exited chan struct{}
}

// startReceiver runs `fsmirror serve` for root, with a client of each name
// whose subtree is its name, and waits until it listens.
func startReceiver(t *testing.T, root string, clients []string, extra ...string) *receiverProc {
	t.Helper()
	dir := t.TempDir()
	r := &receiverProc{root: root, tokens: map[string]string{}, exited: make(chan struct{})}
	res := runFsmirror(t, "serve", "init", "--dir", filepath.Join(dir, "key"))
	if res.code != 0 {
		t.Fatalf("serve init: exit %d\n%s", res.code, res.stderr)
	}
	r.fp = strings.TrimSpace(res.stdout)
	args := []string{"serve", "--listen", "127.0.0.1:0", "--root", root,
		"--key", filepath.Join(dir, "key", "key.pem"), "--cert", filepath.Join(dir, "key", "cert.pem")}
	for _, name := range clients {
		r.tokens[name] = writeToken(t, filepath.Join(dir, name+".token"))
		args = append(args, "--allow", name+"="+r.tokens[name]+":"+name)
	}
	r.cmd = fsmirrorCmd(t, context.Background(), append(args, extra...)...)
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			r.cmd.Process.Kill()
			<-r.exited
			t.Errorf("fsmirror serve did not exit on SIGTERM")
		}
		if s := r.stderr.String(); strings.Contains(s, "WARNING: DATA RACE") || strings.Contains(s, "panic: ") {
			t.Errorf("fsmirror serve:\n%s", s)
		} else if t.Failed() {
			t.Logf("fsmirror serve's log:\n%s", tail(s, 60))
		}
	})
	listening := regexp.MustCompile(`serving on (\S+) `)
	deadline := time.Now().Add(readyTimeout)
	for {
		if m := listening.FindStringSubmatch(r.stderr.String()); m != nil {
			r.addr = m[1]
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("fsmirror serve exited: %s\n%s", r.cmd.ProcessState, r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsmirror serve does not listen after %v:\n%s", readyTimeout, r.stderr.String())
		}
	}
}

// writeToken writes a new random token to file and returns file.
func writeToken(t *testing.T, file string) string {
	t.Helper()
	b := make([]byte, 24)
	rand.Read(b)
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// dest returns the destination that client writes path with, inside its
// subtree.
func (r *receiverProc) dest(client, path string) string {
	q := url.Values{"fingerprint": {r.fp}, "token-file": {r.tokens[client]}}
	return "fsmirror://" + r.addr + "/" + path + "?" + q.Encode()
}

// subtree is where client's path lands on the receiver's disk.
func (r *receiverProc) subtree(client, path string) string {
	return filepath.Join(r.root, client, path)
}

// TestServe_Refuses runs the refusals end to end: a wrong fingerprint, a
// wrong token, and a token trying to reach another client's subtree are
// refused with a setup error, and nothing is written.
func TestServe_Refuses(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	r := startReceiver(t, root, []string{"alice", "bob"})
	src, _, _ := srcDstOut(t)
	testutil.Build(t, src, testutil.File("f", "content", 0o644), testutil.Dir("d", 0o755))

	// Bob mirrors; alice plants symlinks to bob's subtree in hers.
	if res := runFsmirror(t, "sync", src, r.dest("bob", "")); res.code != 0 {
		t.Fatalf("bob's sync: exit %d\n%s", res.code, res.stderr)
	}
	links := t.TempDir()
	testutil.Build(t, links, testutil.Symlink("up", "../bob"), testutil.Symlink("abs", r.subtree("bob", "")))
	if res := runFsmirror(t, "sync", links, r.dest("alice", "")); res.code != 0 {
		t.Fatalf("alice's sync: exit %d\n%s", res.code, res.stderr)
	}
	before, err := treeState(root)
	if err != nil {
		t.Fatal(err)
	}

	wrongToken := writeToken(t, filepath.Join(t.TempDir(), "wrong"))
	wrongFP := strings.Repeat("0", 64)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"WrongFingerprint", []string{src, strings.Replace(r.dest("alice", "x"), r.fp, wrongFP, 1)}, "does not match the pinned fingerprint"},
		{"WrongToken", []string{"--token-file", wrongToken, "--fingerprint", r.fp, src, "fsmirror://" + r.addr + "/x"}, "token refused"},
		{"DotDot", []string{src, strings.Replace(r.dest("alice", "x"), "/x?", "/../bob?", 1)}, "without . or .."},
		{"SymlinkUp", []string{src, r.dest("alice", "up")}, "not a directory"},
		{"SymlinkAbsolute", []string{src, r.dest("alice", "abs/d")}, "not a directory"},
		{"ThroughSymlinkToMissing", []string{src, r.dest("alice", "up/new")}, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := runFsmirror(t, append([]string{"sync"}, c.args...)...)
			if res.code != 2 || !strings.Contains(res.stderr, c.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and %q", res.code, res.stderr, c.want)
			}
		})
	}
	if after, _ := treeState(root); after != before {
		t.Fatalf("refused clients changed the receiver's tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Naming bob's subtree in alice's URL names a directory of alice's.
	if res := runFsmirror(t, "sync", src, r.dest("alice", "bob")); res.code != 0 {
		t.Fatalf("alice's sync to /bob: exit %d\n%s", res.code, res.stderr)
	}
	verifyMirror(t, src, r.subtree("alice", "bob"))
	verifyMirror(t, src, r.subtree("bob", ""))
	log := r.stderr.String()
	if !strings.Contains(log, "unknown token") || !strings.Contains(log, "remote=127.0.0.1:") {
		t.Errorf("the failed attempt is not logged with the peer's address:\n%s", log)
	}
}

// TestServe_ManyToOne mirrors three sources into one receiver at once,
// each into its own subtree, under the convergence workload.
func TestServe_ManyToOne(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c"}
	r := startReceiver(t, t.TempDir(), names)
	root := os.Geteuid() == 0
	type mirror struct {
		src, outside string
		w            *watchProc
	}
	ms := make([]*mirror, len(names))
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	for i := range names {
		src, _, outside := srcDstOut(t)
		if _, err := testutil.Chaos(context.Background(), src, testutil.ChaosOptions{Seed: seed + uint64(i), Ops: 500, Chown: root, Outside: outside}); err != nil {
			t.Fatal(err)
		}
		ms[i] = &mirror{src: src, outside: outside}
	}
	for i, name := range names {
		ms[i].w = startWatch(t, "-v", ms[i].src, r.dest(name, "tree"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	errs := make(chan error, len(ms))
	for i, m := range ms {
		go func() {
			stats, err := testutil.Chaos(ctx, m.src, testutil.ChaosOptions{Seed: seed + 10 + uint64(i), Workers: 1, MaxFiles: 600, Chown: root, Outside: m.outside})
			t.Logf("source %s: %d changes", names[i], stats.Total())
			errs <- err
		}()
	}
	for range ms {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms {
		waitMirror(t, m.w, m.src, r.subtree(names[i], "tree"), convergeTimeout, watchDiffOpt())
	}
	for i, m := range ms {
		finish(t, m.w, m.src, r.subtree(names[i], "tree"))
	}
}

// TestServe_Chain mirrors A to receiver B, and B's tree on to receiver C,
// under the convergence workload: C converges to A.
func TestServe_Chain(t *testing.T) {
	t.Parallel()
	b := startReceiver(t, t.TempDir(), []string{"a"})
	c := startReceiver(t, t.TempDir(), []string{"b"})
	a, _, outside := srcDstOut(t)
	root := os.Geteuid() == 0
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	if _, err := testutil.Chaos(context.Background(), a, testutil.ChaosOptions{Seed: seed, Ops: 800, Chown: root, Outside: outside}); err != nil {
		t.Fatal(err)
	}
	atB, atC := b.subtree("a", ""), c.subtree("b", "")
	ab := startWatch(t, "-v", a, b.dest("a", ""))
	bc := startWatch(t, "-v", atB, c.dest("b", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := testutil.Chaos(ctx, a, testutil.ChaosOptions{Seed: seed + 1, Workers: 2, Chown: root, Outside: outside})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: %d changes", stats.Total())
	waitMirror(t, ab, a, atB, convergeTimeout, watchDiffOpt())
	waitMirror(t, bc, a, atC, convergeTimeout, watchDiffOpt())
	finish(t, ab, a, atB)
	finish(t, bc, atB, atC)
	verifyMirror(t, a, atC)
}

// TestServe_DiskFull fills the receiver's small filesystem through the
// sender, then frees space on the receiver: the sender keeps the work,
// waits, and converges; no half-written file is ever visible.
func TestServe_DiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a small tmpfs for the receiver")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): this test needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	// Something else on the receiver's disk that leaves too little room.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, 2<<20+512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startReceiver(t, mnt, []string{"alice"})
	src, _, outside := srcDstOut(t)
	// 3 MiB in 24 files, while 1.5 MiB is free: half of them there at
	// start, the others moved in whole while the receiver is full (a file
	// written in place may be copied when it is still empty, which would
	// be right but would not show whether partial files are visible).
	var first, later []testutil.Node
	for i := range 24 {
		n := testutil.File(fmt.Sprintf("d%d/f%02d", i%3, i), strings.Repeat(string(rune('a'+i)), 128<<10), 0o644)
		if i%2 == 0 {
			first = append(first, n)
		} else {
			later = append(later, n)
		}
	}
	testutil.Build(t, src, first...)
	testutil.Build(t, outside, later...)
	w := startWatch(t, "-v", src, r.dest("alice", "tree"))
	for _, d := range []string{"d0", "d1", "d2"} {
		ents, _ := os.ReadDir(filepath.Join(outside, d))
		for _, e := range ents {
			if err := os.Rename(filepath.Join(outside, d, e.Name()), filepath.Join(src, d, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := r.subtree("alice", "tree")
	waitFor(t, w, basicTimeout, func() string {
		if !strings.Contains(w.stderr.String(), "no space left on device") {
			return "the sender did not report the full disk"
		}
		return ""
	})
	// Whatever is there is whole: a file is absent or complete.
	checkWhole(t, src, dst)
	if names := tempNames(t, mnt); len(names) > 0 {
		t.Errorf("temporaries visible on the full receiver: %q", names)
	}
	time.Sleep(time.Second) // the sender waits, with the work kept
	if !w.running() {
		t.Fatalf("the sender gave up:\n%s", w.output())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, w, src, dst, convergeTimeout, watchDiffOpt())
	finish(t, w, src, dst)
	t.Logf("the sender said:\n%s", tail(w.stderr.String(), 10))
	if !strings.Contains(w.stderr.String(), "reachable again") {
		t.Errorf("the sender did not say it found room again:\n%s", tail(w.stderr.String(), 20))
	}
}

// checkWhole requires every regular file below dst to have the content of
// the file of the same path in src.
func checkWhole(t *testing.T, src, dst string) {
	t.Helper()
	n := 0
	filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		got, err1 := os.ReadFile(p)
		want, err2 := os.ReadFile(filepath.Join(src, rel))
		if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes on the receiver, %d in the source (%v, %v): a partial file is visible", rel, len(got), len(want), err1, err2)
		}
		n++
		return nil
	})
	t.Logf("%d whole files on the full receiver", n)
}
