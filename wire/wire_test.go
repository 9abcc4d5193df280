package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/targettest"
	"github.com/fsmirror/fsmirror/target/local"
)

// serve starts a Server on a local target at dir and returns a Client
// connected to it through a socket pair, and the server's result.
func serve(t testing.TB, dir string, o ClientOptions) (*Client, <-chan error) {
	t.Helper()
	a, result := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClient(ctx, a, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, result
}

// startServer starts a Server on a local target at dir, serving one end of
// a socket pair, and returns the other end and the server's result.
func startServer(t testing.TB, dir string) (net.Conn, <-chan error) {
	t.Helper()
	store, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b := socketPair(t)
	result := make(chan error, 1)
	go func() {
		srv := &Server{Store: store, Version: "test"}
		result <- srv.Serve(context.Background(), b, b)
		b.Close()
		store.Close()
	}()
	return a, result
}

// socketPair returns the two ends of a Unix stream socket pair: real
// kernel buffers, like the pipes to ssh.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	a, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

func TestClient_Conformance(t *testing.T) {
	for _, o := range []struct {
		name string
		opt  ClientOptions
	}{
		{"Plain", ClientOptions{}},
		{"CompressAndDeltas", ClientOptions{Compress: true, DeltaMin: 1}},
	} {
		t.Run(o.name, func(t *testing.T) {
			targettest.Run(t, func(t *testing.T) (fsmirror.Target, string) {
				dir := t.TempDir()
				c, _ := serve(t, dir, o.opt)
				return c, dir
			})
		})
	}
}

// fileOp is a write of the content of the file at path.
func fileOp(t *testing.T, path, dst string, replace bool) (*fsmirror.Op, func()) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	e := fsmirror.Entry{Type: fsmirror.TypeFile, Mode: 0o644, Size: fi.Size(), Mtime: fi.ModTime().UnixNano(), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	return &fsmirror.Op{Kind: fsmirror.OpWrite, Path: dst, Entry: e, Data: f, Replace: replace}, func() { f.Close() }
}

func TestClient_Delta(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	c, _ := serve(t, dst, ClientOptions{})
	data := make([]byte, 8<<20)
	rand.Read(data)
	srcFile := filepath.Join(src, "log")
	if err := os.WriteFile(srcFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	op, done := fileOp(t, srcFile, "log", false)
	if err := c.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	done()
	// Append 64 KiB: only about that much may cross.
	more := make([]byte, 64<<10)
	rand.Read(more)
	f, _ := os.OpenFile(srcFile, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(more)
	f.Close()
	before := c.BytesSent()
	op, done = fileOp(t, srcFile, "log", true)
	if err := c.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	done()
	sent := c.BytesSent() - before
	got, _ := os.ReadFile(filepath.Join(dst, "log"))
	if !bytes.Equal(got, append(data, more...)) {
		t.Fatalf("patched file differs from the source (%d bytes, want %d)", len(got), len(data)+len(more))
	}
	if limit := int64(2 * len(more)); sent > limit {
		t.Fatalf("appending %d bytes sent %d bytes, more than %d: not a delta", len(more), sent, limit)
	}
	t.Logf("append of %d bytes to %d sent %d bytes", len(more), len(data), sent)

	t.Run("BaseGoneSendsWhole", func(t *testing.T) {
		os.Remove(filepath.Join(dst, "log"))
		op, done := fileOp(t, srcFile, "log", true)
		defer done()
		if err := c.Apply(ctx, op); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(dst, "log"))
		if !bytes.Equal(got, append(data, more...)) {
			t.Fatal("whole write after a failed delta differs from the source")
		}
	})
	t.Run("BaseNotAFileSendsWhole", func(t *testing.T) {
		os.Remove(filepath.Join(dst, "log"))
		os.Symlink("elsewhere", filepath.Join(dst, "log"))
		op, done := fileOp(t, srcFile, "log", true)
		defer done()
		if err := c.Apply(ctx, op); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(dst, "log")); err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(data)+len(more)) {
			t.Fatalf("after a write over a symlink: %v %v", fi, err)
		}
	})
}

// rawConn speaks frames to a Server directly, as a hostile client would.
type rawConn struct {
	t      *testing.T
	c      net.Conn
	fr     *frameReader
	result <-chan error
	dir    string
}

func rawServe(t *testing.T) *rawConn {
	t.Helper()
	dir := t.TempDir()
	a, result := startServer(t, dir)
	a.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { a.Close() })
	return &rawConn{t: t, c: a, fr: newFrameReader(a, MaxFrame), result: result, dir: dir}
}

func (r *rawConn) send(typ byte, msg []byte) {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(msg)+1))
	hdr[4] = typ
	r.c.Write(append(hdr[:], msg...))
}

