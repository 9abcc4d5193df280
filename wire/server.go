package wire

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	librsync "github.com/balena-os/librsync-go"

	"github.com/fsmirror/fsmirror"
)

// Store is the tree a server applies ops to: a destination, plus reading a
// file's current version to patch a delta against. target/local's Target is
// one.
type Store interface {
	fsmirror.Target
	Open(ctx context.Context, path string) (io.ReadSeekCloser, error)
}

// Server answers one client's requests on one connection.
type Server struct {
	// Store is the tree the requests apply to, unless Authenticate is set.
	Store Store
	// Authenticate, if set, makes the client present an Auth after the
	// hello and before any request, and returns the Store to serve to it,
	// or the error it is refused with: that error's text (and errno, if it
	// wraps one) is sent to the client and the connection closed before
	// any request is read.
	Authenticate func(ctx context.Context, a Auth) (Store, error)
	// IdleTimeout, if positive and the connection has a read deadline
	// (a net.Conn), closes the connection once no request has been open
	// and no frame arrived for that long; the client is told why (see
	// Client.ClosedIdle).
	IdleTimeout time.Duration
	// Version names the server's software in its hello, for the client's
	// messages ("fsmirror 1.2").
	Version string
	// MaxInFlight is the most requests a client may have open at once;
	// more breaks the protocol. 0 means 4096.
	MaxInFlight int
}

// Serve speaks the protocol on r and w until the client closes the
// connection (nil), breaks the protocol (an error wrapping ErrProtocol or
// ErrMalformed), or ctx ends. Requests are served concurrently; Serve
// returns when all of them are done.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &serverConn{
		s:       s,
		store:   s.Store,
		ctx:     ctx,
		fr:      newFrameReader(r, MaxFrame),
		fw:      newFrameWriter(w),
		streams: map[uint64]*stream{},
		max:     s.MaxInFlight,
		held:    budget{max: maxHeld},
	}
	if c.max <= 0 {
		c.max = 4096
	}
	defer c.fw.fail(errConnClosed) // ends the flusher
	if err := c.handshake(); err != nil {
		c.fw.flush()
		return err
	}
	c.jobs = make(chan func())
	for range poolSize {
		go c.worker()
	}
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && s.IdleTimeout > 0 {
		c.deadline = d
		c.mu.Lock()
		c.setIdle()
		c.mu.Unlock()
	}
	err := c.loop()
	if c.deadline != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// Nothing was open and nothing came: tell the client it may
		// reconnect as if nothing happened.
		var e enc
		encodeError(&e, 0, errIdleClose(s.IdleTimeout.String()), true)
		c.fw.write(msgError, e.b)
		err = fmt.Errorf("%w: no request for %v", ErrIdle, s.IdleTimeout)
	}
	cancel()
	c.mu.Lock()
	for _, st := range c.streams {
		st.pw.CloseWithError(errConnClosed)
	}
	c.mu.Unlock()
	c.wg.Wait()
	close(c.jobs)
	c.fw.flush() // the last answers, or the error that ends the connection
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

var errConnClosed = errors.New("connection closed")

type serverConn struct {
	s        *Server
	store    Store
	ctx      context.Context
	deadline interface{ SetReadDeadline(time.Time) error } // nil: no idle timeout
	fr       *frameReader
	fw       *frameWriter
	wg       sync.WaitGroup
	max      int

	mu       sync.Mutex
	streams  map[uint64]*stream // writes and patches whose data is arriving
	inFlight int
	armed    bool // the idle timeout is set
	jobs     chan func()
	held     budget // inline content in memory
}

// stream is the data of one write or patch, arriving in data frames.
type stream struct {
	pw  *io.PipeWriter
	pr  *io.PipeReader
	end endInfo // set before pw is closed
}

type endInfo struct {
	size  int64
	sum   []byte
	abort bool
}

