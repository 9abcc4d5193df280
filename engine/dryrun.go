package engine

import (
	"context"
	"errors"
	"io/fs"

	"github.com/fsmirror/fsmirror"
)

// DryRun wraps a target so that it is listed as usual but no op is applied.
// inner may be nil for a destination that does not exist yet: it then looks
// empty.
func DryRun(inner fsmirror.Target) fsmirror.Target { return &dryRun{inner: inner} }

type dryRun struct{ inner fsmirror.Target }

func (d *dryRun) ReadDir(ctx context.Context, dir string) ([]fsmirror.Entry, error) {
	if d.inner == nil {
		return nil, &fsmirror.PathError{Op: "read directory", Path: dir, Err: fs.ErrNotExist}
	}
	return d.inner.ReadDir(ctx, dir)
}

func (d *dryRun) Lstat(ctx context.Context, path string) (fsmirror.Entry, error) {
	if d.inner == nil {
		return fsmirror.Entry{}, &fsmirror.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
	}
	return d.inner.Lstat(ctx, path)
}

// Hash hashes on the inner target, if it can: a dry run with --checksum
// must decide as the real run would.
func (d *dryRun) Hash(ctx context.Context, path string) ([]byte, error) {
	if h, ok := d.inner.(fsmirror.Hasher); ok {
		return h.Hash(ctx, path)
	}
	return nil, errors.ErrUnsupported
}

func (d *dryRun) Apply(context.Context, *fsmirror.Op) error { return nil }

func (d *dryRun) Close() error {
	if d.inner == nil {
		return nil
	}
	return d.inner.Close()
}
