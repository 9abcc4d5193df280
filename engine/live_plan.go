package engine

import (
	"context"
	"errors"

	"github.com/fsmirror/fsmirror"
)

// planPath makes the target's path p equal to the source's p as it is now.
// A new directory is synced with everything below it.
func (l *Live) planPath(ctx context.Context, p string, r *result) {
	s := l.syncer
	se, err := l.src.Lstat(p)
	if err != nil {
		if isGone(err) {
			l.gone(ctx, p, r)
		} else {
			s.fail(p, err)
		}
		return
	}
	if p != "" && l.opt.Filter.Excluded(p, se.Type == fsmirror.TypeDir) {
		// Not mirrored, but its creation moved its parent's mtime.
		r.dirs = append(r.dirs, parentOf(p))
		return
	}
	if !fsmirror.Mirrorable(se.Type, l.opt.AsRoot) {
		s.report(Event{Kind: EventSkip, Path: p, Err: skipReason(se.Type)})
		return
	}
	if se.Type == fsmirror.TypeFile && !l.opt.Size.Contains(se.Size) {
		// Left out for its size: what the target holds there stays.
		s.stats.Skipped.Add(1)
		r.dirs = append(r.dirs, parentOf(p))
		return
	}
	var dp *fsmirror.Entry
	if de, err := l.dst.Lstat(ctx, p); err == nil {
		dp = &de
	} else if !isGone(err) {
		s.fail(p, err)
		return
	}
	parent := parentOf(p)
	if dp == nil && p != "" {
		// The parent may be missing on the target too (its event was
		// merged into a rename or is still queued): sync it whole.
		if pe, err := l.dst.Lstat(ctx, parent); err != nil || pe.Type != fsmirror.TypeDir {
			r.rescans = append(r.rescans, parent)
			return
		}
	}
	// Whatever happened to p moved its parent's mtime in the source, even
	// when the target already holds p as it is now (copied by a sync that
	// ran meanwhile): the parent's metadata is checked when quiet.
	dir := &dirState{path: parent}
	if p != "" {
		r.dirs = append(r.dirs, parent)
	}
	if dp != nil && dp.Type != se.Type && (se.Type == fsmirror.TypeDir || dp.Type == fsmirror.TypeDir) {
		if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: p, Entry: *dp}, dir) {
			return
		}
		dp = nil
	}
	switch se.Type {
	case fsmirror.TypeDir:
		if dp != nil {
			s.syncMeta(ctx, p, &se, dp)
			return
		}
		if err := l.syncSubtree(ctx, p); err != nil && !errors.Is(err, context.Canceled) {
			s.fail(p, err)
		}
		dir.changed.Store(true)
	case fsmirror.TypeFile:
		l.planFile(ctx, p, &se, dp, dir, r)
	default: // symlink, fifo, device
		s.syncNode(ctx, p, &se, dp, dir)
	}
}

// gone handles a path that the source no longer has.
func (l *Live) gone(ctx context.Context, p string, r *result) {
	l.links.remove(p)
	if l.opt.NoDelete || p == "" {
		return
	}
	de, err := l.dst.Lstat(ctx, p)
	if err != nil {
		r.dirs = append(r.dirs, parentOf(p)) // an excluded or never mirrored name went
		return
	}
	if l.opt.Filter.Excluded(p, de.Type == fsmirror.TypeDir) {
		r.dirs = append(r.dirs, parentOf(p))
		return
	}
	if l.syncer.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: p, Entry: de}, nil) {
		r.dirs = append(r.dirs, parentOf(p))
	}
}

