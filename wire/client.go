package wire

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"syscall"

	librsync "github.com/balena-os/librsync-go"

	"github.com/fsmirror/fsmirror"
)

// ClientOptions tune a Client.
type ClientOptions struct {
	// Compress sends file content deflated, chunk by chunk, where that
	// makes it smaller.
	Compress bool
	// DeltaMin is the size from which a file that replaces another is sent
	// as an rsync-style delta against the far side's version. 0 means
	// DefaultDeltaMin; a negative value sends every file whole.
	DeltaMin int64
	// MaxInFlight is the most requests open at once; 0 means 1024.
	MaxInFlight int
	// Auth, if set, is presented to the server right after the hello, as
	// a receiver of `fsmirror serve` requires.
	Auth *Auth
}

// DefaultDeltaMin is the default ClientOptions.DeltaMin: below it, a
// signature round trip costs more than sending the file.
const DefaultDeltaMin = 256 << 10

// maxSignature bounds the signature a client accepts.
const maxSignature = 64 << 20

// Client sends requests to a Server over one connection. It is a
// fsmirror.Target, safe for concurrent use; requests from many goroutines
// are in flight at once.
//
// When the connection breaks, every open and later request fails with an
// error wrapping fsmirror.ErrTargetDown; the client does not reconnect (see
// target/remote for that).
type Client struct {
	o       ClientOptions
	rwc     io.ReadWriteCloser
	fr      *frameReader
	fw      *frameWriter
	slots   chan struct{}
	nextID  atomic.Uint64
	version string

	mu      sync.Mutex
	pending map[uint64]*call
	err     error
	idle    bool // the server closed the connection as idle, with no request open
	done    chan struct{}
}

var (
	_ fsmirror.Target = (*Client)(nil)
	_ fsmirror.Hasher = (*Client)(nil)
	_ fsmirror.Spacer = (*Client)(nil)
)

// call is one request waiting for its answer.
type call struct {
	done    chan struct{}
	err     error
	entries []fsmirror.Entry
	entry   fsmirror.Entry
	data    []byte
	space   [2]uint64 // free bytes and inodes
}

// NewClient greets the server on rwc and returns a Client, or an error if
// the server does not answer as an fsmirror agent of the same protocol
// version. The client owns rwc and closes it when the connection ends.
func NewClient(ctx context.Context, rwc io.ReadWriteCloser, o ClientOptions) (*Client, error) {
	if o.DeltaMin == 0 {
		o.DeltaMin = DefaultDeltaMin
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	c := &Client{
		o:       o,
		rwc:     rwc,
		fr:      newFrameReader(rwc, MaxFrame),
		fw:      newFrameWriter(rwc),
		slots:   make(chan struct{}, o.MaxInFlight),
		pending: map[uint64]*call{},
		done:    make(chan struct{}),
	}
	hello := make(chan error, 1)
	go func() { hello <- c.handshake() }()
	select {
	case err := <-hello:
		if err != nil {
			rwc.Close()
			return nil, err
		}
	case <-ctx.Done():
		rwc.Close()
		<-hello
		return nil, ctx.Err()
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) handshake() error {
	var e enc
	e.string(magic)
	e.uint(ProtocolVersion)
	e.uint(0) // features
	if err := c.fw.write(msgHello, e.b); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if c.o.Auth != nil {
		// At once, without waiting for the hello: one round trip.
		var e enc
		encodeAuth(&e, c.o.Auth)
		if err := c.fw.write(msgAuth, e.b); err != nil {
			return fmt.Errorf("send authentication: %w", err)
		}
	}
	typ, msg, err := c.fr.read()
	if err != nil {
		return fmt.Errorf("no answer from the agent: %w", err)
	}
	d := dec{b: msg}
	switch typ {
	case msgError:
		_, err, _ := decodeError(&d)
		return err
	case msgHello:
	default:
		return fmt.Errorf("%w: the peer did not answer as an fsmirror agent", ErrProtocol)
	}
	if d.string() != magic {
		return fmt.Errorf("%w: the peer did not answer as an fsmirror agent", ErrProtocol)
	}
	version := d.uint()
	c.version = d.string()
	if d.err != nil {
		return d.err
	}
	if version != ProtocolVersion {
		return fmt.Errorf("protocol version mismatch: this fsmirror speaks version %d, the agent (%s) speaks version %d; run the same fsmirror release on both ends (or use --install-agent)",
			ProtocolVersion, c.version, version)
	}
	if c.o.Auth == nil {
		return nil
	}
	typ, msg, err = c.fr.read()
	if err != nil {
		return fmt.Errorf("no answer to authentication: %w", err)
	}
	d = dec{b: msg}
	switch typ {
	case msgError:
		_, err, _ := decodeError(&d)
		return err
	case msgOK:
		if id := d.uint(); id == 0 && d.done() == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: the peer did not answer the authentication", ErrProtocol)
}

// ServerVersion is the server's software version from its hello.
func (c *Client) ServerVersion() string { return c.version }

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is the error that ended the connection, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ClosedIdle reports whether the server closed the connection because it
// was idle (Server.IdleTimeout), with no request open: nothing is in doubt,
// and a new connection can carry on where this one stopped.
func (c *Client) ClosedIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idle
}

// BytesSent is the number of bytes written to the connection so far.
func (c *Client) BytesSent() int64 { return c.fw.n.Load() }

// BytesReceived is the number of bytes read from the connection so far.
func (c *Client) BytesReceived() int64 { return c.fr.n.Load() }

// Close ends the connection. Requests still open fail.
func (c *Client) Close() error {
	c.fail(errors.New("connection closed"))
	<-c.done
	return nil
}

// fail ends the connection with err, failing every open request.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = fmt.Errorf("%w: %v", fsmirror.ErrTargetDown, err)
	c.idle = errors.Is(err, errServerIdle) && len(c.pending) == 0
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.fw.fail(c.err)
	for _, cl := range pending {
		cl.err = c.err
		close(cl.done)
	}
	c.rwc.Close()
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		typ, msg, err := c.fr.read()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the agent closed the connection")
			}
			c.fail(err)
			return
		}
		if err := c.reply(typ, msg); err != nil {
			c.fail(err)
			return
		}
	}
}

