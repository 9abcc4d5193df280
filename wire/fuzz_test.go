package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/local"
)

func frame(typ byte, msg []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(msg)+1))
	return append(append(b, typ), msg...)
}

// fuzzSeeds are valid and nearly valid request streams.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	req := func(typ byte, build func(e *enc)) []byte {
		var e enc
		e.uint(1)
		build(&e)
		return frame(typ, e.b)
	}
	entry := fsmirror.Entry{Type: fsmirror.TypeFile, Mode: 0o644, Size: 3, Mtime: 1}
	seeds = append(seeds,
		req(msgApply, func(e *enc) {
			encodeOp(e, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "f", Entry: entry})
			e.byte1(dataInline)
			e.bytes([]byte("abc"))
		}),
		req(msgApply, func(e *enc) {
			encodeOp(e, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
			e.byte1(dataNone)
		}),
		req(msgApply, func(e *enc) {
			encodeOp(e, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: "evil/l", Entry: fsmirror.Entry{Type: fsmirror.TypeSymlink, Target: "/etc"}})
			e.byte1(dataNone)
		}),
		req(msgApply, func(e *enc) {
			encodeOp(e, &fsmirror.Op{Kind: fsmirror.OpRename, Path: "g", From: "evil", Entry: entry})
			e.byte1(dataNone)
		}),
		req(msgReadDir, func(e *enc) { e.string("evil") }),
		req(msgSignature, func(e *enc) { e.string("f"); e.uint(2048) }),
		append(req(msgApply, func(e *enc) {
			encodeOp(e, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "evil/x", Entry: entry})
			e.byte1(dataStreamed)
		}), append(req(msgData, func(e *enc) { e.uint(0); e.bytes([]byte("abc")) }),
			req(msgEnd, func(e *enc) { e.int(3); e.bytes(nil); e.bool(false) })...)...),
	)
	return seeds
}

// FuzzServer feeds arbitrary frames to a server after a valid hello: it
// must never panic, never hang, and never write outside its root, which
// holds a symlink to a directory outside.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	fz := newFuzzRoots(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, outside, remove := fz.next(t)
		defer remove()
		store, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		fz.serve(t, &Server{Store: store, Version: "fuzz", MaxInFlight: 64}, data)
		if names, _ := os.ReadDir(outside); len(names) != 0 {
			t.Fatalf("written outside the root: %v", names)
		}
	})
}

// fuzzRoots gives each fuzz input a fresh root directory holding a symlink
// "evil" to a directory outside it, and serves the input after a valid
// hello.
type fuzzRoots struct {
	base  string
	n     int
	hello []byte
}

func newFuzzRoots(f *testing.F) *fuzzRoots {
	var hello enc
	hello.string(magic)
	hello.uint(ProtocolVersion)
	hello.uint(0)
	return &fuzzRoots{base: f.TempDir(), hello: frame(msgHello, hello.b)}
}

// next makes the root of the next input and returns it with the directory
// outside it and the function that removes the root.
func (fz *fuzzRoots) next(t *testing.T) (dir, outside string, remove func()) {
	fz.n++
	dir = filepath.Join(fz.base, "root", filepath.Base(t.Name())+string(rune('a'+fz.n%26)))
	outside = filepath.Join(fz.base, "outside")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(outside, 0o755)
	os.Symlink(outside, filepath.Join(dir, "evil"))
	return dir, outside, func() { os.RemoveAll(dir) }
}

// serve runs srv on the hello and data, and fails if it does not finish.
func (fz *fuzzRoots) serve(t *testing.T, srv *Server, data []byte) {
	in := io.MultiReader(bytes.NewReader(fz.hello), bytes.NewReader(data))
	done := make(chan struct{})
	go func() {
		srv.Serve(context.Background(), in, io.Discard)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish a finite input")
	}
}

// FuzzDecodeOp checks that every op that decodes has clean paths.
func FuzzDecodeOp(f *testing.F) {
	var e enc
	encodeOp(&e, &fsmirror.Op{Kind: fsmirror.OpRename, Path: "a/b", From: "c"})
	f.Add(e.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := dec{b: b}
		op := decodeOp(&d)
		if d.err != nil {
			return
		}
		if !fsmirror.IsValidPath(op.Path) || !fsmirror.IsValidPath(op.From) {
			t.Fatalf("decoded an op with a bad path: %q %q", op.Path, op.From)
		}
		var again enc
		encodeOp(&again, &op)
		d2 := dec{b: again.b}
		if op2 := decodeOp(&d2); d2.err != nil || op2 != op {
			t.Fatalf("op does not survive a round trip: %+v vs %+v (%v)", op, op2, d2.err)
		}
	})
}

// FuzzAuth feeds arbitrary frames after a valid hello to a server that
// wants a token: a wrong token, a path that leaves the tree or anything
// malformed is refused, and no request is ever applied before a granted
// token, nor outside the directory it grants. The tree holds a symlink
// to a directory outside.
func FuzzAuth(f *testing.F) {
	req := func(typ byte, build func(e *enc)) []byte {
		var e enc
		build(&e)
		return frame(typ, e.b)
	}
	auth := func(token, path string) []byte {
		return req(msgAuth, func(e *enc) { encodeAuth(e, &Auth{Token: token, Path: path, Create: true}) })
	}
	for _, a := range [][]byte{auth("t", "granted"), auth("t", "evil/x"), auth("t", ".."), auth("wrong", "granted"), nil} {
		for _, s := range fuzzSeeds() {
			f.Add(append(append([]byte(nil), a...), s...))
		}
	}
	fz := newFuzzRoots(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, outside, remove := fz.next(t)
		defer remove()
		var store *local.Target
		granted := false
		srv := &Server{Version: "fuzz", MaxInFlight: 64, Authenticate: func(_ context.Context, a Auth) (Store, error) {
			if a.Token != "t" {
				return nil, errors.New("token refused")
			}
			granted = true
			var err error
			store, err = local.NewBelow(dir, a.Path, a.Create)
			return store, err
		}}
		fz.serve(t, srv, data)
		if store != nil {
			store.Close()
		}
		if names, _ := os.ReadDir(outside); len(names) != 0 {
			t.Fatalf("written outside the root: %v", names)
		}
		if !granted {
			if names, _ := os.ReadDir(dir); len(names) != 1 {
				t.Fatalf("written without a granted token: %v", names)
			}
		}
	})
}
