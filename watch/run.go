package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// moveFrom is a MOVED_FROM waiting for the MOVED_TO with the same cookie.
type moveFrom struct {
	cookie uint32
	parent *node
	name   string
	path   string
	isDir  bool
	node   *node // the directory's node when it was moved
	reads  int   // reads processed since it arrived
}

const (
	maxPending = 64 // MOVED_FROMs waiting at once; more are moves out
	maxReads   = 3  // reads a MOVED_FROM survives unpaired
)

// run is the reader goroutine: it reads events, turns them into batches and
// sends them, until Close or a fatal error.
func (w *Watcher) run() {
	defer w.exit()
	buf := make([]byte, w.bufSize)
	var pairDeadline time.Time
	for {
		// Arm the deadline before looking at the requests, so a wake-up
		// made after the look interrupts the read.
		w.mu.Lock()
		pending := len(w.pending) > 0
		var limitAt time.Time // when to rescan unwatched directories
		if len(w.unwatched) > 0 {
			limitAt = w.nextLimitRescan
		}
		w.mu.Unlock()
		if pending {
			if pairDeadline.IsZero() {
				pairDeadline = time.Now().Add(w.pairWait)
			}
		} else {
			pairDeadline = time.Time{}
		}
		deadline := pairDeadline
		if !limitAt.IsZero() && (deadline.IsZero() || limitAt.Before(deadline)) {
			deadline = limitAt
		}
		w.file.SetReadDeadline(deadline)
		w.mu.Lock()
		p, extra, failed := w.pause, w.extra, w.err != nil
		w.pause, w.extra = nil, nil
		w.mu.Unlock()
		if failed {
			return
		}
		if len(extra) > 0 && !w.send(extra) {
			return
		}
		if p != nil {
			close(p.ack)
			select {
			case <-p.gate:
			case <-w.done:
				return
			}
			continue
		}

		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				var batch []Event
				var rerr error
				emit := func(e Event) { batch = appendEvent(batch, e) }
				now := time.Now()
				w.mu.Lock()
				if pending && !now.Before(pairDeadline) {
					w.flushPending(0, emit)
					pairDeadline = time.Time{}
				}
				if !limitAt.IsZero() && !now.Before(limitAt) && len(w.unwatched) > 0 {
					rerr = w.rescanUnwatched(emit)
				}
				w.mu.Unlock()
				if len(batch) > 0 && !w.send(batch) {
					return
				}
				if rerr != nil {
					w.die(rerr)
					return
				}
				w.reportShort()
				continue
			}
			w.die(fmt.Errorf("read inotify events: %w", err))
			return
		}
		pairDeadline = time.Time{}
		w.mu.Lock()
		batch, err := w.process(buf[:n])
		w.mu.Unlock()
		if len(batch) > 0 && !w.send(batch) {
			return
		}
		if err != nil {
			w.die(err)
			return
		}
		w.reportShort()
	}
}

// send hands a batch to the consumer, unless the watcher is closed first.
func (w *Watcher) send(batch []Event) bool {
	select {
	case w.events <- batch:
		return true
	case <-w.done:
		return false
	}
}

// die records the fatal error err, unless the watcher is being closed.
func (w *Watcher) die(err error) {
	if w.closing() || errors.Is(err, ErrClosed) {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = fmt.Errorf("watch %s: %w", w.root, err)
	}
	w.mu.Unlock()
}

func (w *Watcher) exit() {
	w.closeFile()
	w.mu.Lock()
	w.dead = true
	w.wds = make(map[int32]*node)
	w.pending, w.extra, w.lost, w.unwatched = nil, nil, nil, nil
	fan := w.fan != nil
	w.mu.Unlock()
	if fan {
		// The sender hands over what is left, then returns.
		w.signalSender()
		<-w.sent
		w.mu.Lock()
		w.fan.close()
		w.outbox = nil
		w.mu.Unlock()
	}
	close(w.events)
	close(w.exited)
}

// appendEvent appends e unless it repeats the previous event.
func appendEvent(batch []Event, e Event) []Event {
	if n := len(batch); n > 0 && batch[n-1] == e {
		return batch
	}
	return append(batch, e)
}

