package index

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/fsmirror/fsmirror"
)

// UnknownMtime is the recorded mtime of a node whose mtime is not known: a
// directory in which a name was created or removed since its metadata was
// set, or a node an op left in doubt (whose mode and owner are then not
// known either). It differs from every real mtime (0 is a real one:
// reproducible builds use it), so a comparison with the source always finds
// the metadata to set.
const UnknownMtime = math.MinInt64

// writer changes the pending batch. It runs with x.mu held and reads the
// file through a transaction begun under x.mu: what it reads, the batch
// being committed and the pending batch are one consistent state.
type writer struct {
	x     *Index
	b     *bolt.Bucket
	apply bool   // recording an applied op, else a listing of the target
	start uint64 // a listing: x.seq when it began
}

// update runs fn as a writer. An error from fn means the record may now be
// wrong: the index is not marked clean when closed.
func (x *Index) update(w writer, fn func(*writer) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if w.apply {
		// Bounded memory: wait for a commit that is behind.
		for x.pending.n >= x.cfg.maxPending && x.flushing != nil && !x.closed {
			x.flushed.Wait()
		}
		x.seq++
	}
	if x.closed {
		return errClosed
	}
	tx, err := x.db.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	w.x, w.b = x, tx.Bucket(entriesBucket)
	if err := fn(&w); err != nil {
		if x.broken == nil {
			x.broken = err
		}
		return err
	}
	if x.pending.n > 0 {
		x.signal(x.kick)
	}
	if x.pending.n >= x.cfg.flushSize {
		x.signal(x.full)
	}
	return nil
}

// overlay returns the change of dir/name in memory, if any. x.mu is held.
func (x *Index) overlay(dir, name string) (rec, bool) {
	if r, ok := x.pending.get(dir, name); ok {
		return r, true
	}
	if x.flushing != nil {
		return x.flushing.get(dir, name)
	}
	return rec{}, false
}

func (w *writer) get(path string) (fsmirror.Entry, bool, error) {
	dir, name := fsmirror.Split(path)
	if r, ok := w.x.overlay(dir, name); ok {
		return r.e, !r.del, nil
	}
	v := w.b.Get([]byte(dir + "\x00" + name))
	if v == nil {
		return fsmirror.Entry{}, false, nil
	}
	e, err := decodeValue(name, v)
	if err != nil {
		return e, false, &fsmirror.PathError{Op: "read index", Path: path, Err: err}
	}
	return e, true, nil
}

// item is a recorded entry and where it is.
type item struct {
	dir, name string
	e         fsmirror.Entry
	bad       bool // the value could not be decoded
}

// below returns what is recorded strictly below directory dir.
func (w *writer) below(dir string) []item {
	found := map[string]item{}
	scan := func(prefix string) {
		p := []byte(prefix)
		c := w.b.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			d, n, ok := splitKey(k)
			if !ok || len(d) == 0 && len(n) == 0 {
				continue
			}
			e, err := decodeValue(string(n), v)
			found[string(k)] = item{dir: string(d), name: string(n), e: e, bad: err != nil}
		}
	}
	if dir == "" {
		scan("")
	} else {
		scan(childPrefix(dir))
		scan(deepPrefix(dir))
	}
	for _, g := range []*gen{w.x.flushing, w.x.pending} {
		if g == nil || !g.touches(dir) {
			continue
		}
		for d, m := range g.dirs {
			if !dirInSubtree(d, dir) {
				continue
			}
			for n, r := range m {
				if d == "" && n == "" {
					continue
				}
				k := d + "\x00" + n
				if r.del {
					delete(found, k)
				} else {
					found[k] = item{dir: d, name: n, e: r.e}
				}
			}
		}
	}
	items := make([]item, 0, len(found))
	for _, it := range found {
		items = append(items, it)
	}
	return items
}

func (w *writer) put(path string, e fsmirror.Entry) {
	dir, name := fsmirror.Split(path)
	e.Name = name
	w.set(dir, name, rec{e: e})
}

func (w *writer) set(dir, name string, r rec) {
	if len(dir)+1+len(name) > bolt.MaxKeySize {
		// Too long a path to be a key: not recorded, so nothing below it
		// is either (see dirKnown). Such a path is always sent again.
		r = rec{del: true}
	}
	w.x.pending.set(dir, name, r)
	if w.apply && w.x.listings > 0 {
		if w.x.touched == nil {
			w.x.touched = map[string]uint64{}
		}
		w.x.touched[dir+"\x00"+name] = w.x.seq
	}
}

