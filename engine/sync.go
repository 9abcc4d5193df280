// Package engine turns a source tree and a Target into the ops that make the
// target equal to the source, and applies them.
//
// Planning always looks at the source as it is now (lstat, read dir) and at
// what the target holds, never at a log of past events, so running a plan
// twice, or late, is harmless: the second run finds nothing to do.
//
// A one-shot sync (Sync) runs in three phases: a parallel walk that creates,
// writes and deletes; then the hard links, once the files they point to are
// written; then directory metadata, once nothing more is written inside them.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/scan"
)

// Options tune a sync.
type Options struct {
	Workers  int            // parallel walkers and copiers; 0 means DefaultWorkers()
	NoDelete bool           // keep what the target has and the source does not
	Checksum bool           // compare content, not size and mtime, to skip a file
	Filter   *filter.Filter // excluded paths are neither sent nor deleted
	// Size leaves out regular files of the source outside its range:
	// they are not sent, and what the target holds under their names is
	// left alone (see filter.Size).
	Size   filter.Size
	AsRoot bool // mirror owners, fifos and device nodes
	// live is set for the syncs of a live mirror, where a path that
	// vanishes or changes while it is handled is no error: its own event
	// follows.
	live bool
	// down, for a live mirror, is set when the target reported
	// ErrTargetDown: the failed work is not an error, it is done again
	// when the target is back.
	down *downState
	// Report, if set, is told of every change, skip and error. Calls are
	// serialised.
	Report func(Event)
}

// DefaultWorkers is the number of workers used when Options.Workers is 0:
// enough to keep the disks busy while others wait on metadata.
func DefaultWorkers() int { return max(4, 2*runtime.NumCPU()) }

// EventKind says what an Event reports.
type EventKind uint8

// The event kinds.
const (
	EventChange EventKind = iota + 1 // Op was applied
	EventSkip                        // Path was left out on purpose; Err says why
	EventError                       // Path failed; Err says how
	EventNotice                      // something worth a log line happened; Err says what
)

// Event is a report of one change, skip or failure.
type Event struct {
	Kind EventKind
	Op   fsmirror.Op // for EventChange; Data is nil
	Path string
	Err  error
}

// Stats count the work of a sync. They may be read while it runs.
type Stats struct {
	Entries atomic.Int64 // source entries looked at
	Written atomic.Int64 // files written
	Bytes   atomic.Int64 // bytes of content written
	Changes atomic.Int64 // ops applied, writes included
	Deleted atomic.Int64 // paths deleted from the target
	Skipped atomic.Int64 // source entries not mirrored by policy
	Errors  atomic.Int64 // paths that failed
	// Unlisted counts directories whose source or target listing failed
	// (unreadable, or gone while the sync ran): what the target holds
	// below them was not compared.
	Unlisted atomic.Int64

	last atomic.Pointer[lastError] // see RecordError
}

// maxCopyTries bounds how often a file that changes while it is copied is
// copied again before the sync reports it.
const maxCopyTries = 3

// filesPerTask is how many files of one directory one task copies; a larger
// directory is split so that all workers share it. Workers in different
// directories do not contend for a directory's lock, so it is not small.
const filesPerTask = 64

// Sync makes the tree under dst equal to the tree under src. Per-path
// failures are reported through opt.Report and counted in stats; the error
// is for a failure of the whole sync (the context ended, the source root is
// unreadable).
func Sync(ctx context.Context, src *fsys.Root, dst fsmirror.Target, opt Options, stats *Stats) error {
	opt.Report = serialize(opt.Report)
	_, err := syncTree(ctx, src, dst, "", opt, stats)
	return err
}