// planFile mirrors a regular file, keeping hard links linked: a new name of
// an inode the target already holds becomes a link to it, and a file
// rewritten through one name is relinked under its other names.
func (l *Live) planFile(ctx context.Context, p string, se, dp *fsmirror.Entry, dir *dirState, r *result) {
	s := l.syncer
	key := [2]uint64{se.Dev, se.Ino}
	if se.Nlink <= 1 {
		l.links.remove(p)
	} else {
		defer l.links.lock(key)()
		l.links.set(p, key)
		others := l.links.others(p, key)
		if len(others) == 0 && l.links.unresolved(key, se.Nlink) {
			// A new name of an inode whose other names are unknown:
			// link(2) reports only the new name. A stat-only rescan at
			// the next quiet moment finds them.
			r.linkScan = true
		}
		for _, q := range others {
			qs, err := l.src.Lstat(q)
			if err != nil || qs.Dev != se.Dev || qs.Ino != se.Ino {
				continue
			}
			qd, err := l.dst.Lstat(ctx, q)
			if err != nil || qd.Type != fsmirror.TypeFile || qd.Size != se.Size || qd.Mtime != se.Mtime {
				continue
			}
			if dp == nil || dp.Ino != qd.Ino {
				if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpLink, Path: p, From: q, Entry: *se, Replace: dp != nil}, dir) {
					break
				}
			}
			s.syncMeta(ctx, p, se, &qd)
			return
		}
	}
	ok, written := s.syncFile(ctx, dir, fileWork{path: p, src: *se, dst: dp})
	if !ok || !written || se.Nlink <= 1 {
		return
	}
	for _, q := range l.links.others(p, key) {
		qs, err := l.src.Lstat(q)
		if err != nil || qs.Dev != se.Dev || qs.Ino != se.Ino {
			continue
		}
		if s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpLink, Path: q, From: p, Entry: qs, Replace: true}, nil) {
			r.dirs = append(r.dirs, parentOf(q))
		}
	}
}

// rename moves it.from to it.path on the target when the source did the
// same, so that a renamed file or directory keeps its inode and nothing is
// copied; then both paths are planned as usual, which corrects whatever
// else happened to them meanwhile.
func (l *Live) rename(ctx context.Context, it *item, r *result) {
	from, to := it.from, it.path
	l.links.rename(from, to)
	// The target follows the event even when the source has moved on
	// since: "to" renamed again (mv a b; mv b c) or "from" reused (a swap
	// through a third name). Each later change has its own event, queued
	// behind this one, and this is what lets a renamed file keep its inode.
	se, err := l.src.Lstat(to)
	toGone := isGone(err)
	isDir := it.isDir
	if err == nil {
		isDir = se.Type == fsmirror.TypeDir
	}
	applied := false
	fromStat, ferr := l.src.Lstat(from)
	fromExists := ferr == nil
	// A file renamed to a name whose size is left out is not moved there
	// on the target: the old name is deleted below, as for a delete.
	sizeOut := err == nil && se.Type == fsmirror.TypeFile && !l.opt.Size.Contains(se.Size)
	if (err == nil || toGone) && !sizeOut && !l.opt.Filter.Excluded(to, isDir) {
		de, derr := l.dst.Lstat(ctx, from)
		_, terr := l.dst.Lstat(ctx, to)
		// While the source's old name is in use again (an exchange of two
		// names, or a new file there), the target's "to" may still be
		// needed: it is not replaced, both are compared below instead.
		replaceNeeded := terr == nil && fromExists
		if derr == nil && !replaceNeeded && (de.Type == fsmirror.TypeDir) == isDir && (err != nil || de.Type == se.Type) {
			entry := de
			if err == nil {
				entry = se
			}
			op := &fsmirror.Op{Kind: fsmirror.OpRename, Path: to, From: from, Entry: entry, Replace: terr == nil}
			if l.syncer.apply(ctx, op, nil) {
				applied = true
				r.dirs = append(r.dirs, parentOf(from), parentOf(to))
			}
		}
	}
	switch {
	case toGone:
		// Where it went, a later event says.
	case err == nil && se.Type == fsmirror.TypeDir:
		// Whatever changed inside while the rename was on its way is
		// found by comparing the subtree; nothing equal is copied.
		if serr := l.syncSubtree(ctx, to); serr != nil && !isGone(serr) && !isNotDir(serr) && !errors.Is(serr, context.Canceled) {
			l.syncer.fail(to, serr)
		}
	default:
		l.planPath(ctx, to, r)
	}
	if !applied {
		// The target's "from" was not moved: it may be stale.
		if fromExists && fromStat.Type == fsmirror.TypeDir {
			if serr := l.syncSubtree(ctx, from); serr != nil && !isGone(serr) && !isNotDir(serr) && !errors.Is(serr, context.Canceled) {
				l.syncer.fail(from, serr)
			}
			r.dirs = append(r.dirs, parentOf(from))
		} else {
			l.planPath(ctx, from, r)
		}
	}
}