// apply sends op as request id, a write with the one byte "x" inline.
func (r *rawConn) apply(id uint64, op *fsmirror.Op) {
	var e enc
	e.uint(id)
	encodeOp(&e, op)
	if op.Kind == fsmirror.OpWrite {
		e.byte1(dataInline)
		e.bytes([]byte("x"))
	} else {
		e.byte1(dataNone)
	}
	r.send(msgApply, e.b)
}

func (r *rawConn) hello(version uint64) {
	var e enc
	e.string(magic)
	e.uint(version)
	e.uint(0)
	r.send(msgHello, e.b)
}

// expect reads frames until one of type typ, and returns it.
func (r *rawConn) expect(typ byte) []byte {
	r.t.Helper()
	for range 100 {
		got, msg, err := r.fr.read()
		if err != nil {
			r.t.Fatalf("waiting for message type %d: %v", typ, err)
		}
		if got == typ {
			return bytes.Clone(msg)
		}
	}
	r.t.Fatalf("no message type %d in 100 frames", typ)
	return nil
}

// closed checks that the server ended the connection with a protocol error.
func (r *rawConn) closed() {
	r.t.Helper()
	select {
	case err := <-r.result:
		if err == nil || !(errors.Is(err, ErrProtocol) || errors.Is(err, ErrMalformed)) {
			r.t.Fatalf("server ended with %v, want a protocol error", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("server did not close the connection")
	}
}

func TestServer_VersionMismatch(t *testing.T) {
	r := rawServe(t)
	r.hello(ProtocolVersion + 1)
	d := dec{b: r.expect(msgError)}
	_, err, fatal := decodeError(&d)
	msg := err.Error()
	if !fatal || !strings.Contains(msg, "version 2") || !strings.Contains(msg, "version 1") {
		t.Fatalf("mismatch answered with %q (fatal %v); want both versions named", msg, fatal)
	}
	r.closed()
}

func TestServer_NotAClient(t *testing.T) {
	r := rawServe(t)
	r.c.Write([]byte("SSH-2.0-OpenSSH\r\n"))
	r.closed()
}

func TestServer_HostilePaths(t *testing.T) {
	outside := t.TempDir()
	for _, p := range []string{"..", "../x", "/etc/passwd", "a/../../x", "a//b", "./x", "x/", "a\x00b"} {
		for _, kind := range []fsmirror.OpKind{fsmirror.OpWrite, fsmirror.OpMkdir, fsmirror.OpRename, fsmirror.OpDelete} {
			t.Run(kind.String()+"_"+strings.ReplaceAll(p, "/", "|"), func(t *testing.T) {
				r := rawServe(t)
				os.Symlink(outside, filepath.Join(r.dir, "evil"))
				r.hello(ProtocolVersion)
				r.expect(msgHello)
				op := &fsmirror.Op{Kind: kind, Path: p, Entry: fsmirror.Entry{Type: fsmirror.TypeFile}}
				if kind == fsmirror.OpRename {
					op.Path, op.From = "ok", p
				}
				r.apply(1, op)
				d := dec{b: r.expect(msgError)}
				if _, _, fatal := decodeError(&d); !fatal {
					t.Fatal("a bad path did not end the connection")
				}
				r.closed()
			})
		}
	}
	t.Run("ThroughSymlink", func(t *testing.T) {
		r := rawServe(t)
		os.Symlink(outside, filepath.Join(r.dir, "evil"))
		r.hello(ProtocolVersion)
		r.expect(msgHello)
		for i, kind := range []fsmirror.OpKind{fsmirror.OpWrite, fsmirror.OpMkdir, fsmirror.OpSymlink} {
			r.apply(uint64(i+1), &fsmirror.Op{Kind: kind, Path: "evil/x", Entry: fsmirror.Entry{Type: fsmirror.TypeFile, Target: "t"}})
			d := dec{b: r.expect(msgError)}
			if id, err, _ := decodeError(&d); id != uint64(i+1) || err == nil {
				t.Fatalf("%s through a symlink: answer %d %v", kind, id, err)
			}
		}
	})
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Fatalf("written outside the root: %v", names)
	}
}

func TestServer_Malformed(t *testing.T) {
	cases := map[string]func(r *rawConn){
		"HugeFrame":   func(r *rawConn) { r.c.Write([]byte{0xff, 0xff, 0xff, 0xff, msgApply}) },
		"EmptyFrame":  func(r *rawConn) { r.c.Write([]byte{0, 0, 0, 0}) },
		"UnknownType": func(r *rawConn) { r.send(99, []byte{1}) },
		"TruncatedOp": func(r *rawConn) { r.send(msgApply, []byte{1, byte(fsmirror.OpWrite), 200}) },
		"TrailingBytes": func(r *rawConn) {
			var e enc
			e.uint(1)
			e.string("")
			r.send(msgLstat, append(e.b, 0))
		},
		"DataForUnknownRequest": func(r *rawConn) {
			var e enc
			e.uint(7)
			e.uint(0)
			e.bytes([]byte("x"))
			r.send(msgData, e.b)
		},
		"CompressionBomb": func(r *rawConn) {
			var e enc
			e.uint(1)
			encodeOp(&e, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "f", Entry: fsmirror.Entry{Type: fsmirror.TypeFile}})
			e.byte1(dataStreamed)
			r.send(msgApply, e.b)
			e = enc{}
			e.uint(1)
			e.uint(flagDeflate)
			e.bytes(deflateZeros(8 << 20))
			r.send(msgData, e.b)
		},
		"ModeTooLarge": func(r *rawConn) {
			r.apply(1, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: "", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 1 << 20}})
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			r := rawServe(t)
			r.hello(ProtocolVersion)
			r.expect(msgHello)
			send(r)
			r.closed()
			if names, _ := os.ReadDir(r.dir); len(names) != 0 {
				t.Fatalf("a malformed request wrote %v", names)
			}
		})
	}
}