// reply handles one answer from the server.
func (c *Client) reply(typ byte, msg []byte) error {
	d := dec{b: msg}
	if typ == msgError {
		id, err, fatal := decodeError(&d)
		if d.err != nil {
			return d.err
		}
		if fatal || id == 0 {
			if errors.Is(err, syscall.ETIMEDOUT) {
				return fmt.Errorf("%w: %w", errServerIdle, err)
			}
			return fmt.Errorf("the agent ended the connection: %w", err)
		}
		if cl := c.take(id); cl != nil {
			cl.err = err
			close(cl.done)
		}
		return nil
	}
	id := d.uint()
	c.mu.Lock()
	cl := c.pending[id]
	c.mu.Unlock()
	if cl == nil {
		return fmt.Errorf("%w: answer to unknown request %d", ErrProtocol, id)
	}
	finished := true
	switch typ {
	case msgOK:
	case msgEntry:
		cl.entry = d.entry()
	case msgHashReply:
		cl.data = bytes.Clone(d.bytes())
	case msgSpaceInfo:
		cl.space = [2]uint64{d.uint(), d.uint()}
	case msgEntries:
		finished = !d.bool()
		n := d.uint()
		if n > uint64(len(d.b)) {
			d.fail("entry count")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			cl.entries = append(cl.entries, d.entry())
		}
	case msgSigData:
		finished = !d.bool()
		b := d.bytes()
		if len(cl.data)+len(b) > maxSignature {
			d.fail("signature: too large")
		}
		cl.data = append(cl.data, b...)
	default:
		return fmt.Errorf("%w: unknown message type %d", ErrMalformed, typ)
	}
	if err := d.done(); err != nil {
		return err
	}
	if finished {
		c.take(id)
		close(cl.done)
	}
	return nil
}

func (c *Client) take(id uint64) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.pending[id]
	delete(c.pending, id)
	return cl
}

// start registers a request and sends its first frame.
// size is a guess of the message's size, to allocate it once.
func (c *Client) start(ctx context.Context, typ byte, size int, build func(e *enc)) (uint64, *call, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-c.done:
		return 0, nil, c.Err()
	}
	id := c.nextID.Add(1)
	cl := &call{done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		<-c.slots
		return 0, nil, err
	}
	c.pending[id] = cl
	c.mu.Unlock()
	e := enc{b: make([]byte, 0, size)}
	e.uint(id)
	build(&e)
	if err := c.fw.write(typ, e.b); err != nil {
		c.fail(err)
	}
	return id, cl, nil
}

// opSize is about the size of op's encoding, without content.
func opSize(op *fsmirror.Op) int {
	return 128 + len(op.Path) + len(op.From) + len(op.Entry.Name) + len(op.Entry.Target)
}

// wait waits for the answer to a request.
func (c *Client) wait(ctx context.Context, cl *call) error {
	defer func() { <-c.slots }()
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) do(ctx context.Context, typ byte, size int, build func(e *enc)) (*call, error) {
	_, cl, err := c.start(ctx, typ, size, build)
	if err != nil {
		return nil, err
	}
	return cl, c.wait(ctx, cl)
}

