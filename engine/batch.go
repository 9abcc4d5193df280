package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/watch"
)

// BatchOptions tune a Batcher. The zero value is ready to use.
type BatchOptions struct {
	// Delay, MaxDelay and WriteQuiet are LiveOptions': how long a path must
	// be quiet, how long a file still open for writing may wait for its
	// close, and how long a file modified without a close must be quiet.
	// Zero MaxDelay means 5s, zero WriteQuiet 250ms.
	Delay, MaxDelay, WriteQuiet time.Duration
	// Processes is how many runs of the syncer go on at once; 0 means 1.
	Processes int
	// MaxPaths bounds the paths of one run; 0 means 20,000.
	MaxPaths int
	// MaxDirty bounds the dirty paths kept: past it, they are all replaced
	// by one sync of the whole tree. 0 means 100,000.
	MaxDirty int
	// PartialRetries is how often the paths of a run whose error wraps
	// fsmirror.ErrPartial are retried before they are reported as failed;
	// 0 means 8, negative none. Each retry splits them in two runs, so
	// that the paths that keep failing end up alone.
	PartialRetries int
	// RetryMin and RetryMax bound the backoff between retries of failed
	// runs; zero means 500ms and 30s.
	RetryMin, RetryMax time.Duration
	// Filter: excluded paths never make a run.
	Filter *filter.Filter
	// Report, if set, is told of notices (a retry, an overflow) and of
	// paths that failed. Calls are serialised.
	Report func(Event)
	// OnIdle, if set, is called each time all known work is done. Tests
	// use it to wait for quiet.
	OnIdle func()
}

// Batcher keeps a PathSyncer (an rsync destination) equal to a watched
// source: it turns watcher events into a set of dirty paths and hands them
// to the syncer in batches, one run per batch, at most Processes runs at
// once. See Run.
//
// The set holds each dirty path once, however many events name it, so its
// memory does not grow with the event rate; past MaxDirty paths it becomes
// one whole-tree sync. Two runs never touch the same path at once: a path
// waits while a run has it, its parent being deleted, or a tree around it.
// A failed run keeps its paths: retried with backoff while the destination
// is down, retried a few times when some paths failed.
type Batcher struct {
	dst fsmirror.PathSyncer
	opt BatchOptions
	now func() time.Time

	// Owned by the Run goroutine.
	pending   map[string]*dirty
	order     []*dirty       // pending items in the order they came, with holes (nil)
	below     map[string]int // pending items strictly below each directory
	busy      map[string]int // paths of the runs going on
	busyBelow map[string]int // busy paths strictly below each directory
	running   int
	rootMeta  bool      // the root's own metadata may have changed
	downUntil time.Time // the destination is down: no run before
	downWait  time.Duration
	wasDown   bool // a run failed with ErrTargetDown since the last success
	groups    int  // retry groups made so far
	requests  chan rescanRequest
	fatal     error
}

// dirty is one dirty path.
type dirty struct {
	path      string
	tree      bool // the whole subtree; "" is the whole tree
	last      time.Time
	writing   time.Time // a write without close was seen then; zero if none
	notBefore time.Time // a retry waits until then
	attempts  int       // partial failures so far
	group     int       // items of a retry go together; 0 for the others
	onDone    []func()
	index     int // in order
}

// batchResult is what a run reports back.
type batchResult struct {
	items    []*dirty
	rootMeta bool
	err      error
}

// NewBatcher returns a batcher that keeps dst up to date.
func NewBatcher(dst fsmirror.PathSyncer, opt BatchOptions) *Batcher {
	if opt.Processes <= 0 {
		opt.Processes = 1
	}
	if opt.MaxPaths <= 0 {
		opt.MaxPaths = 20_000
	}
	if opt.MaxDirty <= 0 {
		opt.MaxDirty = 100_000
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 5 * time.Second
	}
	if opt.WriteQuiet <= 0 {
		opt.WriteQuiet = 250 * time.Millisecond
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = 500 * time.Millisecond
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = 30 * time.Second
	}
	opt.RetryMax = max(opt.RetryMax, opt.RetryMin)
	if opt.PartialRetries == 0 {
		opt.PartialRetries = 8
	}
	opt.Report = serialize(opt.Report)
	return &Batcher{dst: dst, opt: opt, now: time.Now,
		pending: map[string]*dirty{}, below: map[string]int{}, busy: map[string]int{}, busyBelow: map[string]int{},
		requests: make(chan rescanRequest)}
}