// syncTree syncs the subtree rel, which must be a directory in src, and
// returns the syncer, whose link groups tell which source paths share an
// inode.
func syncTree(ctx context.Context, src *fsys.Root, dst fsmirror.Target, rel string, opt Options, stats *Stats) (*syncer, error) {
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers()
	}
	s := &syncer{src: src, dst: dst, opt: opt, stats: stats, links: map[[2]uint64]*linkGroup{}}
	rootSrc, err := src.Lstat(rel)
	if err != nil {
		return s, err
	}
	if rootSrc.Type != fsmirror.TypeDir {
		return s, &fsmirror.PathError{Op: "sync", Path: rel, Err: errNotDir}
	}
	root := &dirState{path: rel, src: rootSrc}
	rootDst, err := dst.Lstat(ctx, rel)
	switch {
	case err == nil && rootDst.Type == fsmirror.TypeDir:
		root.dst = &rootDst
	case err == nil && rel != "":
		// Something else is in the way: Mkdir replaces it.
		if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: rel, Entry: rootSrc, Replace: true}, nil) {
			return s, nil
		}
	case errors.Is(err, fs.ErrNotExist) && rel != "":
		if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: rel, Entry: rootSrc}, nil) {
			return s, nil
		}
	case errors.Is(err, fs.ErrNotExist): // a dry run into a new destination
	default:
		return s, err
	}
	s.dirs = append(s.dirs, root)

	g := scan.NewGroup(ctx, opt.Workers)
	s.group = g
	g.Go(func() { s.syncDir(ctx, root, root.dst == nil) })
	g.Wait()
	if err := ctx.Err(); err != nil {
		return s, err
	}

	g = scan.NewGroup(ctx, opt.Workers)
	for _, l := range s.deferred {
		g.Go(func() { s.finishLink(ctx, l) })
	}
	g.Wait()

	g = scan.NewGroup(ctx, opt.Workers)
	for _, d := range s.dirs {
		g.Go(func() { s.finishDir(ctx, d) })
	}
	g.Wait()
	return s, ctx.Err()
}

type syncer struct {
	src   *fsys.Root
	dst   fsmirror.Target
	opt   Options
	stats *Stats
	group *scan.Group

	mu       sync.Mutex
	dirs     []*dirState
	links    map[[2]uint64]*linkGroup // by source (dev, ino)
	deferred []*pendingLink
}

// errChanging says a file changed during each of its copies.
var errChanging = errors.New("file keeps changing while it is copied; the copy may be inconsistent")

// errNotDir says a subtree to sync is not a directory (any more).
var errNotDir = errors.New("not a directory")

// isGone reports whether err says a path does not exist (or a directory on
// its way is no directory any more).
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

// serialize returns a function that calls report, one call at a time.
func serialize(report func(Event)) func(Event) {
	if report == nil {
		return nil
	}
	var mu sync.Mutex
	return func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		report(ev)
	}
}

// dirState is a directory whose metadata is set in the last phase.
type dirState struct {
	path    string
	src     fsmirror.Entry
	dst     *fsmirror.Entry // as found; nil when created by this sync
	changed atomic.Bool     // something inside was created or removed
}

// linkGroup is a set of source paths that share one inode.
type linkGroup struct {
	paths   []string // every source path seen with this inode
	nlink   uint32
	first   string
	done    bool   // first was handled without error
	written bool   // first got a new inode on the target
	dstIno  uint64 // else: the inode it has there
}

// pendingLink is a path to hard-link to its group's first path in phase two.
type pendingLink struct {
	path  string
	dir   *dirState
	group *linkGroup
	src   fsmirror.Entry
	dst   *fsmirror.Entry
}

func (s *syncer) report(ev Event) {
	switch ev.Kind {
	case EventChange:
		s.stats.Changes.Add(1)
	case EventSkip:
		s.stats.Skipped.Add(1)
	case EventError:
		s.stats.Errors.Add(1)
		s.stats.RecordError(ev.Err)
	}
	if s.opt.Report == nil {
		return
	}
	ev.Op.Data = nil
	s.opt.Report(ev)
}

