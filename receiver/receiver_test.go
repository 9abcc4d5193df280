package receiver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/targettest"
	"github.com/fsmirror/fsmirror/receiver"
	"github.com/fsmirror/fsmirror/target/remote"
	"github.com/fsmirror/fsmirror/wire"
)

// These tests run a real receiver on 127.0.0.1 and reach it through
// target/remote, with a real TLS handshake and a pinned key.

const (
	aliceToken = "alice-0123456789abcdef"
	bobToken   = "bob-0123456789abcdef"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is a running receiver with clients alice and bob.
type fixture struct {
	addr, fp, root string
	log            *logBuffer
	done           chan error
	stop           context.CancelFunc
}

func start(t *testing.T, tune func(*receiver.Server)) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), log: &logBuffer{}, done: make(chan error, 1)}
	alice, err := receiver.NewClient("alice", aliceToken, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := receiver.NewClient("bob", bobToken, "bob")
	if err != nil {
		t.Fatal(err)
	}
	return f.run(t, []receiver.Client{alice, bob}, tune)
}

func (f *fixture) run(t *testing.T, clients []receiver.Client, tune func(*receiver.Server)) *fixture {
	t.Helper()
	keyDir := filepath.Join(t.TempDir(), "key")
	fp, _, err := receiver.Init(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	cert, fp2, err := receiver.LoadCert(filepath.Join(keyDir, receiver.KeyFile), filepath.Join(keyDir, receiver.CertFile))
	if err != nil || fp2 != fp {
		t.Fatalf("LoadCert: %v; fingerprint %s, Init said %s", err, fp2, fp)
	}
	f.fp = fp
	srv, err := receiver.New(f.root, clients, cert)
	if err != nil {
		t.Fatal(err)
	}
	srv.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv.Version = "test"
	if tune != nil {
		tune(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { f.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(20 * time.Second):
			t.Error("the receiver did not stop")
		}
		if t.Failed() {
			t.Logf("receiver log:\n%s", f.log)
		}
	})
	return f
}

// dial connects as the client with token to path.
func (f *fixture) dial(t *testing.T, fp, token, path string) (*remote.Target, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tg, err := remote.New(ctx, &remote.TLS{Addr: f.addr, Fingerprint: fp}, wire.ClientOptions{Auth: &wire.Auth{Token: token, Path: path, Create: true}})
	if err == nil {
		t.Cleanup(func() { tg.Close() })
	}
	return tg, err
}

func mkdirOp(path string) *fsmirror.Op {
	return &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: path, Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}}
}

func TestServer_Conformance(t *testing.T) {
	f := start(t, nil)
	n := 0
	targettest.Run(t, func(t *testing.T) (fsmirror.Target, string) {
		n++
		dir := fmt.Sprintf("conformance-%d", n)
		tg, err := f.dial(t, f.fp, aliceToken, dir)
		if err != nil {
			t.Fatal(err)
		}
		return tg, filepath.Join(f.root, "alice", dir)
	})
}

// listTree returns every path below dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != dir {
			paths = append(paths, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	return paths
}

