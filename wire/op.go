package wire

import (
	"github.com/fsmirror/fsmirror"
)

func encodeOp(e *enc, op *fsmirror.Op) {
	e.byte1(byte(op.Kind))
	e.string(op.Path)
	e.string(op.From)
	e.entry(&op.Entry)
	e.bool(op.Replace)
}

// decodeOp reads an op and checks its paths: a peer that sends anything but
// a clean relative path breaks the protocol.
func decodeOp(d *dec) fsmirror.Op {
	var op fsmirror.Op
	op.Kind = fsmirror.OpKind(d.byte1())
	if op.Kind < fsmirror.OpMkdir || op.Kind > fsmirror.OpMknod {
		d.fail("op kind")
	}
	op.Path = d.path()
	op.From = d.path()
	op.Entry = d.entry()
	op.Replace = d.bool()
	return op
}

// path reads a path and checks that it is clean and relative.
func (d *dec) path() string {
	p := d.string()
	if d.err == nil && !fsmirror.IsValidPath(p) {
		d.fail("path " + fsmirror.QuotePath(p) + " (must be clean and relative)")
	}
	return p
}