// InitialSync mirrors the whole tree once. Call it after the watcher is
// running, so that nothing changed during the sync goes unseen. An error
// that wraps fsmirror.ErrPartial is reported and the whole tree is tried
// again by Run; any other error is returned.
func (b *Batcher) InitialSync(ctx context.Context) error {
	err := b.dst.SyncAll(ctx)
	if errors.Is(err, fsmirror.ErrPartial) && ctx.Err() == nil {
		b.report(Event{Kind: EventError, Err: fmt.Errorf("initial sync: %w (tried again shortly)", err)})
		it := b.add("", true, b.now())
		it.attempts = 1
		it.notBefore = b.now().Add(b.opt.RetryMin)
		return nil
	}
	return err
}

// Rescan asks a running Run to sync the subtree path ("" for the whole
// tree, a periodic check for changes made to the destination behind
// fsmirror's back) and to call done, if not nil, when it has. It returns
// false if ctx ends first.
func (b *Batcher) Rescan(ctx context.Context, path string, done func()) bool {
	select {
	case b.requests <- rescanRequest{path: path, done: done}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *Batcher) report(ev Event) {
	if b.opt.Report != nil {
		b.opt.Report(ev)
	}
}

// Run mirrors the changes that events announce until ctx is done, the
// event channel is closed (then it finishes the work it has), or a run
// fails in a way retrying cannot help, whose error it returns. Runs in
// flight are finished before it returns.
func (b *Batcher) Run(ctx context.Context, events <-chan []watch.Event) error {
	done := make(chan batchResult, b.opt.Processes)
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		now := b.now()
		var next time.Time
		if b.fatal == nil {
			next = b.dispatch(ctx, now, done)
		}
		if b.running == 0 && (b.fatal != nil || events == nil && len(b.pending) == 0 && !b.rootMeta) {
			return b.fatal
		}
		if b.running == 0 && len(b.pending) == 0 && !b.rootMeta && b.opt.OnIdle != nil {
			b.opt.OnIdle()
		}
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if !next.IsZero() {
			timer = time.NewTimer(max(0, next.Sub(now)))
			timerC = timer.C
		}
		select {
		case batch, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			b.intake(batch, b.now())
		case r := <-done:
			b.finish(r)
		case req := <-b.requests:
			it := b.add(req.path, true, b.now())
			if req.done != nil {
				it.onDone = append(it.onDone, req.done)
			}
		case <-timerC:
		case <-ctx.Done():
			for b.running > 0 {
				b.finish(<-done)
			}
			return ctx.Err()
		}
	}
}

// intake marks the paths of a batch of events dirty.
func (b *Batcher) intake(batch []watch.Event, now time.Time) {
	for _, ev := range batch {
		switch ev.Kind {
		case watch.Rescan:
			if ev.Overflow {
				b.report(Event{Kind: EventNotice, Err: errOverflow})
			}
			b.mark(ev.Path, true, true, now)
		case watch.Renamed:
			// rsync cannot rename: the old path goes, the new one comes,
			// a directory with all it holds.
			b.mark(ev.From, ev.IsDir, false, now)
			b.mark(ev.Path, ev.IsDir, ev.IsDir, now)
		case watch.Opened:
			if it := b.mark(ev.Path, false, false, now); it != nil && it.writing.IsZero() {
				it.writing = now
			}
		case watch.Closed:
			if it := b.mark(ev.Path, false, false, now); it != nil {
				it.writing = time.Time{}
			}
		default:
			b.mark(ev.Path, ev.IsDir, false, now)
		}
	}
	b.compact()
	if len(b.pending) > b.opt.MaxDirty {
		// The set would grow without bound: one whole-tree sync covers
		// it all.
		b.report(Event{Kind: EventNotice, Err: fmt.Errorf("more than %d paths changed before they could be sent: syncing the whole tree instead", b.opt.MaxDirty)})
		b.add("", true, now)
	}
}

// mark marks path dirty, unless it is excluded, and returns its item (nil
// when excluded or covered by a queued tree around it).
func (b *Batcher) mark(path string, isDir, tree bool, now time.Time) *dirty {
	if path != "" && b.opt.Filter.Excluded(path, isDir) {
		return nil
	}
	if path == "" && !tree {
		b.rootMeta = true // the root's own metadata
		return nil
	}
	if path != "" && !strings.Contains(path, "/") {
		// A name in the root was created, deleted or renamed: the root's
		// mtime moved.
		b.rootMeta = true
	}
	if !tree {
		for d := path; d != ""; {
			d = parentOf(d)
			if it, ok := b.pending[d]; ok && it.tree {
				// Covered by a tree that has not started yet.
				it.last = now
				return it
			}
		}
	}
	return b.add(path, tree, now)
}