func (c *serverConn) handshake() error {
	typ, msg, err := c.fr.read()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	d := dec{b: msg}
	if typ != msgHello || d.string() != magic {
		return fmt.Errorf("%w: the peer is not an fsmirror client", ErrProtocol)
	}
	version := d.uint()
	d.uint() // features: none defined yet
	if version != ProtocolVersion {
		err := fmt.Errorf("protocol version mismatch: the client speaks version %d, this agent (%s) speaks version %d; run the same fsmirror release on both ends (or use --install-agent)",
			version, c.s.Version, ProtocolVersion)
		var e enc
		encodeError(&e, 0, err, true)
		c.fw.write(msgError, e.b)
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	var e enc
	e.string(magic)
	e.uint(ProtocolVersion)
	e.string(c.s.Version)
	if err := c.fw.write(msgHello, e.b); err != nil || c.s.Authenticate == nil {
		return err
	}
	return c.authenticate()
}

// authenticate reads the client's Auth and opens the Store it grants, or
// refuses the client.
func (c *serverConn) authenticate() error {
	refuse := func(err error) error {
		var e enc
		encodeError(&e, 0, err, true)
		c.fw.write(msgError, e.b)
		return err
	}
	typ, msg, err := c.fr.read()
	if err != nil {
		return fmt.Errorf("read authentication: %w", err)
	}
	if typ != msgAuth {
		return refuse(fmt.Errorf("%w: this receiver needs a token before any request (give the client --token-file)", ErrProtocol))
	}
	d := dec{b: msg}
	a := decodeAuth(&d)
	if err := d.done(); err != nil {
		return refuse(err)
	}
	store, err := c.s.Authenticate(c.ctx, a)
	if err != nil {
		return refuse(err)
	}
	c.store = store
	var e enc
	e.uint(0)
	return c.fw.write(msgOK, e.b)
}

// setIdle arms the idle timeout when no request is open, and disarms it
// otherwise. Called with c.mu held.
func (c *serverConn) setIdle() {
	switch {
	case c.deadline == nil:
	case c.inFlight == 0:
		c.armed = true
		c.deadline.SetReadDeadline(time.Now().Add(c.s.IdleTimeout))
	case c.armed:
		c.armed = false
		c.deadline.SetReadDeadline(time.Time{})
	}
}

// loop reads frames until the connection ends or the client breaks the
// protocol.
func (c *serverConn) loop() error {
	for {
		typ, msg, err := c.fr.read()
		if err != nil {
			return err
		}
		if err := c.frame(typ, msg); err != nil {
			var e enc
			encodeError(&e, 0, err, true)
			c.fw.write(msgError, e.b)
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if c.deadline != nil {
			c.mu.Lock()
			c.setIdle()
			c.mu.Unlock()
		}
	}
}

// frame handles one frame from the client. An error breaks the connection.
func (c *serverConn) frame(typ byte, msg []byte) error {
	d := dec{b: msg}
	switch typ {
	case msgData:
		id, flags, data := d.uint(), d.uint(), d.bytes()
		if err := d.done(); err != nil {
			return err
		}
		return c.data(id, flags, data)
	case msgEnd:
		id := d.uint()
		info := endInfo{size: d.int(), sum: bytes.Clone(d.bytes()), abort: d.bool()}
		if err := d.done(); err != nil {
			return err
		}
		c.mu.Lock()
		st := c.streams[id]
		delete(c.streams, id)
		c.mu.Unlock()
		if st == nil {
			return fmt.Errorf("end of unknown request %d", id)
		}
		st.end = info
		if info.abort {
			st.pw.CloseWithError(errors.New("write aborted by the client"))
		} else {
			st.pw.Close()
		}
		return nil
	}
	id := d.uint()
	streamed := false
	held := 0 // bytes of inline content the request holds until it is done
	var run func() (reply func(*enc) byte, err error)
	switch typ {
	case msgReadDir:
		path := d.path()
		run = func() (func(*enc) byte, error) { return nil, c.readDir(id, path) }
	case msgLstat:
		path := d.path()
		run = func() (func(*enc) byte, error) {
			x, err := c.store.Lstat(c.ctx, path)
			return func(e *enc) byte { e.entry(&x); return msgEntry }, err
		}
	case msgSpace:
		run = func() (func(*enc) byte, error) {
			sp, ok := c.store.(fsmirror.Spacer)
			if !ok {
				return nil, errors.ErrUnsupported
			}
			bytes, files, err := sp.FreeSpace(c.ctx)
			return func(e *enc) byte { e.uint(bytes); e.uint(files); return msgSpaceInfo }, err
		}
	case msgHash:
		path := d.path()
		run = func() (func(*enc) byte, error) {
			h, ok := c.store.(fsmirror.Hasher)
			if !ok {
				return nil, errors.ErrUnsupported
			}
			sum, err := h.Hash(c.ctx, path)
			return func(e *enc) byte { e.bytes(sum); return msgHashReply }, err
		}
	case msgSignature:
		path, blockLen := d.path(), d.uint()
		if d.err == nil && (blockLen < 256 || blockLen > 1<<20) {
			d.fail("block length")
		}
		run = func() (func(*enc) byte, error) { return nil, c.signature(id, path, uint32(blockLen)) }
	case msgApply, msgPatch:
		op := decodeOp(&d)
		how := d.byte1()
		var inline []byte
		if how == dataInline {
			if inline = d.bytes(); len(inline) > chunkSize {
				d.fail("inline data: more than one chunk")
			}
			inline = bytes.Clone(inline)
			held = len(inline)
		} else if how > dataStreamed {
			d.fail("data kind")
		}
		if d.err == nil && (op.Kind == fsmirror.OpWrite) != (how != dataNone) {
			d.fail("data: only a write carries data")
		}
		if d.err == nil && typ == msgPatch && how != dataStreamed {
			d.fail("patch without a streamed delta")
		}
		var st *stream
		streamed = how == dataStreamed
		if d.err == nil && how == dataStreamed {
			st = &stream{}
			st.pr, st.pw = io.Pipe()
			c.mu.Lock()
			if c.streams[id] != nil {
				d.fail("request ID in use")
			} else {
				c.streams[id] = st
			}
			c.mu.Unlock()
		}
		run = func() (func(*enc) byte, error) {
			switch {
			case typ == msgPatch:
				return nil, c.patch(&op, st)
			case st != nil:
				defer st.pr.CloseWithError(errRequestDone)
				op.Data = &checkedReader{r: st.pr, st: st}
			case inline != nil || how == dataInline:
				op.Data = bytes.NewReader(inline)
			}
			return nil, c.store.Apply(c.ctx, &op)
		}
	default:
		return fmt.Errorf("%w: unknown message type %d", ErrMalformed, typ)
	}
	if err := d.done(); err != nil {
		return err
	}
	c.mu.Lock()
	c.inFlight++
	over := c.inFlight > c.max
	c.mu.Unlock()
	if over {
		return fmt.Errorf("more than %d requests in flight", c.max)
	}
	// Content held in memory is bounded: past the budget, the reader waits
	// for requests to finish before it reads more.
	c.held.acquire(held)
	c.wg.Add(1)
	job := func() {
		defer c.wg.Done()
		reply, err := run()
		c.held.release(held)
		c.mu.Lock()
		c.inFlight--
		c.setIdle()
		c.mu.Unlock()
		var e enc
		switch {
		case errors.Is(err, errAnswered):
		case err != nil:
			encodeError(&e, id, err, false)
			c.fw.write(msgError, e.b)
		case reply != nil:
			e.uint(id)
			c.fw.write(reply(&e), e.b)
		default:
			e.uint(id)
			c.fw.write(msgOK, e.b)
		}
	}
	// An idle pooled goroutine takes the request if there is one: its
	// stack has already grown to what applying an op needs. A request
	// whose data is still arriving always gets a goroutine of its own, so
	// that its data never waits behind it in the pool.
	if !streamed {
		select {
		case c.jobs <- job:
			return nil
		default:
		}
	}
	go job()
	return nil
}

// maxHeld bounds the inline content a connection holds in memory.
const maxHeld = 64 << 20

// budget is a count of bytes that acquire waits to keep under max.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	max  int
	used int
}

func (b *budget) acquire(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for b.used > 0 && b.used+n > b.max {
		b.cond.Wait()
	}
	b.used += n
}

func (b *budget) release(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.cond != nil {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// poolSize is the number of long-lived goroutines that serve requests.
const poolSize = 32

func (c *serverConn) worker() {
	for job := range c.jobs {
		job()
	}
}

// How a write's content travels.
const (
	dataNone     = 0
	dataInline   = 1 // in the request itself
	dataStreamed = 2 // in data frames and an end frame that follow
)

var errRequestDone = errors.New("request already answered")

// data passes one chunk to the request it belongs to. The request may have
// failed already; its data is then dropped.
func (c *serverConn) data(id, flags uint64, data []byte) error {
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if st == nil {
		return fmt.Errorf("data for unknown request %d", id)
	}
	if flags&^flagDeflate != 0 {
		return fmt.Errorf("%w: unknown data flags %#x", ErrMalformed, flags)
	}
	if flags&flagDeflate != 0 {
		// At most one chunk comes out of one frame: a bomb stops there.
		out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), chunkSize+1))
		if err != nil || len(out) > chunkSize {
			return fmt.Errorf("%w: bad compressed chunk", ErrMalformed)
		}
		data = out
	}
	st.pw.Write(data) // an error means the request gave up on its data
	return nil
}