func (s *syncer) fail(path string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if s.opt.down != nil && errors.Is(err, fsmirror.ErrTargetDown) {
		if s.opt.down.set() {
			s.stats.RecordError(err)
			what := "unreachable"
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				what = "full"
			}
			s.report(Event{Kind: EventNotice, Err: fmt.Errorf("destination %s (%v): changes are kept and sent when it is back", what, err)})
		}
		return
	}
	if s.opt.live && (isGone(err) || errors.Is(err, errChanging) || errors.Is(err, fsys.ErrNotRegular)) {
		// Vanished, replaced or still changing while it was handled: the
		// event of that change follows and plans the path again.
		return
	}
	var pe *fsmirror.PathError
	if !errors.As(err, &pe) {
		err = &fsmirror.PathError{Op: "sync", Path: path, Err: err}
	}
	s.report(Event{Kind: EventError, Path: path, Err: err})
}

// apply applies op and reports it. It returns whether op succeeded.
func (s *syncer) apply(ctx context.Context, op *fsmirror.Op, dir *dirState) bool {
	if err := s.dst.Apply(ctx, op); err != nil {
		s.fail(op.Path, err)
		return false
	}
	if op.Kind != fsmirror.OpSetMeta && dir != nil {
		dir.changed.Store(true)
	}
	if op.Kind == fsmirror.OpDelete {
		s.stats.Deleted.Add(1)
	}
	s.report(Event{Kind: EventChange, Op: *op, Path: op.Path})
	return true
}

// syncDir syncs the entries of directory d and queues its subdirectories.
// dstEmpty says d was just created on the target, so there is nothing to list.
func (s *syncer) syncDir(ctx context.Context, d *dirState, dstEmpty bool) {
	srcEntries, err := s.src.ReadDir(d.path)
	if err != nil {
		s.stats.Unlisted.Add(1)
		// What the target holds below d stays as it is: without the source
		// listing nothing can be known to be gone.
		s.fail(d.path, err)
		return
	}
	var dstEntries []fsmirror.Entry
	if !dstEmpty {
		dstEntries, err = s.dst.ReadDir(ctx, d.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.stats.Unlisted.Add(1)
			s.fail(d.path, err)
			return
		}
	}
	s.stats.Entries.Add(int64(len(srcEntries)))

	// Both listings sorted by name and walked side by side: cheaper than
	// maps for the many small directories of a big tree.
	byName := func(a, b fsmirror.Entry) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(srcEntries, byName)
	slices.SortFunc(dstEntries, byName)
	matches := make([]*fsmirror.Entry, len(srcEntries)) // the target's entry of each source entry
	for i, j := 0, 0; j < len(dstEntries); {
		if i < len(srcEntries) {
			switch c := strings.Compare(srcEntries[i].Name, dstEntries[j].Name); {
			case c < 0:
				i++
				continue
			case c == 0:
				matches[i] = &dstEntries[j]
				i++
				j++
				continue
			}
		}
		// Only on the target. Deletes come first: they free space and names.
		de := &dstEntries[j]
		j++
		switch {
		case fsmirror.IsTempName(de.Name):
			// A temporary of an interrupted run: always removed.
		case s.opt.Filter.ExcludedName(d.path, de.Name, de.Type == fsmirror.TypeDir):
			continue // excluded paths are protected on the target
		case s.opt.NoDelete:
			continue
		}
		s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: fsmirror.Join(d.path, de.Name), Entry: *de}, d)
	}

	var files []fileWork
	for i := range srcEntries {
		se := &srcEntries[i]
		path := fsmirror.Join(d.path, se.Name)
		if s.opt.Filter.ExcludedName(d.path, se.Name, se.Type == fsmirror.TypeDir) {
			continue
		}
		if !fsmirror.Mirrorable(se.Type, s.opt.AsRoot) {
			s.report(Event{Kind: EventSkip, Path: path, Err: skipReason(se.Type)})
			continue
		}
		if se.Type == fsmirror.TypeFile && !s.opt.Size.Contains(se.Size) {
			s.stats.Skipped.Add(1) // by policy, as an exclude: no report
			continue
		}
		de := matches[i]
		if de != nil && de.Type != se.Type {
			if se.Type == fsmirror.TypeDir || de.Type == fsmirror.TypeDir {
				// Renaming a file over a directory (or back) is not atomic
				// anyway; remove the old one first.
				if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: path, Entry: *de}, d) {
					continue
				}
				de = nil
			}
		}
		switch se.Type {
		case fsmirror.TypeDir:
			child := &dirState{path: path, src: *se, dst: de}
			created := de == nil
			if created {
				if !s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: path, Entry: *se}, d) {
					continue
				}
			}
			s.mu.Lock()
			s.dirs = append(s.dirs, child)
			s.mu.Unlock()
			s.group.Go(func() { s.syncDir(ctx, child, created) })
		case fsmirror.TypeFile:
			if se.Nlink > 1 && s.deferLink(path, se, de, d) {
				continue
			}
			files = append(files, fileWork{path: path, src: *se, dst: de})
		default: // symlink, fifo, device
			s.syncNode(ctx, path, se, de, d)
		}
	}
	for len(files) > filesPerTask {
		chunk := files[:filesPerTask]
		files = files[filesPerTask:]
		s.group.Go(func() { s.syncFiles(ctx, d, chunk) })
	}
	s.syncFiles(ctx, d, files)
}

