package index

import (
	"bytes"

	"github.com/fsmirror/fsmirror"
)

// beginListing notes that a listing of the destination begins and returns
// the op count, to tell ops recorded meanwhile.
func (x *Index) beginListing() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.listings++
	return x.seq
}

// endListing records a listing with fn.
func (x *Index) endListing(start uint64, fn func(*writer) error) {
	x.update(writer{start: start}, fn)
	x.mu.Lock()
	x.listings--
	if x.listings == 0 {
		x.touched = nil
	}
	x.mu.Unlock()
}

// listed records a listing of dir: what it shows replaces what was
// recorded, except names an op recorded while it was taken.
func (w *writer) listed(dir string, entries []fsmirror.Entry, err error) error {
	if err != nil {
		if isGone(err) && !w.stale(dir) {
			w.forget(dir)
		}
		return nil
	}
	if !w.dirKnown(dir) {
		return nil // see dirKnown
	}
	old := map[string]fsmirror.Entry{}
	for _, it := range w.children(dir) {
		old[it.Name] = it
	}
	for i := range entries {
		path := fsmirror.Join(dir, entries[i].Name)
		o, known := old[entries[i].Name]
		delete(old, entries[i].Name)
		if !w.stale(path) {
			w.seen(path, o, known, entries[i])
		}
	}
	for name := range old {
		if path := fsmirror.Join(dir, name); !w.stale(path) {
			w.forget(path)
		}
	}
	return nil
}

// statted records an lstat of path.
func (w *writer) statted(path string, e fsmirror.Entry, err error) error {
	if w.stale(path) {
		return nil
	}
	if err != nil {
		if isGone(err) {
			w.forget(path)
		}
		return nil
	}
	if parent, _ := fsmirror.Split(path); path != "" && !w.dirKnown(parent) {
		return nil // see dirKnown
	}
	o, known, _ := w.get(path)
	w.seen(path, o, known, e)
	return nil
}

// seen records e, which a listing shows at path, where o was recorded (if
// known). A full compare takes the target's inode numbers: they are the
// truth. Listings by a failed op's writer keep the recorded number of a node
// they find unchanged.
func (w *writer) seen(path string, o fsmirror.Entry, known bool, e fsmirror.Entry) {
	nlink := e.Nlink
	e = recordOf(e)
	if w.apply && known {
		same := e
		same.Ino = o.Ino
		if sameRecord(&o, &same) {
			return
		}
	}
	if nlink > 1 && e.Type == fsmirror.TypeFile {
		w.link(e.Ino, path)
	}
	if known && sameRecord(&o, &e) {
		return
	}
	if known && o.Type == fsmirror.TypeFile {
		if e.Type == fsmirror.TypeFile && (o.Ino == e.Ino || o.Ino >= firstIno) {
			// The same inode, or the one the record numbered itself:
			// its other recorded names have what it has now.
			w.shareInode(path, o.Ino, &e)
		} else {
			// Another inode now: its old names keep theirs.
			w.unlink(o.Ino, path)
		}
	}
	if known && o.Type == fsmirror.TypeDir && e.Type != fsmirror.TypeDir {
		w.forgetBelow(path)
	}
	w.put(path, e)
}

// shareInode gives the names recorded as links of path, under inode number
// ino, the inode and metadata e that path is found to have.
func (w *writer) shareInode(path string, ino uint64, e *fsmirror.Entry) {
	partners := w.partners(path, ino)
	for _, it := range partners {
		q := it.e
		q.Ino, q.Mode, q.Size, q.Mtime, q.Uid, q.Gid = e.Ino, e.Mode, e.Size, e.Mtime, e.Uid, e.Gid
		if !sameRecord(&q, &it.e) {
			w.set(it.dir, it.name, rec{e: q})
		}
		if ino != e.Ino {
			q := fsmirror.Join(it.dir, it.name)
			w.unlink(ino, q)
			w.link(e.Ino, q)
		}
	}
	if ino != e.Ino {
		w.unlink(ino, path)
		if len(partners) > 0 {
			w.link(e.Ino, path)
		}
	}
}

// children returns what is recorded in directory dir.
func (w *writer) children(dir string) []fsmirror.Entry {
	prefix := []byte(childPrefix(dir))
	var entries []fsmirror.Entry
	c := w.b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) == len(prefix) {
			continue
		}
		// A record that cannot be decoded is still a name to forget.
		e, _ := decodeValue(string(k[len(prefix):]), v)
		e.Name = string(k[len(prefix):])
		entries = append(entries, e)
	}
	var older map[string]rec
	if w.x.flushing != nil {
		older = w.x.flushing.dirs[dir]
	}
	return overlaid(entries, older, w.x.pending.dirs[dir])
}