// ReadDir lists directory dir on the far side.
func (c *Client) ReadDir(ctx context.Context, dir string) ([]fsmirror.Entry, error) {
	if !fsmirror.IsValidPath(dir) {
		return nil, &fsmirror.PathError{Op: "read directory", Path: dir, Err: errInvalidPath}
	}
	cl, err := c.do(ctx, msgReadDir, 16+len(dir), func(e *enc) { e.string(dir) })
	if err != nil {
		return nil, err
	}
	return cl.entries, nil
}

// Lstat describes path on the far side.
func (c *Client) Lstat(ctx context.Context, path string) (fsmirror.Entry, error) {
	if !fsmirror.IsValidPath(path) {
		return fsmirror.Entry{}, &fsmirror.PathError{Op: "lstat", Path: path, Err: errInvalidPath}
	}
	cl, err := c.do(ctx, msgLstat, 16+len(path), func(e *enc) { e.string(path) })
	if err != nil {
		return fsmirror.Entry{}, err
	}
	return cl.entry, nil
}

// Hash returns the SHA-256 of the file at path, computed on the far side.
func (c *Client) Hash(ctx context.Context, path string) ([]byte, error) {
	if !fsmirror.IsValidPath(path) {
		return nil, &fsmirror.PathError{Op: "hash", Path: path, Err: errInvalidPath}
	}
	cl, err := c.do(ctx, msgHash, 16+len(path), func(e *enc) { e.string(path) })
	if err != nil {
		return nil, err
	}
	return cl.data, nil
}

// FreeSpace returns the bytes and inodes left for new files on the far
// side's filesystem.
func (c *Client) FreeSpace(ctx context.Context) (bytes, files uint64, err error) {
	cl, err := c.do(ctx, msgSpace, 16, func(*enc) {})
	if err != nil {
		return 0, 0, err
	}
	return cl.space[0], cl.space[1], nil
}

// Apply makes op true on the far side. A write's content is read from
// op.Data until EOF; a file that replaces another and is at least DeltaMin
// bytes is sent as a delta when op.Data is an io.ReaderAt.
func (c *Client) Apply(ctx context.Context, op *fsmirror.Op) error {
	if !fsmirror.IsValidPath(op.Path) || !fsmirror.IsValidPath(op.From) {
		// The server would close the connection for it.
		return &fsmirror.PathError{Op: op.Kind.String(), Path: op.Path, Err: errInvalidPath}
	}
	if op.Kind != fsmirror.OpWrite {
		_, err := c.do(ctx, msgApply, opSize(op), func(e *enc) { encodeOp(e, op); e.byte1(dataNone) })
		return err
	}
	if op.Data == nil {
		return &fsmirror.PathError{Op: "write", Path: op.Path, Err: errors.New("write without data")}
	}
	if ra, ok := op.Data.(io.ReaderAt); ok && c.o.DeltaMin > 0 && op.Replace && op.Entry.Size >= c.o.DeltaMin {
		err := c.patch(ctx, op, io.NewSectionReader(ra, 0, math.MaxInt64))
		if !errors.Is(err, errWholeInstead) {
			return err
		}
		whole := *op
		whole.Data = io.NewSectionReader(ra, 0, math.MaxInt64)
		return c.write(ctx, &whole)
	}
	return c.write(ctx, op)
}

var errInvalidPath = errors.New("invalid path: must be clean and relative")

// errWholeInstead says a delta could not be made or applied and the file
// must be sent whole.
var errWholeInstead = errors.New("send the whole file")

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// write sends op.Data whole: in the request if it is one chunk or less
// (uncompressed), else in data frames.
func (c *Client) write(ctx context.Context, op *fsmirror.Op) error {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	n, rerr := io.ReadFull(op.Data, buf)
	if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
		if !c.o.Compress || n < 1024 {
			_, err := c.do(ctx, msgApply, opSize(op)+n, func(e *enc) { encodeOp(e, op); e.byte1(dataInline); e.bytes(buf[:n]) })
			return err
		}
		rerr = nil
	}
	if rerr != nil {
		return &fsmirror.PathError{Op: "read source", Path: op.Path, Err: rerr}
	}
	id, cl, err := c.start(ctx, msgApply, opSize(op), func(e *enc) { encodeOp(e, op); e.byte1(dataStreamed) })
	if err != nil {
		return err
	}
	s := streamer{c: c, id: id, cl: cl}
	s.send(buf[:n])
	if n == len(buf) {
		_, rerr = io.CopyBuffer(&s, op.Data, buf)
	}
	s.end(s.n, nil, rerr != nil || s.stopped)
	err = c.wait(ctx, cl)
	if rerr != nil && err == nil {
		err = &fsmirror.PathError{Op: "read source", Path: op.Path, Err: rerr}
	}
	return err
}