// syncNode makes a symlink, fifo or device node equal: recreated when its
// target or device differs, else only its metadata set.
func (s *syncer) syncNode(ctx context.Context, path string, se, de *fsmirror.Entry, d *dirState) {
	if de != nil && de.Type == se.Type && de.Target == se.Target && de.Rdev == se.Rdev {
		s.syncMeta(ctx, path, se, de)
		return
	}
	kind := fsmirror.OpMknod
	if se.Type == fsmirror.TypeSymlink {
		kind = fsmirror.OpSymlink
	}
	s.apply(ctx, &fsmirror.Op{Kind: kind, Path: path, Entry: *se, Replace: de != nil}, d)
}

func skipReason(t fsmirror.Type) error {
	if t == fsmirror.TypeSocket {
		return errors.New("sockets are not mirrored")
	}
	return errors.New(t.String() + "s are mirrored only when running as root")
}

type fileWork struct {
	path string
	src  fsmirror.Entry
	dst  *fsmirror.Entry
}

func (s *syncer) syncFiles(ctx context.Context, d *dirState, files []fileWork) {
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		ok, written := s.syncFile(ctx, d, f)
		if f.src.Nlink > 1 {
			s.firstLinked(f, ok, written)
		}
	}
}

// firstLinked records how the first path of a link group went.
func (s *syncer) firstLinked(f fileWork, ok, written bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.links[[2]uint64{f.src.Dev, f.src.Ino}]
	if g == nil || g.first != f.path {
		return
	}
	g.done, g.written = ok, written
	if !written && f.dst != nil {
		g.dstIno = f.dst.Ino
	}
}

// syncFile makes one regular file equal. It returns whether the target now
// holds the source's content (written says whether with a new inode).
func (s *syncer) syncFile(ctx context.Context, d *dirState, f fileWork) (ok, written bool) {
	if f.dst != nil && f.dst.Type == fsmirror.TypeFile && f.dst.Size == f.src.Size {
		same := f.dst.Mtime == f.src.Mtime
		if s.opt.Checksum {
			var err error
			if same, err = s.sameContent(ctx, f.path); err != nil {
				s.fail(f.path, err)
				return false, false
			}
		}
		if same {
			s.syncMeta(ctx, f.path, &f.src, f.dst)
			return true, false
		}
	}
	// The listing's metadata is what the copy is checked against: if the
	// file still has it after the copy, the copy is of that version.
	want := f.src
	for try := 1; ; try++ {
		file, err := s.src.Open(f.path)
		if err != nil {
			if isGone(err) {
				return false, false // gone since it was listed: nothing to mirror
			}
			s.fail(f.path, err)
			return false, false
		}
		op := &fsmirror.Op{Kind: fsmirror.OpWrite, Path: f.path, Entry: want, Data: file, Replace: f.dst != nil}
		err = s.dst.Apply(ctx, op)
		after, serr := file.Stat()
		file.Close()
		if serr == nil && after.Type != fsmirror.TypeFile {
			s.fail(f.path, fsys.ErrNotRegular)
			return false, false
		}
		if err != nil {
			s.fail(f.path, err)
			return false, false
		}
		d.changed.Store(true)
		if serr == nil && after.Size == want.Size && after.Mtime == want.Mtime && MetaEqual(&after, &want, s.opt.AsRoot) {
			s.stats.Written.Add(1)
			s.stats.Bytes.Add(want.Size)
			s.report(Event{Kind: EventChange, Op: *op, Path: f.path})
			return true, true
		}
		if try == maxCopyTries {
			s.fail(f.path, errChanging)
			return false, true
		}
		after.Name = want.Name
		want = after
	}
}

