package engine

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/watch"
)

// LiveOptions tune live mirroring.
type LiveOptions struct {
	Options
	// Delay is how long a path must be quiet before it is mirrored. Zero
	// mirrors as soon as a worker is free; a burst still costs one copy per
	// path per worker turn, since events only mark paths dirty.
	Delay time.Duration
	// MaxDelay bounds how long a file still being written (modified and not
	// yet closed) waits for its close before it is copied anyway.
	MaxDelay time.Duration
	// WriteQuiet is how long a file modified without a close must see no
	// further change before it is copied without waiting for MaxDelay. The
	// kernel reports a truncate or a new mtime (touch -m) like a write, and
	// no close follows those; a writer that is really at work keeps sending
	// changes. Zero means 250ms.
	WriteQuiet time.Duration
	// OnIdle, if set, is called by the dispatcher each time all known work
	// is done. Tests use it to wait for quiet.
	OnIdle func()
	// OnBackUp, if set, is called by the dispatcher when a target that
	// went down answers again, and must not block. It is then up to it to
	// have the tree compared (Rescan): an index of the target may be wrong
	// about the ops that were in flight when it went down. If it is not
	// set, the tree is compared at once.
	OnBackUp func()
}

var errOverflow = errors.New("the event queue overflowed and events were lost: rescanning the whole tree " +
	"(nothing is missed; raise fs.inotify.max_queued_events, or fs.fanotify.max_queued_events with fanotify, if this happens often)")

// Live keeps a target equal to a watched source: it turns watcher events
// into a set of dirty paths, plans each from the source as it is now, and
// applies the result with a pool of workers. See Run.
type Live struct {
	src    *fsys.Root // without a cache: the source changes under us
	dst    fsmirror.Target
	opt    LiveOptions
	stats  *Stats
	links  *linkIndex
	syncer *syncer // for its per-path helpers and reporting

	// Owned by the dispatcher goroutine.
	queue    []*item
	pending  map[string]*item // queued path and tree items by path
	busy     []*item
	dirMeta  map[string]struct{} // directories whose metadata to refresh when quiet
	linkScan bool                // rescan the whole tree when quiet, to find hard links

	requests chan rescanRequest // from Rescan, to the dispatcher

	busyPaths    *pathSet // the paths of busy items
	blockedPaths *pathSet // scratch space of dispatch

	down    downState
	probing bool          // a probe of a down target is under way
	backUp  chan struct{} // the probe found the target back

	status liveStatus // see status.go
}

type rescanRequest struct {
	path string
	done func()
}

type itemKind uint8

const (
	itemPath   itemKind = iota + 1 // plan one path
	itemTree                       // sync a whole subtree
	itemRename                     // rename from → path, then re-plan path
)

// item is one piece of pending work.
type item struct {
	kind    itemKind
	path    string
	from    string // itemRename
	isDir   bool   // itemRename
	last    time.Time
	queued  time.Time // when the oldest change it covers was first queued, for the lag
	writing time.Time // when a write without close was first seen; zero if none
	onDone  []func()  // called when the item is finished
}

// result is what a worker reports back to the dispatcher.
type result struct {
	it       *item
	dirs     []string // directories whose entries changed on the target
	rescans  []string // subtrees that turned out to need a full sync
	linkScan bool     // hard links to find: rescan the tree when quiet
}

// NewLive returns a live mirror from src to dst. src must be opened without
// a cache (fsys.OpenRoot(path, true)).
func NewLive(src *fsys.Root, dst fsmirror.Target, opt LiveOptions, stats *Stats) *Live {
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers()
	}
	opt.Report = serialize(opt.Report)
	opt.live = true
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 5 * time.Second
	}
	if opt.WriteQuiet <= 0 {
		opt.WriteQuiet = 250 * time.Millisecond
	}
	l := &Live{src: src, dst: dst, opt: opt, stats: stats, links: newLinkIndex(),
		pending: map[string]*item{}, dirMeta: map[string]struct{}{}, requests: make(chan rescanRequest),
		backUp: make(chan struct{}, 1), busyPaths: newPathSet(), blockedPaths: newPathSet(),
		status: newLiveStatus()}
	l.opt.down = &l.down
	l.syncer = &syncer{src: src, dst: dst, opt: l.opt.Options, stats: stats, links: map[[2]uint64]*linkGroup{}}
	return l
}

