package index

import (
	"context"
	"maps"
	"slices"

	"github.com/fsmirror/fsmirror"
)

// recordOp records what op did to the target; applyErr is how applying it
// ended.
func (x *Index) recordOp(ctx context.Context, inner fsmirror.Target, op *fsmirror.Op, applyErr error) error {
	if applyErr != nil {
		// What a failed op left, the target says: a few lstats, rare.
		obs := make([]observation, 0, 4)
		var listings map[string][]fsmirror.Entry
		for _, p := range touchedBy(op) {
			e, err := inner.Lstat(ctx, p)
			obs = append(obs, observation{path: p, e: e, err: err})
			if err == nil && e.Type == fsmirror.TypeDir && p == op.Path && op.Kind != fsmirror.OpSetMeta {
				// What is inside may be partly gone, or never known.
				listings = map[string][]fsmirror.Entry{}
				if walkTarget(ctx, inner, p, listings) != nil {
					listings = nil
				}
			}
		}
		return x.update(writer{apply: true}, func(w *writer) error { return w.failed(op, obs, listings) })
	}
	var linked []fsmirror.Entry
	if op.Kind == fsmirror.OpLink && !x.known(op.From) {
		// Which inode From is, the record does not say: ask the target,
		// once, about both names.
		for _, p := range []string{op.From, op.Path} {
			e, err := inner.Lstat(ctx, p)
			if err != nil {
				linked = nil
				break
			}
			linked = append(linked, e)
		}
	}
	return x.update(writer{apply: true}, func(w *writer) error { return w.applied(op, linked) })
}

// walkTarget lists dir and every directory below it on the target.
func walkTarget(ctx context.Context, tg fsmirror.Target, dir string, out map[string][]fsmirror.Entry) error {
	entries, err := tg.ReadDir(ctx, dir)
	if err != nil {
		return err
	}
	out[dir] = entries
	for _, e := range entries {
		if e.Type == fsmirror.TypeDir {
			if err := walkTarget(ctx, tg, fsmirror.Join(dir, e.Name), out); err != nil {
				return err
			}
		}
	}
	return nil
}

