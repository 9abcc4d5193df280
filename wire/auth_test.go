package wire

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/local"
)

// authServe starts a Server that grants token "good" the directory of the
// client's choice below dir, and returns the client end of the connection
// and the server's result.
func authServe(t *testing.T, dir string, idle time.Duration) (net.Conn, <-chan error) {
	t.Helper()
	a, b := socketPair(t)
	result := make(chan error, 1)
	go func() {
		var store *local.Target
		srv := &Server{Version: "test", IdleTimeout: idle, Authenticate: func(_ context.Context, a Auth) (Store, error) {
			if a.Token != "good" {
				return nil, errors.New("token refused")
			}
			var err error
			store, err = local.NewBelow(dir, a.Path, a.Create)
			return store, err
		}}
		result <- srv.Serve(context.Background(), b, b)
		b.Close()
		if store != nil {
			store.Close()
		}
	}()
	t.Cleanup(func() { a.Close() })
	return a, result
}

func TestServer_Authenticate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("Granted", func(t *testing.T) {
		dir := t.TempDir()
		conn, _ := authServe(t, dir, 0)
		c, err := NewClient(ctx, conn, ClientOptions{Auth: &Auth{Token: "good", Path: "a/b", Create: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "a/b/d")); err != nil || !fi.IsDir() {
			t.Fatalf("the client's mkdir did not land in its directory: %v", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		conn, _ := authServe(t, t.TempDir(), 0)
		_, err := NewClient(ctx, conn, ClientOptions{Auth: &Auth{Token: "good", Path: "nope"}})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a missing directory without Create: %v, want ErrNotExist", err)
		}
	})
	t.Run("WrongToken", func(t *testing.T) {
		conn, _ := authServe(t, t.TempDir(), 0)
		_, err := NewClient(ctx, conn, ClientOptions{Auth: &Auth{Token: "bad", Create: true}})
		if err == nil || !strings.Contains(err.Error(), "token refused") {
			t.Fatalf("a wrong token: %v, want the server's refusal", err)
		}
	})
	t.Run("NoToken", func(t *testing.T) {
		conn, _ := authServe(t, t.TempDir(), 0)
		c, err := NewClient(ctx, conn, ClientOptions{})
		if err == nil {
			defer c.Close()
			_, err = c.Lstat(ctx, "")
		}
		if err == nil || !strings.Contains(err.Error(), "needs a token") {
			t.Fatalf("a client without a token: %v, want a refusal", err)
		}
	})
	// A hostile client sends requests right behind a wrong token, or a
	// path that leaves its tree: none is applied.
	for name, auth := range map[string]Auth{"RequestsAfterWrongToken": {Token: "bad", Create: true}, "PathOutside": {Token: "good", Path: "..", Create: true}} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			conn, result := authServe(t, filepath.Join(dir, "tree"), 0)
			fr := newFrameReader(conn, MaxFrame)
			send := func(typ byte, e enc) {
				var f []byte
				f = append(f, frame(typ, e.b)...)
				conn.Write(f)
			}
			var e enc
			e.string(magic)
			e.uint(ProtocolVersion)
			e.uint(0)
			send(msgHello, e)
			e = enc{}
			e.string(auth.Token)
			e.string(auth.Path)
			e.bool(auth.Create)
			send(msgAuth, e)
			for i := range 3 {
				e = enc{}
				e.uint(uint64(i + 1))
				encodeOp(&e, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "x", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
				e.byte1(dataNone)
				send(msgApply, e)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if typ, _, err := fr.read(); err != nil || typ != msgHello {
				t.Fatalf("hello: type %d, %v", typ, err)
			}
			typ, msg, err := fr.read()
			if err != nil || typ != msgError {
				t.Fatalf("answer to the token: type %d, %v; want an error", typ, err)
			}
			d := dec{b: msg}
			if _, _, fatal := decodeError(&d); !fatal {
				t.Fatal("the refusal does not end the connection")
			}
			if _, _, err := fr.read(); err == nil {
				t.Fatal("the server answered after refusing the client")
			}
			select {
			case err := <-result:
				if err == nil {
					t.Fatal("the server ended a refused connection without an error")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the server did not end the refused connection")
			}
			if names, _ := os.ReadDir(dir); len(names) != 0 {
				t.Fatalf("a refused client wrote %v", names)
			}
		})
	}
}

func TestServer_IdleTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	const idle = 200 * time.Millisecond
	conn, result := authServe(t, dir, idle)
	c, err := NewClient(ctx, conn, ClientOptions{Auth: &Auth{Token: "good"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A request open longer than the timeout is not idleness: a write
	// whose content is slow to come, after a first chunk.
	pr, pw := io.Pipe()
	first := make([]byte, chunkSize+1)
	go func() {
		pw.Write(first)
		time.Sleep(3 * idle)
		pw.Write([]byte("slow"))
		pw.Close()
	}()
	if err := c.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "f", Data: pr,
		Entry: fsmirror.Entry{Type: fsmirror.TypeFile, Mode: 0o644, Size: int64(len(first)) + 4}}); err != nil {
		t.Fatalf("a write slower than the idle timeout: %v", err)
	}
	if c.Err() != nil {
		t.Fatalf("the connection ended during a request: %v", c.Err())
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("an idle connection was not closed")
	}
	if !c.ClosedIdle() {
		t.Fatalf("the client does not know that it was closed as idle: %v", c.Err())
	}
	if err := <-result; !errors.Is(err, ErrIdle) {
		t.Fatalf("the server ended with %v, want ErrIdle", err)
	}
}

func TestClient_FreeSpace(t *testing.T) {
	c, _ := serve(t, t.TempDir(), ClientOptions{})
	bytes, files, err := c.FreeSpace(context.Background())
	if err != nil || bytes == 0 || files == 0 {
		t.Fatalf("FreeSpace = %d bytes, %d inodes, %v", bytes, files, err)
	}
}