// InitialSync mirrors the whole tree once. Call it after the watcher is
// running, so that nothing changed during the sync goes unseen.
func (l *Live) InitialSync(ctx context.Context) error {
	return l.syncSubtree(ctx, "")
}

func (l *Live) syncSubtree(ctx context.Context, rel string) error {
	src, err := l.src.Clone()
	if err != nil {
		return err
	}
	defer src.Close()
	s, err := syncTree(ctx, src, l.dst, rel, l.opt.Options, l.stats)
	l.links.merge(s, rel == "")
	return err
}

// Rescan asks a running Run to compare the subtree path with the target
// (a periodic check for changes made to the target behind fsmirror's back)
// and to call done, if not nil, when it has. It returns false if ctx ends
// first.
func (l *Live) Rescan(ctx context.Context, path string, done func()) bool {
	select {
	case l.requests <- rescanRequest{path: path, done: done}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run mirrors the changes that events announce until ctx is done or the
// event channel is closed. Work in flight is finished before it returns.
func (l *Live) Run(ctx context.Context, events <-chan []watch.Event) error {
	work := make(chan *item)
	done := make(chan result, l.opt.Workers)
	for range l.opt.Workers {
		go func() {
			for it := range work {
				done <- l.do(ctx, it)
			}
		}()
	}
	defer close(work)
	l.status.start()
	defer l.status.stop()
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		now := time.Now()
		var next time.Time
		if l.down.isSet() {
			// Nothing is sent while the target is down: the queue keeps
			// the dirty paths, and a probe waits for the target.
			if !l.probing {
				l.probing = true
				go l.probe(ctx)
			}
		} else {
			next = l.dispatch(now, work)
		}
		if len(l.queue) == 0 && len(l.busy) == 0 && l.linkScan && !l.down.isSet() {
			l.linkScan = false
			l.enqueueTree("", now)
			next = l.dispatch(now, work)
		}
		if len(l.queue) == 0 && len(l.busy) == 0 && !l.down.isSet() {
			l.fixDirMeta(ctx)
			if l.opt.OnIdle != nil {
				l.opt.OnIdle()
			}
		}
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if !next.IsZero() {
			timer = time.NewTimer(next.Sub(now))
			timerC = timer.C
		}
		select {
		case batch, ok := <-events:
			if !ok {
				events = nil
				if len(l.busy) == 0 && len(l.queue) == 0 {
					return nil
				}
				continue
			}
			l.intake(batch, time.Now())
		case r := <-done:
			l.finish(r)
			if events == nil && len(l.busy) == 0 && len(l.queue) == 0 {
				return nil
			}
		case req := <-l.status.requests:
			req <- l.snapshot(time.Now())
		case req := <-l.requests:
			it := l.enqueueTree(req.path, time.Now())
			if req.done != nil {
				it.onDone = append(it.onDone, req.done)
			}
		case <-l.backUp:
			// What failed while it was down is found by comparing the
			// whole tree (with an index, a stat walk of the source).
			l.probing = false
			if len(l.busy) == 0 {
				l.noteBackUp(time.Now())
				l.down.clear()
				l.syncer.report(Event{Kind: EventNotice, Err: errBackUp})
				if l.opt.OnBackUp != nil {
					l.opt.OnBackUp()
				} else {
					l.enqueueTree("", time.Now())
				}
			} else {
				l.probing = true // wait for the busy workers to fail, then probe again
				go l.probe(ctx)
			}
		case <-timerC:
		case <-ctx.Done():
			for len(l.busy) > 0 {
				l.finish(<-done)
			}
			return ctx.Err()
		}
	}
}

var errBackUp = errors.New("destination reachable again: comparing the tree to send what changed meanwhile")

// probe waits, with growing pauses, until the target answers again, then
// tells Run.
func (l *Live) probe(ctx context.Context) {
	wait := l.down.nextWait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var err error
		if p, ok := l.dst.(fsmirror.Pinger); ok {
			err = p.Ping(ctx)
		}
		if err == nil {
			l.backUp <- struct{}{}
			return
		}
		wait = l.down.nextWait()
	}
}