func deflateZeros(n int) []byte {
	var b bytes.Buffer
	w := newDeflater(&b)
	w.Write(make([]byte, n))
	w.Close()
	return b.Bytes()
}

func TestServer_BadPatchLeavesFile(t *testing.T) {
	r := rawServe(t)
	os.WriteFile(filepath.Join(r.dir, "f"), []byte("original content"), 0o644)
	r.hello(ProtocolVersion)
	r.expect(msgHello)
	var e enc
	e.uint(1)
	encodeOp(&e, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "f", Entry: fsmirror.Entry{Type: fsmirror.TypeFile, Mode: 0o644, Size: 3}, Replace: true})
	e.byte1(dataStreamed)
	r.send(msgPatch, e.b)
	// A delta that is only a literal "abc" and END, with a wrong hash.
	delta := []byte{0x72, 0x73, 0x02, 0x36, 0x41, 3, 'a', 'b', 'c', 0}
	e = enc{}
	e.uint(1)
	e.uint(0)
	e.bytes(delta)
	r.send(msgData, e.b)
	e = enc{}
	e.uint(1)
	e.int(3)
	e.bytes(make([]byte, 32))
	e.bool(false)
	r.send(msgEnd, e.b)
	d := dec{b: r.expect(msgError)}
	_, err, fatal := decodeError(&d)
	if fatal || err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a patch with a wrong hash was answered %v (fatal %v)", err, fatal)
	}
	if got, _ := os.ReadFile(filepath.Join(r.dir, "f")); string(got) != "original content" {
		t.Fatalf("a rejected patch changed the file to %q", got)
	}
	r.c.Close()
	if err := <-r.result; err != nil {
		t.Fatalf("server after a client hang-up: %v", err)
	}
	if names, _ := os.ReadDir(r.dir); len(names) != 1 {
		t.Fatalf("temporaries left: %v", names)
	}
}

var _ io.Reader = (*checkedReader)(nil)

func TestClient_DeltaOfRewrittenFile(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	c, _ := serve(t, dst, ClientOptions{})
	a, b := make([]byte, 4<<20), make([]byte, 4<<20)
	rand.Read(a)
	rand.Read(b)
	os.WriteFile(filepath.Join(dst, "f"), a, 0o644)
	os.WriteFile(filepath.Join(src, "f"), b, 0o644)
	before := c.BytesSent()
	op, done := fileOp(t, filepath.Join(src, "f"), "f", true)
	defer done()
	if err := c.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "f")); !bytes.Equal(got, b) {
		t.Fatal("a rewritten file sent after a given-up delta differs from the source")
	}
	// The delta is given up after about a MiB: what crosses is the
	// file once plus that.
	if sent := c.BytesSent() - before; sent > int64(len(b))+(2<<20) {
		t.Fatalf("sent %d bytes for a rewritten %d-byte file", sent, len(b))
	}
}

func TestBudget_Bounds(t *testing.T) {
	b := budget{max: 10}
	b.acquire(6)
	b.acquire(4)
	done := make(chan struct{})
	go func() {
		b.acquire(5) // over the budget: waits for a release
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("acquire went over the budget")
	case <-time.After(100 * time.Millisecond):
	}
	b.release(6)
	<-done
	// One request larger than the whole budget still goes, alone.
	b.release(4)
	b.release(5)
	b.acquire(50)
	b.release(50)
}