// checkedReader reads a write's content and, at its end, checks the size
// (and SHA-256, if the client sent one) of what arrived: a stream that ends
// otherwise is an error, so the file never takes its name.
type checkedReader struct {
	r  io.Reader
	st *stream
	n  int64
	h  hash.Hash
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.h != nil {
		r.h.Write(p[:n])
	}
	if err == io.EOF {
		end := r.st.end
		if end.size != r.n {
			return n, fmt.Errorf("content ended after %d bytes, the client sent %d", r.n, end.size)
		}
		if len(end.sum) > 0 && (r.h == nil || !bytes.Equal(r.h.Sum(nil), end.sum)) {
			return n, errContentMismatch
		}
	}
	return n, err
}

// errContentMismatch travels as EBADMSG: the client then sends the file
// whole.
var errContentMismatch = &textErr{text: "patched content does not match the source's SHA-256", errno: syscall.EBADMSG}

func (c *serverConn) readDir(id uint64, path string) error {
	entries, err := c.store.ReadDir(c.ctx, path)
	if err != nil {
		return err
	}
	// As many frames as it takes, each well under MaxFrame; an empty
	// directory is one frame with no entries.
	for {
		body := enc{}
		n := 0
		for n < len(entries) && len(body.b) < MaxFrame/2 {
			body.entry(&entries[n])
			n++
		}
		entries = entries[n:]
		var e enc
		e.uint(id)
		e.bool(len(entries) > 0)
		e.uint(uint64(n))
		e.b = append(e.b, body.b...)
		if err := c.fw.write(msgEntries, e.b); err != nil || len(entries) == 0 {
			return errAnswered // or the connection is gone and no answer can go out
		}
	}
}

