package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// ProtocolVersion is the version of the protocol this package speaks. Both
// ends must speak the same one.
const ProtocolVersion = 1

// magic starts every hello, so that a peer that is not fsmirror (a shell
// printing a banner, say) is recognised at once.
const magic = "fsmirror-wire"

// MaxFrame is the largest frame either end accepts, type byte included.
const MaxFrame = 1<<20 + 4096

// chunkSize is the most file content one data frame carries.
const chunkSize = 256 << 10

// Message types.
const (
	msgHello     byte = 1
	msgReadDir   byte = 2  // id, path
	msgLstat     byte = 3  // id, path
	msgApply     byte = 4  // id, op; a write's content follows in data frames and an end frame
	msgHash      byte = 5  // id, path
	msgSignature byte = 6  // id, path, block length
	msgPatch     byte = 7  // id, op; a delta follows in data frames and an end frame
	msgData      byte = 8  // id, flags, bytes
	msgEnd       byte = 9  // id, size, sha256 or empty, abort
	msgAuth      byte = 10 // token, path, create; no id: part of the handshake
	msgSpace     byte = 11 // id
	msgOK        byte = 20 // id
	msgError     byte = 21 // id, errno, op, path, text, fatal
	msgEntries   byte = 22 // id, more, count, entries
	msgEntry     byte = 23 // id, entry
	msgHashReply byte = 24 // id, hash
	msgSigData   byte = 25 // id, more, bytes
	msgSpaceInfo byte = 26 // id, free bytes, free inodes
)

// Data frame flags.
const flagDeflate = 1 // the bytes are a raw deflate stream of the chunk

// frameReader reads frames. The body it returns is valid until the next read.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	max int
	n   atomic.Int64 // bytes read
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// read returns the next frame's type and message.
func (fr *frameReader) read() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 1 || n > uint32(fr.max) {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes (at most %d)", ErrMalformed, n, fr.max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	b := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	fr.n.Add(int64(n) + 4)
	return b[0], b[1:], nil
}

// frameWriter writes whole frames from many goroutines. Frames are
// buffered and flushed by a goroutine of its own, which first lets the
// other runnable goroutines add theirs: under load many frames share one
// write (and one SSH packet), while a lone frame goes out at once.
type frameWriter struct {
	mu      sync.Mutex
	w       *bufio.Writer
	err     error
	pending bool          // a flush is due
	kick    chan struct{} // wakes the flusher
	n       atomic.Int64  // bytes written
}

// flushAt is the buffered size at which a writer flushes itself instead of
// waiting for the flusher.
const flushAt = 256 << 10

func newFrameWriter(w io.Writer) *frameWriter {
	fw := &frameWriter{w: bufio.NewWriterSize(w, flushAt+MaxFrame), kick: make(chan struct{}, 1)}
	go fw.flusher()
	return fw
}

// write sends one frame of type typ with message msg.
func (fw *frameWriter) write(typ byte, msg []byte) error {
	if len(msg)+1 > MaxFrame {
		return fmt.Errorf("wire: frame of %d bytes is too large", len(msg)+1)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return fw.err
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(msg)+1))
	hdr[4] = typ
	fw.w.Write(hdr[:])
	fw.w.Write(msg)
	fw.n.Add(int64(len(msg)) + 5)
	if fw.w.Buffered() >= flushAt {
		fw.err = fw.w.Flush()
		return fw.err
	}
	if !fw.pending {
		fw.pending = true
		select {
		case fw.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// flush writes out what is buffered now.
func (fw *frameWriter) flush() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err == nil {
		fw.err = fw.w.Flush()
	}
	return fw.err
}

// flusher flushes what is buffered, until the writer fails.
func (fw *frameWriter) flusher() {
	for range fw.kick {
		runtime.Gosched() // let the frames that are being made join
		fw.mu.Lock()
		fw.pending = false
		if fw.err == nil {
			fw.err = fw.w.Flush()
		}
		err := fw.err
		fw.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// fail makes every later write return err.
func (fw *frameWriter) fail(err error) {
	fw.mu.Lock()
	if fw.err == nil {
		fw.err = err
	}
	fw.mu.Unlock()
	select {
	case fw.kick <- struct{}{}: // the flusher sees the error and ends
	default:
	}
}