// process turns one read's worth of raw events into a batch.
func (w *Watcher) process(buf []byte) ([]Event, error) {
	var batch []Event
	emit := func(e Event) { batch = appendEvent(batch, e) }
	for len(buf) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(buf[0:]))
		mask := binary.NativeEndian.Uint32(buf[4:])
		cookie := binary.NativeEndian.Uint32(buf[8:])
		end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[12:]))
		if end > len(buf) {
			break
		}
		name := buf[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		buf = buf[end:]
		if err := w.handle(wd, mask, cookie, string(name), emit); err != nil {
			return batch, err
		}
	}
	// A MOVED_FROM that several reads did not pair is a move out.
	for i := range w.pending {
		w.pending[i].reads++
	}
	w.flushPending(maxReads, emit)
	if w.resyncAll {
		return batch, w.overflow(emit)
	}
	return batch, nil
}

// flushPending turns the MOVED_FROMs that waited at least reads reads into
// moves out of the tree.
func (w *Watcher) flushPending(reads int, emit func(Event)) {
	kept := w.pending[:0]
	for _, m := range w.pending {
		if m.reads >= reads {
			w.movedOut(m, emit)
		} else {
			kept = append(kept, m)
		}
	}
	clear(w.pending[len(kept):])
	w.pending = kept
}

func (w *Watcher) takePending(cookie uint32) (moveFrom, bool) {
	for i, m := range w.pending {
		if m.cookie == cookie {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			return m, true
		}
	}
	return moveFrom{}, false
}

// handle turns one raw event into events.
func (w *Watcher) handle(wd int32, mask, cookie uint32, name string, emit func(Event)) error {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		return w.overflow(emit)
	}
	if mask&unix.IN_IGNORED != 0 {
		return w.ignored(wd)
	}
	n := w.wds[wd]
	if n == nil {
		return nil // a watch we removed; its IN_IGNORED is on its way
	}
	if name == "" {
		return w.selfEvent(n, mask, emit)
	}
	dir, ok := w.pathOf(n)
	if !ok {
		return nil // detached: its place in the tree is unknown for now
	}
	p := fsmirror.Join(dir, name)
	isDir := mask&unix.IN_ISDIR != 0
	if isDir && w.excluded(p) {
		// No event names an excluded directory. A directory renamed to
		// an excluded name leaves the tree.
		if mask&unix.IN_MOVED_TO != 0 {
			if m, ok := w.takePending(cookie); ok {
				w.movedOut(m, emit)
			}
		}
		// Its parent's mtime moved when it was created, renamed or
		// removed, and the parent is mirrored.
		if mask&(unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO) != 0 {
			emit(Event{Kind: Changed, Path: dir, IsDir: true})
		}
		return nil
	}
	if isDir && mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
		delete(w.lost, lostKey{n, name})
		delete(w.unwatched, lostKey{n, name})
	}
	switch {
	case mask&unix.IN_MOVED_FROM != 0:
		m := moveFrom{cookie: cookie, parent: n, name: name, path: p, isDir: isDir}
		if isDir {
			m.node = n.children[name]
		}
		w.pending = append(w.pending, m)
		if len(w.pending) > maxPending {
			w.movedOut(w.pending[0], emit)
			w.pending = append(w.pending[:0], w.pending[1:]...)
		}
	case mask&unix.IN_MOVED_TO != 0:
		m, ok := w.takePending(cookie)
		switch {
		case !ok && isDir:
			return w.newDir(n, name, p, true, emit)
		case !ok:
			emit(Event{Kind: Changed, Path: p})
		case isDir:
			return w.renameDir(m, n, name, p, emit)
		default:
			emit(Event{Kind: Renamed, Path: p, From: m.path})
		}
	case mask&unix.IN_CREATE != 0:
		if isDir {
			return w.newDir(n, name, p, true, emit)
		}
		emit(Event{Kind: Changed, Path: p})
	case mask&unix.IN_ATTRIB != 0:
		if isDir && n.children[name] == nil {
			// A directory that could not be watched may have become
			// readable; a detached one is found again.
			return w.newDir(n, name, p, false, emit)
		}
		emit(Event{Kind: Changed, Path: p, IsDir: isDir})
	case mask&unix.IN_DELETE != 0:
		emit(Event{Kind: Changed, Path: p, IsDir: isDir})
	case mask&unix.IN_MODIFY != 0 && isDir:
		// A directory is never written to: this is a new mtime alone
		// (utimensat with only the mtime sends IN_MODIFY, not IN_ATTRIB).
		emit(Event{Kind: Changed, Path: p, IsDir: true})
	case mask&unix.IN_MODIFY != 0:
		emit(Event{Kind: Opened, Path: p})
	case mask&unix.IN_CLOSE_WRITE != 0:
		emit(Event{Kind: Closed, Path: p})
	}
	return nil
}