func TestServer_Refuses(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	// Bob's subtree holds a file; alice's a symlink to bob's subtree.
	bob, err := f.dial(t, f.fp, bobToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Apply(ctx, mkdirOp("mine")); err != nil {
		t.Fatal(err)
	}
	alice, err := f.dial(t, f.fp, aliceToken, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"../bob", filepath.Join(f.root, "bob")} {
		name := "link" + fmt.Sprint(len(target))
		if err := alice.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: name, Entry: fsmirror.Entry{Type: fsmirror.TypeSymlink, Mode: 0o777, Target: target}}); err != nil {
			t.Fatal(err)
		}
		// Through the symlink, as the directory to write in or as a path
		// to write: both refused.
		if _, err := f.dial(t, f.fp, aliceToken, name); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("alice reached bob's subtree through symlink %s as her directory: %v", name, err)
		}
		if err := alice.Apply(ctx, mkdirOp(name+"/evil")); err == nil {
			t.Errorf("alice wrote through symlink %s", name)
		}
	}
	before := listTree(t, f.root)

	for _, c := range []struct {
		name, fp, token, path, want string
	}{
		{"WrongFingerprint", strings.Repeat("ab", 32), aliceToken, "x", "does not match the pinned fingerprint"},
		{"WrongToken", f.fp, "mallory-0123456789abcdef", "x", "token refused"},
		{"EmptyToken", f.fp, "", "x", "token refused"},
		{"BobsToken", f.fp, bobToken, "../alice", "malformed"},
		{"DotDot", f.fp, aliceToken, "..", "malformed"},
		{"DotDotBelow", f.fp, aliceToken, "x/../../bob", "malformed"},
		{"Absolute", f.fp, aliceToken, "/" + f.root + "/bob", "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg, err := f.dial(t, c.fp, c.token, c.path)
			if err == nil {
				tg.Apply(ctx, mkdirOp("evil"))
				t.Fatalf("connected; want an error with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want one with %q", err, c.want)
			}
		})
	}
	// Naming bob's subdir only ever names a directory of alice's.
	tg, err := f.dial(t, f.fp, aliceToken, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Apply(ctx, mkdirOp("mine")); err != nil {
		t.Fatal(err)
	}
	after := listTree(t, f.root)
	want := append(before, "alice/bob", "alice/bob/mine")
	if fmt.Sprint(sorted(after)) != fmt.Sprint(sorted(want)) {
		t.Fatalf("the tree changed:\nbefore %q\nafter  %q", before, after)
	}
	if got := listTree(t, filepath.Join(f.root, "bob")); fmt.Sprint(got) != "[mine]" {
		t.Fatalf("bob's subtree holds %q, want only what bob wrote", got)
	}
	if n := strings.Count(f.log.String(), "unknown token"); n != 2 {
		t.Errorf("%d failed attempts logged, want 2:\n%s", n, f.log)
	}
	if !strings.Contains(f.log.String(), "remote=127.0.0.1:") {
		t.Errorf("failures are logged without the peer's address:\n%s", f.log)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestServer_RateLimit(t *testing.T) {
	f := start(t, func(s *receiver.Server) { s.FailBurst, s.FailEvery = 2, time.Hour })
	for i := range 2 {
		if _, err := f.dial(t, f.fp, "wrong-0123456789abcdef", ""); err == nil || !strings.Contains(err.Error(), "token refused") {
			t.Fatalf("wrong token %d: %v", i, err)
		}
	}
	// Now even the right token is not looked at.
	_, err := f.dial(t, f.fp, aliceToken, "")
	if err == nil || !strings.Contains(err.Error(), "too many failed attempts") {
		t.Fatalf("after the allowed failures: %v, want a refusal", err)
	}
	if names := listTree(t, f.root); len(names) != 0 {
		t.Fatalf("refused clients wrote %q", names)
	}
}

func TestServer_MaxConns(t *testing.T) {
	f := start(t, func(s *receiver.Server) { s.MaxConns = 1 })
	first, err := f.dial(t, f.fp, aliceToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dial(t, f.fp, bobToken, ""); err == nil {
		t.Fatal("a second connection was served, beyond MaxConns 1")
	}
	if !strings.Contains(f.log.String(), "too many connections") {
		t.Errorf("the refusal is not logged:\n%s", f.log)
	}
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.dial(t, f.fp, bobToken, "")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection once the first closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServer_Timeouts(t *testing.T) {
	f := start(t, func(s *receiver.Server) {
		s.IdleTimeout = 300 * time.Millisecond
		s.HandshakeTimeout = 300 * time.Millisecond
	})
	t.Run("Handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("a silent connection was not closed: %v", err)
		}
	})
	t.Run("IdleReconnects", func(t *testing.T) {
		ctx := context.Background()
		tg, err := f.dial(t, f.fp, aliceToken, "idle")
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Apply(ctx, mkdirOp("a")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(f.log.String(), "closed idle connection") {
			if time.Now().After(deadline) {
				t.Fatal("the idle connection was not closed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The next request goes out on a new connection, without an
		// ErrTargetDown that would make a mirror compare everything.
		if err := tg.Apply(ctx, mkdirOp("b")); err != nil {
			t.Fatalf("after an idle close: %v", err)
		}
		if _, err := os.Stat(filepath.Join(f.root, "alice/idle/b")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServer_Shutdown(t *testing.T) {
	f := start(t, nil)
	tg, err := f.dial(t, f.fp, aliceToken, "")
	if err != nil {
		t.Fatal(err)
	}
	f.stop()
	select {
	case err := <-f.done:
		f.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := tg.Apply(context.Background(), mkdirOp("late")); !errors.Is(err, fsmirror.ErrTargetDown) {
		t.Fatalf("a request after the receiver stopped: %v, want ErrTargetDown", err)
	}
}

func TestNew_Clients(t *testing.T) {
	mk := func(name, token, subdir string) receiver.Client {
		c, err := receiver.NewClient(name, token, subdir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := mk("a", aliceToken, "a")
	for _, c := range []struct {
		name    string
		clients []receiver.Client
	}{
		{"None", nil},
		{"SameName", []receiver.Client{a, mk("a", bobToken, "b")}},
		{"SameToken", []receiver.Client{a, mk("b", aliceToken, "b")}},
		{"Nested", []receiver.Client{a, mk("b", bobToken, "a/b")}},
		{"WholeRoot", []receiver.Client{a, mk("b", bobToken, ".")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := receiver.New(t.TempDir(), c.clients, tlsCertForTest(t)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, bad := range [][3]string{{"", aliceToken, "a"}, {"a b", aliceToken, "a"}, {"a", "short", "a"}, {"a", aliceToken, "../a"}} {
		if _, err := receiver.NewClient(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("NewClient%q accepted", bad)
		}
	}
}

// TestServer_Replace connects twice to one directory, as a client that
// lost its connection does: the second connection replaces the first, whose
// requests can no longer be applied.
func TestServer_Replace(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	first, err := f.dial(t, f.fp, aliceToken, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(ctx, mkdirOp("a")); err != nil {
		t.Fatal(err)
	}
	second, err := f.dial(t, f.fp, aliceToken, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Apply(ctx, mkdirOp("b")); err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(ctx, mkdirOp("late")); !errors.Is(err, fsmirror.ErrTargetDown) {
		t.Fatalf("a request on the replaced connection: %v, want ErrTargetDown", err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "alice/d/late")); err == nil {
		t.Fatal("the replaced connection still wrote")
	}
	if !strings.Contains(f.log.String(), "replaces the one before it") {
		t.Errorf("the replacement is not logged:\n%s", f.log)
	}
	// Another directory of the same client is another session.
	other, err := f.dial(t, f.fp, aliceToken, "e")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Apply(ctx, mkdirOp("x")); err != nil {
		t.Fatal(err)
	}
	if err := second.Apply(ctx, mkdirOp("c")); err != nil {
		t.Fatalf("a connection to another directory replaced this one: %v", err)
	}
}