// intake marks the paths of a batch of events dirty.
func (l *Live) intake(batch []watch.Event, now time.Time) {
	for _, ev := range batch {
		switch ev.Kind {
		case watch.Rescan:
			if ev.Overflow {
				l.syncer.report(Event{Kind: EventNotice, Err: errOverflow})
			}
			l.enqueueTree(ev.Path, now)
		case watch.Renamed:
			l.remap(&item{kind: itemRename, path: ev.Path, from: ev.From, isDir: ev.IsDir, last: now, queued: now})
		case watch.Closed:
			it := l.enqueue(ev.Path, now)
			it.writing = time.Time{}
		case watch.Opened:
			it := l.enqueue(ev.Path, now)
			if it.writing.IsZero() {
				it.writing = now
			}
		default:
			l.enqueue(ev.Path, now)
		}
	}
}

// enqueue marks path dirty and returns its queued item.
func (l *Live) enqueue(path string, now time.Time) *item {
	if it, ok := l.pending[path]; ok {
		it.last = now
		return it
	}
	it := &item{kind: itemPath, path: path, last: now, queued: now}
	l.pending[path] = it
	l.queue = append(l.queue, it)
	return it
}

// enqueueTree queues a sync of the subtree at path, which covers every
// queued path item below it, and returns its item.
func (l *Live) enqueueTree(path string, now time.Time) *item {
	if it, ok := l.pending[path]; ok {
		it.kind = itemTree
		it.last = now
		return it
	}
	var onDone []func()
	queued := queuedAt(now)
	kept := l.queue[:0]
	for _, it := range l.queue {
		if it.kind != itemRename && under(it.path, path) {
			delete(l.pending, it.path)
			onDone = append(onDone, it.onDone...)
			queued = earlier(queued, it.queued)
			continue
		}
		kept = append(kept, it)
	}
	l.queue = kept
	it := &item{kind: itemTree, path: path, last: now, queued: queued, onDone: onDone}
	l.pending[path] = it
	l.queue = append(l.queue, it)
	return it
}

// remap queues the rename r and moves queued work below its old path to the
// same place below the new one, after r: the source has already moved, so
// the old paths would be found missing and deleted, and the new ones must
// wait until the target has moved too.
func (l *Live) remap(r *item) {
	from, to := r.from, r.path
	for _, it := range l.queue {
		if it.kind == itemRename || !under(it.path, from) {
			continue
		}
		delete(l.pending, it.path)
		it.path = to + it.path[len(from):]
		if other, ok := l.pending[it.path]; ok && other != it {
			// Already queued under the new name: keep one item, at the
			// later place, so that it runs after the rename.
			other.kind = max(other.kind, it.kind)
			other.queued = earlier(other.queued, it.queued)
			it.kind = 0 // dropped below
			continue
		}
		l.pending[it.path] = it
	}
	kept := l.queue[:0]
	var moved []*item
	for _, it := range l.queue {
		switch {
		case it.kind == 0:
		case it.kind != itemRename && under(it.path, to):
			moved = append(moved, it) // after the rename
		default:
			kept = append(kept, it)
		}
	}
	kept = append(kept, r)
	l.queue = append(kept, moved...)
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	// Without building dir+"/", which would allocate.
	return dir == "" || len(path) >= len(dir) && path[:len(dir)] == dir && (len(path) == len(dir) || path[len(dir)] == '/')
}

// dispatchWindow bounds how far into the queue one dispatch looks for
// work: a long queue means every worker is busy, and scanning all of it on
// every wake-up would make the dispatcher the bottleneck.
const dispatchWindow = 1024