// selfEvent handles an event about a watched directory itself. Its parent
// reports the same change by name, except for the root.
func (w *Watcher) selfEvent(n *node, mask uint32, emit func(Event)) error {
	switch {
	case n == w.top && mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0:
		return ErrRootGone
	case n == w.top && mask&(unix.IN_ATTRIB|unix.IN_MODIFY) != 0:
		// IN_MODIFY on a directory: its mtime alone was set.
		emit(Event{Kind: Changed, Path: "", IsDir: true})
	case mask&unix.IN_UNMOUNT != 0:
		// The file system below n was unmounted: n's path now shows the
		// directory it covered, which needs its own watches.
		parent, name := n.parent, n.name
		w.drop(n)
		if parent != nil {
			if dir, ok := w.pathOf(parent); ok {
				return w.newDir(parent, name, fsmirror.Join(dir, name), true, emit)
			}
		}
	}
	return nil
}

// ignored handles IN_IGNORED: the kernel removed watch wd, because its
// directory was deleted or unmounted, or because we asked.
func (w *Watcher) ignored(wd int32) error {
	if _, ok := w.removed[wd]; ok {
		delete(w.removed, wd)
		return nil
	}
	n := w.wds[wd]
	if n == nil {
		return nil
	}
	if n == w.top {
		return ErrRootGone
	}
	// Subdirectories are normally gone already (a directory is deleted
	// empty); any left lose their watches.
	for _, c := range n.children {
		w.drop(c)
	}
	w.forget(n)
	return nil
}

// movedOut handles a MOVED_FROM without MOVED_TO: m left the tree.
func (w *Watcher) movedOut(m moveFrom, emit func(Event)) {
	emit(Event{Kind: Changed, Path: m.path, IsDir: m.isDir})
	if x := m.node; x != nil && w.wds[x.wd] == x && x.parent == m.parent && x.name == m.name {
		w.drop(x)
	}
}

// renameDir handles a directory renamed inside the tree from m to name in
// parent to, at path p. The kernel keeps the directory's watch, so its node
// just moves. Which directory is now at p is asked of the kernel (adding a
// watch on a watched directory returns its wd), so an exchange of two
// directories (RENAME_EXCHANGE) or a rename over an empty directory leaves
// every node where its directory is.
func (w *Watcher) renameDir(m moveFrom, to *node, name, p string, emit func(Event)) error {
	emit(Event{Kind: Renamed, Path: p, From: m.path, IsDir: true})
	dir, _ := w.pathOf(to)
	wk := w.newWalker(false)
	var n *node
	pfd, err := w.openRel(dir)
	if err == nil {
		n, err = wk.dir(to, pfd, name, p)
		unix.Close(pfd)
		if err != nil {
			return w.walkError(err)
		}
	}
	if n == nil && m.node != nil && w.wds[m.node.wd] == m.node {
		// Gone from p already (a later event says where): move it as
		// the event says.
		n = m.node
		w.attach(n, to, name)
	}
	if n != nil && n.born == wk.epoch {
		// Not the directory that was renamed: a new one took its place.
		emit(Event{Kind: Rescan, Path: p, IsDir: true})
	}
	for _, d := range append(wk.denied, wk.short...) {
		emit(Event{Kind: Rescan, Path: d, IsDir: true})
	}
	return w.retryLost(n, emit)
}

// overflow handles IN_Q_OVERFLOW: events were lost. Every directory is
// walked again so that those that appeared unseen are watched and those
// that left unseen are forgotten, then the whole tree is to be rescanned.
func (w *Watcher) overflow(emit func(Event)) error {
	w.pending = nil
	w.lost = nil
	clear(w.unwatched) // found again by the walk
	w.resyncAll = false
	// IN_IGNORED events may have been lost with the others.
	clear(w.removed)
	if err := w.resync("", func(Event) {}); err != nil {
		return err
	}
	emit(Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
	return nil
}