// errAnswered is returned by handlers that sent their answer themselves.
var errAnswered = errors.New("answered")

// signature sends the librsync signature of the file at path.
func (c *serverConn) signature(id uint64, path string, blockLen uint32) error {
	f, err := c.store.Open(c.ctx, path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := &chunkSender{fw: c.fw, id: id, typ: msgSigData}
	if _, err := librsync.Signature(f, w, blockLen, strongLen, librsync.BLAKE2_SIG_MAGIC); err != nil {
		return &fsmirror.PathError{Op: "signature", Path: path, Err: err}
	}
	if w.err != nil {
		return errAnswered
	}
	w.flush(false)
	return errAnswered
}

// strongLen is the length of each block's strong hash in a signature. A
// false match is caught by the SHA-256 of the patched file.
const strongLen = 16

// chunkSender sends what is written to it as frames of one request, each
// with a "more follows" flag.
type chunkSender struct {
	fw  *frameWriter
	id  uint64
	typ byte
	buf []byte
	err error
}

func (w *chunkSender) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for len(w.buf) >= chunkSize && w.err == nil {
		w.send(w.buf[:chunkSize], true)
		w.buf = w.buf[chunkSize:]
	}
	return len(p), w.err
}

func (w *chunkSender) flush(more bool) {
	if w.err == nil {
		w.send(w.buf, more)
		w.buf = w.buf[:0]
	}
}

func (w *chunkSender) send(b []byte, more bool) {
	var e enc
	e.uint(w.id)
	e.bool(more)
	e.bytes(b)
	w.err = w.fw.write(w.typ, e.b)
}

// patch applies the delta arriving on st to the current version of op.Path
// and writes the result as op says.
func (c *serverConn) patch(op *fsmirror.Op, st *stream) error {
	defer st.pr.CloseWithError(errRequestDone)
	base, err := c.store.Open(c.ctx, op.Path)
	if err != nil {
		return err
	}
	defer base.Close()
	pr, pw := io.Pipe()
	patched := make(chan struct{})
	go func() {
		defer close(patched)
		err := librsync.Patch(base, st.pr, pw)
		if err == nil {
			// The end frame follows the delta's end command.
			_, err = io.Copy(io.Discard, st.pr)
		}
		pw.CloseWithError(err)
	}()
	op.Data = &checkedReader{r: pr, st: st, h: sha256.New()}
	err = c.store.Apply(c.ctx, op)
	// Stop the patcher if the write ended first, before base is closed.
	pr.CloseWithError(errRequestDone)
	st.pr.CloseWithError(errRequestDone)
	<-patched
	return err
}