// sameContent compares the content of path on both sides by hash.
func (s *syncer) sameContent(ctx context.Context, path string) (bool, error) {
	h, ok := s.dst.(fsmirror.Hasher)
	if !ok {
		return false, nil
	}
	dh, err := h.Hash(ctx, path)
	if errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sh, err := s.src.Hash(path)
	if err != nil {
		return false, err
	}
	return string(dh) == string(sh), nil
}

// syncMeta sets the metadata of a path whose content is already equal.
func (s *syncer) syncMeta(ctx context.Context, path string, se, de *fsmirror.Entry) {
	if MetaEqual(se, de, s.opt.AsRoot) {
		return
	}
	s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: path, Entry: *se}, nil)
}

// MetaEqual reports whether two entries of the same type have the same
// mirrored metadata: mode (except for symlinks), mtime, and owner when
// withOwner.
func MetaEqual(a, b *fsmirror.Entry, withOwner bool) bool {
	if a.Type != fsmirror.TypeSymlink && a.Mode != b.Mode {
		return false
	}
	if withOwner && (a.Uid != b.Uid || a.Gid != b.Gid) {
		return false
	}
	return a.Mtime == b.Mtime
}

// deferLink records a file that shares its inode with others. The first path
// of a group is copied now; it returns true for the others, which are linked
// to it in phase two.
func (s *syncer) deferLink(path string, se, de *fsmirror.Entry, d *dirState) bool {
	key := [2]uint64{se.Dev, se.Ino}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.links[key]
	if !ok {
		s.links[key] = &linkGroup{first: path, paths: []string{path}, nlink: se.Nlink}
		return false
	}
	g.paths = append(g.paths, path)
	s.deferred = append(s.deferred, &pendingLink{path: path, dir: d, group: g, src: *se, dst: de})
	return true
}

// finishLink makes l.path a hard link to the first path of its group.
func (s *syncer) finishLink(ctx context.Context, l *pendingLink) {
	g := l.group
	if !g.done {
		// The first path failed or vanished: this one is copied on its own.
		s.syncFile(ctx, l.dir, fileWork{path: l.path, src: l.src, dst: l.dst})
		return
	}
	if !g.written && l.dst != nil && l.dst.Type == fsmirror.TypeFile && l.dst.Ino == g.dstIno {
		return // already linked
	}
	s.apply(ctx, &fsmirror.Op{Kind: fsmirror.OpLink, Path: l.path, From: g.first, Entry: l.src, Replace: l.dst != nil}, l.dir)
}

// finishDir sets a directory's metadata once its content is final. Only an
// existing directory whose own metadata differed is reported: putting back
// the mtime after changes inside, or finishing a directory this sync created,
// is not a change a user needs to hear about twice.
func (s *syncer) finishDir(ctx context.Context, d *dirState) {
	equal := d.dst != nil && MetaEqual(&d.src, d.dst, s.opt.AsRoot)
	if equal && !d.changed.Load() {
		return
	}
	op := &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: d.path, Entry: d.src}
	if err := s.dst.Apply(ctx, op); err != nil {
		s.fail(d.path, err)
		return
	}
	if !equal && d.dst != nil {
		s.report(Event{Kind: EventChange, Op: *op, Path: d.path})
	}
}