// dispatch hands ready items to free workers, keeping the order that
// matters: an item never runs while an overlapping item runs, and nothing
// overlapping a rename passes it in the queue. It returns when the next
// waiting item becomes ready, or zero.
func (l *Live) dispatch(now time.Time, work chan<- *item) (next time.Time) {
	if l.busyPaths.exact[""] > 0 {
		return next // the whole tree is being synced: nothing can run beside it
	}
	// Queued items that later overlapping items must not pass.
	blocked := l.blockedPaths
	blocked.reset()
	kept := l.queue[:0]
	for i, it := range l.queue {
		if len(l.busy) >= l.opt.Workers || i >= dispatchWindow {
			kept = append(kept, l.queue[i:]...)
			break
		}
		behind := blocked.overlaps(it)
		if !l.ready(it, now, &next) || behind || l.busyPaths.overlaps(it) {
			kept = append(kept, it)
			// Later work must not pass a waiting rename, nor a waiting
			// subtree sync: with a steady stream of work below it, a
			// subtree (the whole tree, after a target was down) would
			// otherwise wait for ever. An item below one that is already
			// blocked adds nothing.
			if (it.kind == itemRename || it.kind == itemTree || behind) && !(it.kind != itemRename && blocked.covers(it.path)) {
				blocked.add(it)
				if it.path == "" && it.kind != itemRename {
					// The whole tree waits: nothing behind it can pass.
					kept = append(kept, l.queue[i+1:]...)
					break
				}
			}
			continue
		}
		if it.kind != itemRename {
			delete(l.pending, it.path)
		}
		l.busy = append(l.busy, it)
		l.busyPaths.add(it)
		work <- it
	}
	l.queue = kept
	return next
}

// ready reports whether it has settled, else lowers next to when it will.
func (l *Live) ready(it *item, now time.Time, next *time.Time) bool {
	at := it.last.Add(l.opt.Delay)
	if !it.writing.IsZero() {
		// Still being written: wait for the close, for a quiet spell, or
		// for MaxDelay, whichever comes first.
		w := it.last.Add(l.opt.WriteQuiet)
		if m := it.writing.Add(l.opt.MaxDelay); m.Before(w) {
			w = m
		}
		if w.After(at) {
			at = w
		}
	}
	if !at.After(now) {
		return true
	}
	if next.IsZero() || at.Before(*next) {
		*next = at
	}
	return false
}

// finish takes back a worker's result.
func (l *Live) finish(r result) {
	for i, b := range l.busy {
		if b == r.it {
			l.busy = append(l.busy[:i], l.busy[i+1:]...)
			l.busyPaths.remove(b)
			break
		}
	}
	for _, d := range r.dirs {
		l.dirMeta[d] = struct{}{}
	}
	for _, p := range r.rescans {
		l.enqueueTree(p, time.Time{})
	}
	l.linkScan = l.linkScan || r.linkScan
	l.noteFinished(r.it)
	for _, f := range r.it.onDone {
		f()
	}
}

// fixDirMeta puts back the metadata of directories whose entries changed:
// creating or removing a name moves a directory's mtime on the target.
func (l *Live) fixDirMeta(ctx context.Context) {
	for d := range l.dirMeta {
		delete(l.dirMeta, d)
		se, err := l.src.Lstat(d)
		if err != nil || se.Type != fsmirror.TypeDir {
			continue // gone: its own event handles it
		}
		de, err := l.dst.Lstat(ctx, d)
		if err != nil || de.Type != fsmirror.TypeDir || MetaEqual(&se, &de, l.opt.AsRoot) {
			continue
		}
		if err := l.dst.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: d, Entry: se}); err != nil {
			l.syncer.fail(d, err)
		}
	}
}

// do runs one item on a worker.
func (l *Live) do(ctx context.Context, it *item) result {
	r := result{it: it}
	switch it.kind {
	case itemTree:
		if err := l.syncSubtree(ctx, it.path); err != nil && !errors.Is(err, context.Canceled) {
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				l.planPath(ctx, it.path, &r) // not a directory (any more)
			} else {
				l.syncer.fail(it.path, err)
			}
		}
		if it.path != "" {
			r.dirs = append(r.dirs, parentOf(it.path))
		}
	case itemRename:
		l.rename(ctx, it, &r)
	default:
		l.planPath(ctx, it.path, &r)
	}
	return r
}

func parentOf(p string) string {
	d, _ := fsmirror.Split(p)
	return d
}

func isNotDir(err error) bool { return errors.Is(err, errNotDir) }