// streamer sends a request's content as data frames.
type streamer struct {
	c       *Client
	id      uint64
	cl      *call
	n       int64
	stopped bool // the request was answered (failed) before its data ended
	zbuf    bytes.Buffer
	zw      *flate.Writer
}

// Write sends p, in chunks. It fails once the request has been answered:
// the far side gave up on it.
func (s *streamer) Write(p []byte) (int, error) {
	for done := 0; done < len(p); {
		n := min(len(p)-done, chunkSize)
		if !s.send(p[done : done+n]) {
			return done, errRequestDone
		}
		done += n
	}
	return len(p), nil
}

func (s *streamer) send(p []byte) bool {
	select {
	case <-s.cl.done:
		s.stopped = true
		return false
	default:
	}
	s.n += int64(len(p))
	var e enc
	e.uint(s.id)
	if z := s.deflate(p); z != nil {
		e.uint(flagDeflate)
		e.bytes(z)
	} else {
		e.uint(0)
		e.bytes(p)
	}
	return s.c.fw.write(msgData, e.b) == nil
}

// deflate returns p compressed, or nil when compression is off or does not
// make it smaller.
func (s *streamer) deflate(p []byte) []byte {
	if !s.c.o.Compress || len(p) < 512 {
		return nil
	}
	s.zbuf.Reset()
	if s.zw == nil {
		s.zw, _ = flate.NewWriter(&s.zbuf, flate.BestSpeed)
	} else {
		s.zw.Reset(&s.zbuf)
	}
	s.zw.Write(p)
	s.zw.Close()
	if s.zbuf.Len() >= len(p)-len(p)/16 {
		return nil
	}
	return s.zbuf.Bytes()
}

// end ends the content of the request: size bytes with SHA-256 sum (if not
// nil), or abort.
func (s *streamer) end(size int64, sum []byte, abort bool) {
	var e enc
	e.uint(s.id)
	e.int(size)
	e.bytes(sum)
	e.bool(abort)
	s.c.fw.write(msgEnd, e.b)
}

// blockLen picks the signature block length for a file of size bytes: about
// its square root, as rsync does, so the signature grows with the square
// root of the file too.
func blockLen(size int64) uint64 {
	bl := uint64(math.Sqrt(float64(size)))
	bl = (bl + 1023) &^ 1023
	return min(max(bl, 2048), 1<<20)
}

// patch sends op's content as a delta against the far side's version of
// op.Path. errWholeInstead means it could not, and nothing was written.
func (c *Client) patch(ctx context.Context, op *fsmirror.Op, src io.Reader) error {
	cl, err := c.do(ctx, msgSignature, 32+len(op.Path), func(e *enc) { e.string(op.Path); e.uint(blockLen(op.Entry.Size)) })
	if err != nil {
		if errors.Is(err, fsmirror.ErrTargetDown) || ctx.Err() != nil {
			return err
		}
		return errWholeInstead // no regular file there to patch
	}
	sig, err := librsync.ReadSignature(bytes.NewReader(cl.data))
	if err != nil {
		return errWholeInstead
	}
	id, pcl, err := c.start(ctx, msgPatch, opSize(op), func(e *enc) { encodeOp(e, op); e.byte1(dataStreamed) })
	if err != nil {
		return err
	}
	s := streamer{c: c, id: id, cl: pcl}
	h := &countingHash{h: sha256.New()}
	w := bufio.NewWriterSize(&s, chunkSize) // librsync writes a command at a time
	derr := librsync.Delta(sig, io.TeeReader(src, h), &deltaGuard{w: w, in: h})
	if derr == nil {
		derr = w.Flush()
	}
	s.end(h.n, h.h.Sum(nil), derr != nil || s.stopped)
	err = c.wait(ctx, pcl)
	switch {
	case errors.Is(derr, errNoGain):
		return errWholeInstead
	case derr != nil && !s.stopped && err == nil:
		return &fsmirror.PathError{Op: "read source", Path: op.Path, Err: derr}
	case errors.Is(err, syscall.EBADMSG):
		return errWholeInstead // the patched file did not match: rare, send whole
	}
	return err
}

// errNoGain stops a delta that is mostly literal data: the file changed too
// much for a delta to pay, and making one is much slower than sending it.
var errNoGain = errors.New("delta does not pay")

// deltaGuard passes a delta on, and fails it with errNoGain once it is
// clear that it is mostly literal data.
type deltaGuard struct {
	w   io.Writer
	in  *countingHash // the source read so far
	out int64
}

func (g *deltaGuard) Write(p []byte) (int, error) {
	g.out += int64(len(p))
	if g.in.n >= 1<<20 && g.out > g.in.n/2 {
		return 0, errNoGain
	}
	return g.w.Write(p)
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
