package watch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// fanEvent is one event read from fanotify.
type fanEvent struct {
	mask uint64
	pid  int32
	// recs[0] names the directory and name of the event, or the old
	// ones of a FAN_RENAME; recs[1] the new ones of a FAN_RENAME.
	recs [2]fanRecord
	n    int // records in recs
}

const (
	fanInfoDFIDName    = unix.FAN_EVENT_INFO_TYPE_DFID_NAME
	fanInfoOldDFIDName = unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
	fanInfoNewDFIDName = unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME
	fanRenameBits      = unix.FAN_RENAME | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO
)

// nextFanEvent parses the first event of buf and returns the rest.
func nextFanEvent(buf []byte) (ev fanEvent, rest []byte, err error) {
	if len(buf) < fanMetaSize {
		return ev, nil, fmt.Errorf("%w: %d bytes left", errFanMalformed, len(buf))
	}
	size := int(binary.NativeEndian.Uint32(buf[0:]))
	vers := buf[4]
	metaLen := int(binary.NativeEndian.Uint16(buf[6:]))
	if vers != unix.FANOTIFY_METADATA_VERSION {
		return ev, nil, fmt.Errorf("%w: metadata version %d, want %d", errFanMalformed, vers, unix.FANOTIFY_METADATA_VERSION)
	}
	if size < fanMetaSize || size > len(buf) || metaLen < fanMetaSize || metaLen > size {
		return ev, nil, fmt.Errorf("%w: length %d", errFanMalformed, size)
	}
	ev.mask = binary.NativeEndian.Uint64(buf[8:])
	ev.pid = int32(binary.NativeEndian.Uint32(buf[20:]))
	// The descriptor (buf[16:20]) is always FAN_NOFD when file handles
	// are reported.
	info := buf[metaLen:size]
	for len(info) >= 4 {
		typ := info[0]
		ilen := int(binary.NativeEndian.Uint16(info[2:]))
		if ilen < 4 || ilen > len(info) {
			return ev, nil, fmt.Errorf("%w: record length %d", errFanMalformed, ilen)
		}
		rec := info[4:ilen]
		info = info[ilen:]
		var slot int
		switch typ {
		case fanInfoDFIDName, fanInfoOldDFIDName:
			slot = 0
		case fanInfoNewDFIDName:
			slot = 1
		default:
			continue // FID, DFID, PIDFD...: not asked for
		}
		// fsid (8), handle_bytes (4), handle_type (4), f_handle, name\0
		if len(rec) < 16 {
			return ev, nil, fmt.Errorf("%w: record of %d bytes", errFanMalformed, len(rec))
		}
		hb := int(binary.NativeEndian.Uint32(rec[8:]))
		if hb > len(rec)-16 {
			return ev, nil, fmt.Errorf("%w: file handle of %d bytes", errFanMalformed, hb)
		}
		name := rec[16+hb:]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		ev.recs[slot] = fanRecord{
			key:    rec[:16+hb],
			fsid:   rec[:8],
			htype:  int32(binary.NativeEndian.Uint32(rec[12:])),
			handle: rec[16 : 16+hb],
			name:   name,
		}
		ev.n = max(ev.n, slot+1)
	}
	return ev, buf[size:], nil
}

