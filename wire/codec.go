package wire

import (
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fsmirror/fsmirror"
)

// ErrMalformed is wrapped by every error about a frame that does not decode.
var ErrMalformed = errors.New("malformed message")

// enc appends the encodings of values to a byte slice.
type enc struct{ b []byte }

func (e *enc) byte1(v byte)    { e.b = append(e.b, v) }
func (e *enc) uint(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) int(v int64)     { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte)  { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) string(v string) { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) bool(v bool)     { e.byte1(b2i(v)) }
func (e *enc) entry(x *fsmirror.Entry) {
	e.string(x.Name)
	e.byte1(byte(x.Type))
	e.uint(uint64(x.Mode))
	e.int(x.Size)
	e.int(x.Mtime)
	e.uint(uint64(x.Uid))
	e.uint(uint64(x.Gid))
	e.uint(uint64(x.Nlink))
	e.uint(x.Dev)
	e.uint(x.Ino)
	e.uint(x.Rdev)
	e.string(x.Target)
}

func b2i(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// dec reads values from a frame, remembering the first error.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *dec) byte1() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// uint32 reads a uvarint that must fit 32 bits.
func (d *dec) uint32() uint32 {
	v := d.uint()
	if v > 1<<32-1 {
		d.fail("32-bit integer")
		return 0
	}
	return uint32(v)
}

// bytes returns a slice of the frame, valid while the frame is.
func (d *dec) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) string() string { return string(d.bytes()) }

func (d *dec) bool() bool {
	switch d.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("boolean")
	return false
}

func (d *dec) entry() fsmirror.Entry {
	var x fsmirror.Entry
	x.Name = d.string()
	x.Type = fsmirror.Type(d.byte1())
	if x.Type > fsmirror.TypeBlockDev {
		d.fail("type")
	}
	mode := d.uint32()
	if mode > 0o7777 {
		d.fail("mode")
	}
	x.Mode = mode
	x.Size = d.int()
	x.Mtime = d.int()
	x.Uid = d.uint32()
	x.Gid = d.uint32()
	x.Nlink = d.uint32()
	x.Dev = d.uint()
	x.Ino = d.uint()
	x.Rdev = d.uint()
	x.Target = d.string()
	return x
}

// done checks that the whole frame was read.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("frame: trailing bytes")
	}
	return d.err
}

func newDeflater(w io.Writer) *flate.Writer {
	z, _ := flate.NewWriter(w, flate.BestSpeed)
	return z
}
