package index

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"sync/atomic"
	"syscall"

	"github.com/fsmirror/fsmirror"
)

// Target is a destination whose index is kept up to date. Trusted, it
// answers ReadDir and Lstat from the index alone; untrusted, it asks the
// destination and records the answers, so a full compare rebuilds the index.
// Every op is applied to the destination first and recorded only if that
// succeeded. After an op failed, the paths it touched are looked up on the
// destination (a few Lstats; a ReadDir walk of a directory it may have
// emptied in part) and recorded as found; what cannot be looked up is
// forgotten.
//
// Entries from the index have no Nlink or Dev. Their Ino is the
// destination's inode number as last listed, or a synthetic number (at least
// 1<<62) for what the wrapper created; paths with one Ino are hard links of
// each other.
type Target struct {
	x       *Index
	inner   fsmirror.Target
	trusted atomic.Bool
}

var (
	_ fsmirror.Target = (*Target)(nil)
	_ fsmirror.Hasher = (*Target)(nil)
	_ fsmirror.Pinger = (*Target)(nil)
)

// Wrap returns a Target that applies ops to inner and records them in x.
// trusted says whether listings are answered from the index (see
// SetTrusted). The root of a trusted target is always there, with
// UnknownMtime until its metadata is set.
func (x *Index) Wrap(inner fsmirror.Target, trusted bool) *Target {
	t := &Target{x: x, inner: inner}
	t.trusted.Store(trusted)
	return t
}

// SetTrusted switches between answering listings from the index (true) and
// listing the destination while recording what it holds (false), for
// example around a periodic full compare.
func (t *Target) SetTrusted(trusted bool) { t.trusted.Store(trusted) }

// ReadDir lists dir, from the index when trusted.
func (t *Target) ReadDir(ctx context.Context, dir string) ([]fsmirror.Entry, error) {
	if t.trusted.Load() {
		return t.x.readDir(dir)
	}
	start := t.x.beginListing()
	entries, err := t.inner.ReadDir(ctx, dir)
	t.x.endListing(start, func(w *writer) error { return w.listed(dir, entries, err) })
	return entries, err
}

// Lstat describes path, from the index when trusted.
func (t *Target) Lstat(ctx context.Context, path string) (fsmirror.Entry, error) {
	if t.trusted.Load() {
		return t.x.lstat(path)
	}
	start := t.x.beginListing()
	e, err := t.inner.Lstat(ctx, path)
	t.x.endListing(start, func(w *writer) error { return w.statted(path, e, err) })
	return e, err
}

// Apply applies op to the destination and then records it.
func (t *Target) Apply(ctx context.Context, op *fsmirror.Op) error {
	err := t.inner.Apply(ctx, op)
	if rerr := t.x.recordOp(ctx, t.inner, op, err); rerr != nil && err == nil {
		return &fsmirror.PathError{Op: "record " + op.Kind.String(), Path: op.Path, Err: rerr}
	}
	return err
}

// Hash hashes path on the destination, if it can.
func (t *Target) Hash(ctx context.Context, path string) ([]byte, error) {
	if h, ok := t.inner.(fsmirror.Hasher); ok {
		return h.Hash(ctx, path)
	}
	return nil, errors.ErrUnsupported
}

