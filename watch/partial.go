package watch

import (
	"time"

	"github.com/fsmirror/fsmirror"
)

// An inotify watcher with Options.OnLimit that runs out of watches keeps
// going with the directories it could watch. Each directory it could not
// watch, whose parent is watched, is remembered as (parent, name), as lost
// directories are, so that its path follows renames of its ancestors; its
// parent reports its creation, deletion and renames, but nothing below it is
// reported. Every Options.LimitRescan the watcher tries to watch each of them
// again and sends a Rescan for it, whether that succeeded or not.

// maxWatchesForTest, if positive, makes a watcher fail to add a watch once
// it holds that many, as if the kernel's limit were reached.
var maxWatchesForTest int

// partial reports whether running out of watches is not fatal.
func (w *Watcher) partial() bool { return w.onLimit != nil }

// addUnwatched remembers that directory name in parent could not be
// watched for want of watches.
func (w *Watcher) addUnwatched(parent *node, name string) {
	if w.unwatched == nil {
		w.unwatched = make(map[lostKey]struct{})
	}
	if len(w.unwatched) == 0 {
		w.nextLimitRescan = time.Now().Add(w.limitRescan)
	}
	w.unwatched[lostKey{parent, name}] = struct{}{}
}

// rescanUnwatched tries to watch the directories that could not be
// watched, and sends a Rescan for each.
func (w *Watcher) rescanUnwatched(emit func(Event)) error {
	keys := make([]lostKey, 0, len(w.unwatched))
	for k := range w.unwatched {
		keys = append(keys, k)
	}
	clear(w.unwatched)
	for _, k := range keys {
		if w.wds[k.parent.wd] != k.parent || k.parent.children[k.name] != nil {
			continue // forgotten meanwhile, or watched
		}
		dir, ok := w.pathOf(k.parent)
		if !ok {
			continue
		}
		if err := w.newDir(k.parent, k.name, fsmirror.Join(dir, k.name), false, emit); err != nil {
			return err
		}
	}
	w.nextLimitRescan = time.Now().Add(w.limitRescan)
	return nil
}

// shortError returns the *LimitError to report through OnLimit when the
// watcher has just started to miss directories, a nil *LimitError when it
// has just watched every directory again, and ok false when there is
// nothing new to report. It is called with mu held; OnLimit is called
// without.
func (w *Watcher) shortError() (e *LimitError, ok bool) {
	if !w.partial() {
		return nil, false
	}
	switch {
	case len(w.unwatched) > 0 && !w.shortReported:
		w.shortReported = true
		e = w.limitError(w.someUnwatched())
		e.Unwatched, e.Rescan = len(w.unwatched), w.limitRescan
		return e, true
	case len(w.unwatched) == 0 && w.shortReported:
		w.shortReported = false
		return nil, true
	}
	return nil, false
}

// someUnwatched returns the path of one directory that could not be
// watched.
func (w *Watcher) someUnwatched() string {
	for k := range w.unwatched {
		if dir, ok := w.pathOf(k.parent); ok {
			return fsmirror.Join(dir, k.name)
		}
	}
	return ""
}

// reportShort calls OnLimit if shortError has something to say.
func (w *Watcher) reportShort() {
	w.mu.Lock()
	e, ok := w.shortError()
	w.mu.Unlock()
	if ok {
		w.onLimit(e)
	}
}