// forget removes path and everything below it from the record.
func (w *writer) forget(path string) {
	e, ok, err := w.get(path)
	if ok {
		w.unlink(e.Ino, path)
	}
	// Only a recorded directory has anything recorded below it (see
	// dirKnown); the root always may.
	if path == "" || err != nil || ok && e.Type == fsmirror.TypeDir {
		w.forgetBelow(path)
	}
	dir, name := fsmirror.Split(path)
	w.set(dir, name, rec{del: true})
}

// dirKnown reports whether dir is recorded as a directory; the root always
// is. Nothing is recorded in a directory that is not: so forget removes a
// whole subtree and an unknown path has nothing below it. What the target
// holds below a directory the record does not know is left unrecorded.
func (w *writer) dirKnown(dir string) bool {
	if dir == "" {
		return true
	}
	e, ok, _ := w.get(dir)
	return ok && e.Type == fsmirror.TypeDir
}

// forgetBelow removes everything below path from the record.
func (w *writer) forgetBelow(path string) {
	for _, it := range w.below(path) {
		w.unlink(it.e.Ino, fsmirror.Join(it.dir, it.name))
		w.set(it.dir, it.name, rec{del: true})
	}
}

// link notes that path is a name of inode ino, which has others.
func (w *writer) link(ino uint64, path string) {
	paths := w.x.links[ino]
	if paths == nil {
		paths = map[string]struct{}{}
		w.x.links[ino] = paths
	}
	paths[path] = struct{}{}
}

// isLinked reports whether path is noted as a name of inode ino.
func (w *writer) isLinked(ino uint64, path string) bool {
	_, ok := w.x.links[ino][path]
	return ok
}

// unlink notes that path is no longer a name of inode ino.
func (w *writer) unlink(ino uint64, path string) {
	if paths := w.x.links[ino]; paths != nil {
		delete(paths, path)
		if len(paths) == 0 {
			delete(w.x.links, ino)
		}
	}
}

// partners returns the other names recorded for the file at path, with
// their entries.
func (w *writer) partners(path string, ino uint64) []item {
	var out []item
	for q := range w.x.links[ino] {
		if q == path {
			continue
		}
		e, ok, err := w.get(q)
		if err != nil || !ok || e.Ino != ino || e.Type != fsmirror.TypeFile {
			w.unlink(ino, q) // renamed, replaced or gone since
			continue
		}
		dir, name := fsmirror.Split(q)
		out = append(out, item{dir: dir, name: name, e: e})
	}
	return out
}

// stale reports whether an op recorded path after the listing began: the
// listing may show it as it was before.
func (w *writer) stale(path string) bool {
	return !w.apply && w.x.touched != nil && w.x.touched[keyOf(path)] > w.start
}

// dirChanged records that a name was created or removed in directory dir,
// which moved its mtime on the target.
func (w *writer) dirChanged(dir string) error {
	e, ok, err := w.get(dir)
	if ok && e.Type == fsmirror.TypeDir && e.Mtime != UnknownMtime {
		e.Mtime = UnknownMtime
		w.put(dir, e)
	}
	return err
}

// uncertain records that an op on path failed, which may have left it
// changed, half replaced or gone. A directory is forgotten with its content:
// what remains of it is created again. Anything else is kept with metadata
// that no source has, so that it is replaced if the source has it, and
// deleted if not.
func (w *writer) uncertain(path string) {
	e, ok, err := w.get(path)
	if err != nil || ok && e.Type == fsmirror.TypeDir {
		w.forget(path)
		return
	}
	if !ok {
		return
	}
	e.Mtime = UnknownMtime
	switch e.Type {
	case fsmirror.TypeFile:
		e.Size = -1
	case fsmirror.TypeSymlink:
		e.Target = "\x00" // no symlink points there
	default:
		e.Rdev = math.MaxUint64
	}
	w.put(path, e)
}

func (w *writer) newIno() uint64 {
	n := w.x.nextIno
	w.x.nextIno++
	return n
}

// isGone reports whether err says a path (or a directory on its way) does not
// exist.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