// Ping checks that the destination answers, if it can be unreachable.
func (t *Target) Ping(ctx context.Context) error {
	if p, ok := t.inner.(fsmirror.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close closes the destination. The index stays open: it is its owner's to
// close.
func (t *Target) Close() error { return t.inner.Close() }

// implicitRoot is the root of a trusted target that has no record of it.
func implicitRoot() fsmirror.Entry {
	return fsmirror.Entry{Type: fsmirror.TypeDir, Mtime: UnknownMtime}
}

func notExist(op, path string) error {
	return &fsmirror.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
}

// lstat answers Lstat from the index.
func (x *Index) lstat(path string) (fsmirror.Entry, error) {
	dir, name := fsmirror.Split(path)
	x.mu.RLock()
	if x.closed {
		x.mu.RUnlock()
		return fsmirror.Entry{}, errClosed
	}
	if r, ok := x.overlay(dir, name); ok {
		x.mu.RUnlock()
		switch {
		case !r.del:
			return r.e, nil
		case path == "":
			return implicitRoot(), nil
		}
		return fsmirror.Entry{}, notExist("stat", path)
	}
	// Begun under the lock: a batch that leaves x.flushing after this
	// is in the transaction's view.
	tx, err := x.db.Begin(false)
	x.mu.RUnlock()
	if err != nil {
		return fsmirror.Entry{}, err
	}
	defer tx.Rollback()
	v := tx.Bucket(entriesBucket).Get([]byte(dir + "\x00" + name))
	switch {
	case v != nil:
		e, err := decodeValue(name, v)
		if err != nil {
			return e, &fsmirror.PathError{Op: "read index", Path: path, Err: err}
		}
		return e, nil
	case path == "":
		return implicitRoot(), nil
	}
	return fsmirror.Entry{}, notExist("stat", path)
}

// readDir answers ReadDir from the index: one range of keys, overlaid with
// the changes in memory.
func (x *Index) readDir(dir string) ([]fsmirror.Entry, error) {
	pdir, name := fsmirror.Split(dir)
	x.mu.RLock()
	if x.closed {
		x.mu.RUnlock()
		return nil, errClosed
	}
	self, selfKnown := x.overlay(pdir, name)
	var older, newer map[string]rec
	if x.flushing != nil {
		older = x.flushing.dirs[dir] // never modified
	}
	if m := x.pending.dirs[dir]; len(m) > 0 {
		newer = maps.Clone(m)
	}
	tx, err := x.db.Begin(false)
	x.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	b := tx.Bucket(entriesBucket)

	if selfKnown && dir != "" {
		if self.del {
			return nil, notExist("read directory", dir)
		}
		if self.e.Type != fsmirror.TypeDir {
			return nil, &fsmirror.PathError{Op: "read directory", Path: dir, Err: syscall.ENOTDIR}
		}
	}

	// Keys and values first, to allocate the listing at its size; the
	// names share one string.
	prefix := []byte(childPrefix(dir))
	var kbuf, vbuf [32][]byte
	keys, vals := kbuf[:0], vbuf[:0]
	size := 0
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) == len(prefix) {
			continue // the root's own key
		}
		keys, vals = append(keys, k[len(prefix):]), append(vals, v)
		size += len(k) - len(prefix)
	}
	entries := make([]fsmirror.Entry, len(keys), len(keys)+len(newer))
	names := make([]byte, 0, size)
	for _, k := range keys {
		names = append(names, k...)
	}
	all := string(names)
	for i, v := range vals {
		name := all[:len(keys[i])]
		all = all[len(keys[i]):]
		if entries[i], err = decodeValue(name, v); err != nil {
			return nil, &fsmirror.PathError{Op: "read index", Path: fsmirror.Join(dir, name), Err: err}
		}
	}

	// Something is recorded in dir: it is a recorded directory (see
	// dirKnown), unless a change in memory says otherwise.
	if !selfKnown && len(entries) == 0 && dir != "" {
		v := b.Get([]byte(pdir + "\x00" + name))
		if v == nil {
			return nil, notExist("read directory", dir)
		}
		if len(v) < valueSize {
			return nil, &fsmirror.PathError{Op: "read index", Path: dir, Err: errBadValue}
		}
		if fsmirror.Type(v[0]) != fsmirror.TypeDir {
			return nil, &fsmirror.PathError{Op: "read directory", Path: dir, Err: syscall.ENOTDIR}
		}
	}
	if len(older)+len(newer) > 0 {
		entries = overlaid(entries, older, newer)
	}
	return entries, nil
}

// overlaid applies the changes of older, then newer, to a listing.
func overlaid(entries []fsmirror.Entry, older, newer map[string]rec) []fsmirror.Entry {
	at := make(map[string]int, len(entries))
	for i := range entries {
		at[entries[i].Name] = i
	}
	gone := false
	for _, m := range []map[string]rec{older, newer} {
		for name, r := range m {
			if name == "" {
				continue // the root itself
			}
			i, ok := at[name]
			switch {
			case r.del && ok:
				entries[i].Name, gone = "", true
				delete(at, name)
			case r.del:
			case ok:
				entries[i] = r.e
			default:
				at[name] = len(entries)
				entries = append(entries, r.e)
			}
		}
	}
	if gone {
		entries = deleteUnnamed(entries)
	}
	return entries
}

func deleteUnnamed(entries []fsmirror.Entry) []fsmirror.Entry {
	out := entries[:0]
	for _, e := range entries {
		if e.Name != "" {
			out = append(out, e)
		}
	}
	return out
}