// add queues path, or makes its queued item a tree, and returns the item.
// A tree swallows the queued items below it.
func (b *Batcher) add(path string, tree bool, now time.Time) *dirty {
	if path == "" && tree {
		b.rootMeta = false // SyncAll sets it
	}
	it, ok := b.pending[path]
	if !ok {
		it = &dirty{path: path, index: len(b.order)}
		b.pending[path] = it
		b.order = append(b.order, it)
		for d := path; d != ""; {
			d = parentOf(d)
			b.below[d]++
		}
	}
	it.last = now
	if tree && !it.tree {
		it.tree = true
		if b.below[path] > 0 {
			for _, o := range b.order {
				if o != nil && o != it && under(o.path, path) {
					it.onDone = append(it.onDone, o.onDone...)
					it.writing = later(it.writing, o.writing)
					b.remove(o)
				}
			}
		}
	}
	return it
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// remove takes a pending item out of the set.
func (b *Batcher) remove(it *dirty) {
	delete(b.pending, it.path)
	b.order[it.index] = nil
	for d := it.path; d != ""; {
		d = parentOf(d)
		if b.below[d]--; b.below[d] == 0 {
			delete(b.below, d)
		}
	}
}

// compact drops the holes of order, when there are many. It must not be
// called while order is iterated.
func (b *Batcher) compact() {
	if len(b.pending) == 0 {
		clear(b.order)
		b.order = b.order[:0]
		return
	}
	if len(b.order) < 1024 || len(b.order) < 4*len(b.pending) {
		return
	}
	kept := b.order[:0]
	for _, it := range b.order {
		if it != nil {
			it.index = len(kept)
			kept = append(kept, it)
		}
	}
	clear(b.order[len(kept):])
	b.order = kept
}

// conflicts reports whether a run now going on has path, a path below it
// or a path above it (a tree, or a directory being deleted).
func (b *Batcher) conflicts(path string) bool {
	if b.busyBelow[path] > 0 || b.busy[path] > 0 {
		return true
	}
	for d := path; d != ""; {
		d = parentOf(d)
		if b.busy[d] > 0 {
			return true
		}
	}
	return false
}

// setBusy counts path as part of a run (delta 1) or not any more (-1).
func (b *Batcher) setBusy(path string, delta int) {
	if b.busy[path] += delta; b.busy[path] == 0 {
		delete(b.busy, path)
	}
	for d := path; d != ""; {
		d = parentOf(d)
		if b.busyBelow[d] += delta; b.busyBelow[d] == 0 {
			delete(b.busyBelow, d)
		}
	}
}

// dispatch starts runs while there are free processes and ready paths, and
// returns when it should look again (zero: at the next event).
func (b *Batcher) dispatch(ctx context.Context, now time.Time, done chan<- batchResult) (next time.Time) {
	if now.Before(b.downUntil) {
		return b.downUntil
	}
	b.compact()
	for b.running < b.opt.Processes {
		items := b.take(now, &next)
		// The root's metadata rides along with any run but SyncAll,
		// which sets it anyway.
		rootMeta := b.rootMeta && b.busy[""] == 0 && (len(items) == 0 || items[0].path != "")
		if len(items) == 0 && !rootMeta {
			break
		}
		if rootMeta {
			b.rootMeta = false
		}
		b.running++
		go func() {
			done <- batchResult{items: items, rootMeta: rootMeta, err: b.sync(ctx, items, rootMeta)}
		}()
	}
	return next
}

// sync makes one run of the syncer for items, and the root's metadata.
func (b *Batcher) sync(ctx context.Context, items []*dirty, rootMeta bool) error {
	if len(items) == 1 && items[0].path == "" {
		return b.dst.SyncAll(ctx)
	}
	var paths, trees []string
	for _, it := range items {
		if it.tree {
			trees = append(trees, it.path)
		} else {
			paths = append(paths, it.path)
		}
	}
	if rootMeta {
		paths = append(paths, "")
	}
	return b.dst.SyncPaths(ctx, paths, trees)
}

// take takes the ready items that no run has, up to MaxPaths, and marks
// them busy. The whole tree goes alone.
func (b *Batcher) take(now time.Time, next *time.Time) []*dirty {
	var items []*dirty
	for _, it := range b.order {
		if it == nil || len(items) > 0 && it.group != items[0].group {
			continue
		}
		if !b.ready(it, now, next) || b.conflicts(it.path) {
			continue
		}
		if it.path == "" && len(items) > 0 {
			continue // SyncAll goes alone
		}
		b.remove(it)
		b.setBusy(it.path, 1)
		items = append(items, it)
		if it.path == "" || len(items) >= b.opt.MaxPaths {
			break
		}
	}
	return items
}

// ready reports whether it may run now, else lowers next to when it may.
func (b *Batcher) ready(it *dirty, now time.Time, next *time.Time) bool {
	at := it.last.Add(b.opt.Delay)
	if !it.writing.IsZero() {
		// Still being written: wait for the close, for a quiet spell, or
		// for MaxDelay, whichever comes first.
		w := it.last.Add(b.opt.WriteQuiet)
		if m := it.writing.Add(b.opt.MaxDelay); m.Before(w) {
			w = m
		}
		at = later(at, w)
	}
	at = later(at, it.notBefore)
	if !at.After(now) {
		return true
	}
	if next.IsZero() || at.Before(*next) {
		*next = at
	}
	return false
}

// finish takes back the result of a run.
func (b *Batcher) finish(r batchResult) {
	b.running--
	for _, it := range r.items {
		b.setBusy(it.path, -1)
	}
	now := b.now()
	switch err := r.err; {
	case err == nil:
		b.downWait = 0
		if b.wasDown {
			// Back after a failure: one whole-tree sync removes what a
			// run cut short may have left (rsync's temporaries).
			b.wasDown = false
			if len(r.items) != 1 || r.items[0].path != "" {
				b.report(Event{Kind: EventNotice, Err: errors.New("the destination is back: syncing the whole tree once")})
				b.add("", true, now)
			}
		}
		for _, it := range r.items {
			for _, f := range it.onDone {
				f()
			}
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Stopping: nothing to keep.
	case errors.Is(err, fsmirror.ErrTargetDown):
		b.rootMeta = b.rootMeta || r.rootMeta
		b.wasDown = true
		b.downWait = min(max(2*b.downWait, b.opt.RetryMin), b.opt.RetryMax)
		b.downUntil = now.Add(b.downWait)
		b.putBack(r.items, false, now)
		b.report(Event{Kind: EventNotice, Err: fmt.Errorf("%w; %d paths kept, trying again in %s", err, len(b.pending), b.downWait)})
	case errors.Is(err, fsmirror.ErrPartial):
		b.rootMeta = b.rootMeta || r.rootMeta
		failed := b.putBack(r.items, true, now)
		if len(failed) > 0 {
			b.report(Event{Kind: EventError, Path: failed[0], Err: fmt.Errorf("%w (%s; gave up after %d tries)", err, describePaths(failed), b.opt.PartialRetries+1)})
		} else {
			b.report(Event{Kind: EventNotice, Err: fmt.Errorf("%w; trying %d paths again", err, len(r.items))})
		}
	default:
		b.fatal = err
	}
}

// putBack queues the items of a failed run again, unless newer events
// queued their paths meanwhile. A partial failure counts against each
// item's tries; the paths of items that are out of tries are returned,
// and dropped.
func (b *Batcher) putBack(items []*dirty, partial bool, now time.Time) (failed []string) {
	half := [2]int{b.groups + 1, b.groups + 2}
	if partial {
		b.groups += 2
	}
	for i, it := range items {
		if partial {
			it.group = half[min(1, 2*i/len(items))]
			it.attempts++
			if it.attempts > max(0, b.opt.PartialRetries) {
				failed = append(failed, it.path)
				continue
			}
			it.notBefore = now.Add(min(b.opt.RetryMin<<min(it.attempts-1, 20), b.opt.RetryMax))
		}
		if _, ok := b.pending[it.path]; ok {
			continue
		}
		// Under a tree queued meanwhile: covered.
		covered := false
		for d := it.path; d != "" && !covered; {
			d = parentOf(d)
			o, ok := b.pending[d]
			covered = ok && o.tree
		}
		if covered {
			continue
		}
		q := b.add(it.path, it.tree, it.last)
		q.writing, q.notBefore, q.attempts, q.group, q.onDone = it.writing, it.notBefore, it.attempts, it.group, it.onDone
	}
	return failed
}

// describePaths names the first few paths of a list.
func describePaths(paths []string) string {
	const show = 3
	var names []string
	for _, p := range paths[:min(len(paths), show)] {
		names = append(names, fsmirror.QuotePath(p))
	}
	s := strings.Join(names, ", ")
	if len(paths) > show {
		s += fmt.Sprintf(" and %d more", len(paths)-show)
	}
	return s
}