// process turns one read's worth of raw events into a batch. full says
// the read may have left events queued.
//
// fanotify merges an event into an identical one still queued (same
// process, directory, name and kind), at the older one's place: a change
// made after a rename may come before it. So after a rename, each of its
// two names that an earlier event of the same read named (or any, when the
// previous read may have left events queued) is reported changed again:
// planned after the rename, it is looked at as it is now.
func (f *fanState) process(buf []byte, full bool) ([]Event, error) {
	var batch []Event
	emit := func(e Event) { batch = appendEvent(batch, e) }
	defer f.closeMounts()
	prevDrained := f.drained
	f.drained = !full
	f.rootChecked = false

	// The names of this read's renames, and whether an event before the
	// rename named them.
	var named map[string]bool
	for b := buf; len(b) >= fanMetaSize; {
		size := int(binary.NativeEndian.Uint32(b[0:]))
		if size < fanMetaSize || size > len(b) {
			break // the main loop says what is wrong
		}
		if mask := binary.NativeEndian.Uint64(b[8:]); mask&fanRenameBits != 0 {
			ev, _, err := nextFanEvent(b)
			if err != nil {
				return nil, err
			}
			if named == nil {
				named = make(map[string]bool)
			}
			for i := range ev.n {
				named[recordKey(&ev.recs[i])] = false
			}
		}
		b = b[size:]
	}
	tailOf := func(r *fanRecord) bool {
		return !prevDrained || named[recordKey(r)]
	}
	// A MOVED_FROM or MOVED_TO that carries other bits was merged with
	// other events of its name, which may have come after the rename.
	merged := func(ev *fanEvent) bool {
		return ev.mask&^uint64(fanMoveMask|unix.FAN_ONDIR) != 0
	}
	note := func(ev *fanEvent) {
		if named == nil {
			return
		}
		for i := range ev.n {
			k := recordKey(&ev.recs[i])
			if _, ok := named[k]; ok {
				named[k] = true
			}
		}
	}

	var paired map[int]bool // offsets of MOVED_TOs paired with their MOVED_FROM
	pair := func(at int) {
		if paired == nil {
			paired = make(map[int]bool)
		}
		paired[at] = true
	}
	// The MOVED_FROMs that ended the previous read first.
	waiting := f.waiting
	f.waiting = nil
	for _, m := range waiting {
		to, toAt, found, ok := findMovedTo(buf, 0, &m.ev)
		switch {
		case ok:
			pair(toAt)
			note(&to)
			if err := f.rename(&m.ev, &m.ev.recs[0], &to.recs[0], m.tail, tailOf(&to.recs[0]) || merged(&to), emit); err != nil {
				return batch, err
			}
		case found:
			if err := f.single(&m.ev, emit); err != nil {
				return batch, err
			}
		default:
			f.waiting = append(f.waiting, m) // until its deadline
		}
	}
	for off := 0; off < len(buf); {
		ev, rest, err := nextFanEvent(buf[off:])
		if err != nil {
			return batch, err
		}
		at := off
		off = len(buf) - len(rest)
		switch {
		case ev.mask&unix.FAN_Q_OVERFLOW != 0:
			f.cache.clear()
			emit(Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
		case ev.n == 0:
			// No record: nothing to say where (not expected).
		case paired[at]:
			// The second half of a rename already reported.
		case ev.mask&unix.FAN_RENAME != 0 && ev.n == 2:
			err = f.rename(&ev, &ev.recs[0], &ev.recs[1], tailOf(&ev.recs[0]), tailOf(&ev.recs[1]), emit)
		case ev.mask&fanMoveMask == unix.FAN_MOVED_FROM:
			to, toAt, found, ok := findMovedTo(buf, off, &ev)
			switch {
			case ok:
				pair(toAt)
				err = f.rename(&ev, &ev.recs[0], &to.recs[0], tailOf(&ev.recs[0]) || merged(&ev), tailOf(&to.recs[0]) || merged(&to), emit)
				note(&to)
			case !found && len(f.waiting) < maxWaiting:
				// Its MOVED_TO may not be queued yet.
				f.waiting = append(f.waiting, waitingMove{ev: ev.clone(), tail: tailOf(&ev.recs[0]) || merged(&ev)})
				if len(f.waiting) == 1 {
					f.waitSince = time.Now()
				}
			default:
				err = f.single(&ev, emit)
			}
		default:
			err = f.single(&ev, emit)
		}
		note(&ev)
		if err != nil {
			return batch, err
		}
	}
	return batch, nil
}

// findMovedTo finds the MOVED_TO that pairs with the MOVED_FROM ev, for
// kernels without FAN_RENAME: the kernel queues the two halves of a rename
// one after the other, so the next event of the same process is the
// MOVED_TO, though other processes' events may come between. found says
// that buf holds a later event of the process, ok that it is the MOVED_TO.
// A half merged into an older event is not found: the rename is then
// reported as a move out and a move in.
func findMovedTo(buf []byte, off int, from *fanEvent) (to fanEvent, at int, found, ok bool) {
	for off < len(buf) {
		ev, rest, err := nextFanEvent(buf[off:])
		if err != nil {
			break
		}
		at := off
		off = len(buf) - len(rest)
		if ev.pid != from.pid {
			continue
		}
		ok := ev.mask&fanMoveMask == unix.FAN_MOVED_TO && ev.n > 0 &&
			ev.mask&unix.FAN_ONDIR == from.mask&unix.FAN_ONDIR
		return ev, at, true, ok
	}
	return fanEvent{}, 0, false, false
}

// A waitingMove is a MOVED_FROM that ended a read, waiting for its MOVED_TO
// in the next read, at most PairWait.
type waitingMove struct {
	ev   fanEvent
	tail bool
}

// maxWaiting bounds the MOVED_FROMs waiting at once; more are moves out.
const maxWaiting = 64

// clone returns a copy of ev that does not share the read buffer.
func (ev *fanEvent) clone() fanEvent {
	c := *ev
	for i := range c.n {
		r := &c.recs[i]
		key := bytes.Clone(r.key)
		r.key, r.fsid, r.handle, r.name = key, key[:8], key[16:], bytes.Clone(r.name)
	}
	return c
}

// flushWaiting reports the MOVED_FROMs still waiting as moves out.
func (f *fanState) flushWaiting(emit func(Event)) error {
	defer f.closeMounts()
	waiting := f.waiting
	f.waiting = nil
	for _, m := range waiting {
		if err := f.single(&m.ev, emit); err != nil {
			return err
		}
	}
	return nil
}

// single handles an event about one name.
func (f *fanState) single(ev *fanEvent, emit func(Event)) error {
	r := &ev.recs[0]
	isDir := ev.mask&unix.FAN_ONDIR != 0
	if isDir && f.isRoot(r) {
		if ev.mask&unix.FAN_MOVED_FROM != 0 ||
			ev.mask&(unix.FAN_DELETE|unix.FAN_MOVED_TO) != 0 && unlinked(f.rootFd) {
			return ErrRootGone
		}
	}
	if isDir && ev.mask&fanMoveMask != 0 {
		// The paths of the directories below it changed (the other half
		// of the rename, unknown, may be in the tree).
		defer f.cache.clear()
	}
	d := f.resolve(r)
	if f.rootGone {
		return ErrRootGone
	}
	switch d.state {
	case dirOutside, dirGone, dirExcluded:
		return nil
	case dirUnnamed:
		emit(Event{Kind: Rescan, Path: d.rel, IsDir: true})
		return nil
	}
	if string(r.name) == "." {
		// The directory itself: its attributes, or its mtime alone.
		emit(Event{Kind: Changed, Path: d.rel, IsDir: true})
		return nil
	}
	p := fsmirror.Join(d.rel, string(r.name))
	if !fsmirror.IsValidPath(p) {
		return nil
	}
	m := ev.mask
	if isDir && f.w.excluded(p) {
		// No event names an excluded directory; its parent's mtime
		// moved.
		if m&(unix.FAN_CREATE|unix.FAN_DELETE|fanMoveMask) != 0 {
			emit(Event{Kind: Changed, Path: d.rel, IsDir: true})
		}
		return nil
	}
	switch {
	case isDir && m&(unix.FAN_CREATE|unix.FAN_MOVED_TO) != 0:
		emit(Event{Kind: Rescan, Path: p, IsDir: true})
	case isDir:
		emit(Event{Kind: Changed, Path: p, IsDir: true})
	case m&unix.FAN_CLOSE_WRITE != 0:
		emit(Event{Kind: Closed, Path: p})
	case m&unix.FAN_MODIFY != 0:
		emit(Event{Kind: Opened, Path: p})
	default:
		emit(Event{Kind: Changed, Path: p})
	}
	return nil
}

// rename handles a rename from old to new. tailOld and tailNew ask that the
// name be reported changed after the rename (see process).
func (f *fanState) rename(ev *fanEvent, old, new *fanRecord, tailOld, tailNew bool, emit func(Event)) error {
	isDir := ev.mask&unix.FAN_ONDIR != 0
	if isDir && (f.isRoot(old) || f.isRoot(new) && unlinked(f.rootFd)) {
		return ErrRootGone
	}
	od, nd := f.resolve(old), f.resolve(new)
	if f.rootGone {
		return ErrRootGone
	}
	if isDir && (od.state != dirOutside || nd.state != dirOutside) {
		// The paths of the directories below it changed. A rename
		// outside the tree changes nothing the cache holds: what was
		// outside stays outside, and paths below the root are relative
		// to it, wherever it is.
		defer f.cache.clear()
	}
	from, fromIn := f.side(od, old, isDir, emit)
	to, toIn := f.side(nd, new, isDir, emit)
	switch {
	case fromIn && toIn:
		emit(Event{Kind: Renamed, Path: to, From: from, IsDir: isDir})
	case fromIn:
		emit(Event{Kind: Changed, Path: from, IsDir: isDir}) // moved out
	case toIn && isDir:
		emit(Event{Kind: Rescan, Path: to, IsDir: true}) // moved in
	case toIn:
		emit(Event{Kind: Changed, Path: to})
	}
	if fromIn && tailOld {
		emit(Event{Kind: Changed, Path: from})
	}
	if toIn && tailNew {
		emit(Event{Kind: Changed, Path: to})
	}
	return nil
}

// side returns the path of one side of a rename, and whether it is in the
// tree: not outside, not in or at an excluded directory.
func (f *fanState) side(d dirInfo, r *fanRecord, isDir bool, emit func(Event)) (string, bool) {
	switch d.state {
	case dirUnnamed:
		emit(Event{Kind: Rescan, Path: d.rel, IsDir: true})
		return "", false
	case dirInside:
	default:
		return "", false
	}
	p := fsmirror.Join(d.rel, string(r.name))
	if string(r.name) == "." || !fsmirror.IsValidPath(p) {
		return "", false
	}
	if isDir && f.w.excluded(p) {
		emit(Event{Kind: Changed, Path: d.rel, IsDir: true}) // its parent's mtime
		return "", false
	}
	return p, true
}