// touchedBy returns the paths an op may change, parents first.
func touchedBy(op *fsmirror.Op) []string {
	var paths []string
	add := func(p string) {
		if p != "" {
			dir, _ := fsmirror.Split(p)
			if !slices.Contains(paths, dir) {
				paths = append(paths, dir)
			}
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	add(op.Path)
	if op.Kind == fsmirror.OpRename || op.Kind == fsmirror.OpLink {
		add(op.From)
	}
	return paths
}

// observation is what the target said of a path after an op failed.
type observation struct {
	path string
	e    fsmirror.Entry
	err  error
}

// known reports whether path is recorded.
func (x *Index) known(path string) bool {
	_, err := x.lstat(path)
	return err == nil
}

// applied records op, which the target applied.
func (w *writer) applied(op *fsmirror.Op, linked []fsmirror.Entry) error {
	parent, _ := fsmirror.Split(op.Path)
	if op.Kind != fsmirror.OpSetMeta && op.Kind != fsmirror.OpDelete && !w.dirKnown(parent) {
		// Made in a directory the record does not know: left unknown.
		// Path cannot be recorded either; From has moved away.
		if op.Kind == fsmirror.OpRename {
			w.forget(op.From)
			fromParent, _ := fsmirror.Split(op.From)
			return w.dirChanged(fromParent)
		}
		return nil
	}
	switch op.Kind {
	case fsmirror.OpMkdir:
		old, ok, err := w.get(op.Path)
		if err != nil {
			return err
		}
		if ok && old.Type == fsmirror.TypeDir {
			return nil // mkdir found it there and did nothing
		}
		w.forget(op.Path)
		w.put(op.Path, fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o700, Mtime: UnknownMtime,
			Uid: op.Entry.Uid, Gid: op.Entry.Gid, Ino: w.newIno()})
	case fsmirror.OpWrite, fsmirror.OpSymlink, fsmirror.OpMknod:
		e := recordOf(op.Entry)
		e.Ino = w.newIno()
		switch op.Kind {
		case fsmirror.OpWrite:
			e.Type, e.Target, e.Rdev = fsmirror.TypeFile, "", 0
		case fsmirror.OpSymlink:
			e.Type, e.Mode, e.Size, e.Rdev = fsmirror.TypeSymlink, 0o777, int64(len(e.Target)), 0
		default:
			e.Size, e.Target = 0, ""
		}
		w.forget(op.Path)
		w.put(op.Path, e)
	case fsmirror.OpLink:
		from, ok, err := w.get(op.From)
		if err != nil {
			return err
		}
		w.forget(op.Path)
		switch {
		case ok && from.Type == fsmirror.TypeFile:
			w.put(op.Path, from)
		case len(linked) == 2:
			from = recordOf(linked[0])
			w.put(op.From, from)
			w.put(op.Path, recordOf(linked[1]))
		default:
			return nil
		}
		w.link(from.Ino, op.From)
		w.link(from.Ino, op.Path)
	case fsmirror.OpRename:
		if op.From == op.Path {
			return nil
		}
		from, ok, err := w.get(op.From)
		if err != nil {
			return err
		}
		if to, tok, _ := w.get(op.Path); ok && tok && from.Type == fsmirror.TypeFile && to.Type == fsmirror.TypeFile && to.Ino == from.Ino {
			// rename(2) does nothing when both names are links to one
			// inode.
			return nil
		}
		// What moves, with whether it is one of several names of its
		// inode, before forget drops the old names.
		type move struct {
			from, to string
			e        fsmirror.Entry
			linked   bool
		}
		var moves []move
		if ok {
			moves = append(moves, move{op.From, op.Path, from, w.isLinked(from.Ino, op.From)})
		}
		if ok && from.Type == fsmirror.TypeDir {
			for _, it := range w.below(op.From) {
				if it.bad {
					continue
				}
				old := fsmirror.Join(it.dir, it.name)
				to := fsmirror.Join(op.Path+it.dir[len(op.From):], it.name)
				moves = append(moves, move{old, to, it.e, w.isLinked(it.e.Ino, old)})
			}
		}
		w.forget(op.Path)
		w.forget(op.From)
		for _, m := range moves {
			w.put(m.to, m.e)
			if m.linked {
				w.link(m.e.Ino, m.to)
			}
		}
		fromParent, _ := fsmirror.Split(op.From)
		if err := w.dirChanged(fromParent); err != nil {
			return err
		}
	case fsmirror.OpDelete:
		w.forget(op.Path)
	case fsmirror.OpSetMeta:
		e, ok, err := w.get(op.Path)
		if err != nil {
			return err
		}
		if !ok {
			if op.Path != "" {
				return nil // not known: nothing to update
			}
			e, ok = fsmirror.Entry{Type: fsmirror.TypeDir, Ino: w.newIno()}, true
		}
		setMeta(&e, &op.Entry)
		w.put(op.Path, e)
		if e.Type == fsmirror.TypeFile {
			// The metadata is the inode's: every name has it now.
			for _, it := range w.partners(op.Path, e.Ino) {
				setMeta(&it.e, &op.Entry)
				w.set(it.dir, it.name, rec{e: it.e})
			}
		}
		return nil
	}
	if op.Path == "" {
		return nil
	}
	return w.dirChanged(parent)
}

// setMeta sets what OpSetMeta sets.
func setMeta(e, from *fsmirror.Entry) {
	if e.Type != fsmirror.TypeSymlink {
		e.Mode = from.Mode & 0o7777
	}
	e.Uid, e.Gid, e.Mtime = from.Uid, from.Gid, from.Mtime
}

// failed records what the target said of the paths a failed op touched.
// Where it could not say, what the op touched is no longer known for sure.
func (w *writer) failed(op *fsmirror.Op, obs []observation, listings map[string][]fsmirror.Entry) error {
	defer func() {
		// Parents first: a listing replaces what was recorded below.
		dirs := slices.Sorted(maps.Keys(listings))
		for _, d := range dirs {
			w.listed(d, listings[d], nil)
		}
	}()
	for _, o := range obs {
		switch {
		case o.err == nil:
			w.observed(op, o.path, o.e, listings != nil)
		case isGone(o.err):
			w.forget(o.path)
		case o.path != op.Path && o.path != op.From:
			// A parent: a temporary may have come and gone.
			if err := w.dirChanged(o.path); err != nil {
				return err
			}
		case op.Kind == fsmirror.OpSetMeta:
			// Names did not change; metadata may have, in part.
			e, ok, err := w.get(o.path)
			if err != nil {
				return err
			}
			if ok {
				e.Mtime = UnknownMtime
				w.put(o.path, e)
				for _, it := range w.partners(o.path, e.Ino) {
					it.e.Mtime = UnknownMtime
					w.set(it.dir, it.name, rec{e: it.e})
				}
			}
		default:
			w.uncertain(o.path)
		}
	}
	return nil
}

// observed records what the target holds at path after op failed.
func (w *writer) observed(op *fsmirror.Op, path string, e fsmirror.Entry, relisted bool) {
	nlink := e.Nlink
	e = recordOf(e)
	parent, name := fsmirror.Split(path)
	if path != "" && !w.dirKnown(parent) {
		return // see dirKnown
	}
	e.Name = name
	old, ok, _ := w.get(path)
	if ok && old.Type == fsmirror.TypeDir && (e.Type != fsmirror.TypeDir || path == op.Path && replaces(op.Kind) && !relisted) {
		// Part of what was inside may be gone.
		w.forgetBelow(path)
	}
	if ok {
		same := e
		same.Ino = old.Ino
		if sameRecord(&old, &same) {
			// Unchanged: keep the recorded inode number, which says
			// which other names it has.
			return
		}
		if e.Type == fsmirror.TypeFile {
			// The metadata of an inode that has other names may have
			// changed, or the name may be a new inode: either way theirs
			// is no longer known.
			for _, it := range w.partners(path, old.Ino) {
				it.e.Mtime = UnknownMtime
				w.set(it.dir, it.name, rec{e: it.e})
			}
		}
		w.unlink(old.Ino, path)
	}
	w.put(path, e)
	if nlink > 1 && e.Type == fsmirror.TypeFile {
		w.link(e.Ino, path)
	}
}

// replaces reports whether an op of kind k removes what is at its path.
func replaces(k fsmirror.OpKind) bool {
	switch k {
	case fsmirror.OpMkdir, fsmirror.OpSetMeta:
		return false
	}
	return true
}
