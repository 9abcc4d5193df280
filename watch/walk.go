package watch

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// openRel opens the directory at rel, one component at a time from the
// root, never following a symlink; it works for paths beyond PATH_MAX.
func (w *Watcher) openRel(rel string) (int, error) {
	fd, err := openRoot(w.root)
	for rel != "" && err == nil {
		var name string
		name, rel = cut(rel)
		var next int
		next, err = openDirAt(fd, name)
		unix.Close(fd)
		fd = next
	}
	return fd, err
}

func cut(p string) (first, rest string) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:]
		}
	}
	return p, ""
}

const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// addWatch watches the directory open as fd, whose path is rel. It goes
// through /proc/self/fd, which names exactly the directory that was opened
// (no race with a rename) at any depth; the magic link must be followed, so
// IN_DONT_FOLLOW is only used when watching by path.
func (w *Watcher) addWatch(fd int, rel string) (int32, error) {
	path, mask := "/proc/self/fd/"+strconv.Itoa(fd), uint32(watchMask)
	if !w.useProc {
		path = w.root
		if rel != "" {
			path += "/" + rel
			mask |= unix.IN_DONT_FOLLOW
		}
		if len(path) >= unix.PathMax {
			return -1, unix.ENAMETOOLONG
		}
	}
	var wd int
	var err error
	if cerr := w.rc.Control(func(ifd uintptr) {
		for {
			wd, err = unix.InotifyAddWatch(int(ifd), path, mask)
			if err != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		return -1, ErrClosed
	}
	if err == nil && w.maxWatches > 0 && w.wds[int32(wd)] == nil && len(w.wds) >= w.maxWatches {
		w.rmWatch(int32(wd))
		return -1, unix.ENOSPC
	}
	return int32(wd), err
}

func (w *Watcher) rmWatch(wd int32) {
	w.rc.Control(func(ifd uintptr) {
		unix.InotifyRmWatch(int(ifd), uint32(wd))
	})
}

func (w *Watcher) excluded(rel string) bool {
	return w.exclude != nil && rel != "" && w.exclude(rel, true)
}

// A walker adds watches on a directory and the directories below it.
type walker struct {
	w            *Watcher
	epoch        uint64
	descendKnown bool     // also walk below directories that were already watched
	tops         []string // newly watched directories whose parent was already watched
	denied       []string // directories that could not be read or watched (EACCES, EPERM)
	short        []string // directories not watched for want of watches (see partial.go)
}

func (w *Watcher) newWalker(descendKnown bool) *walker {
	w.epoch++
	return &walker{w: w, epoch: w.epoch, descendKnown: descendKnown}
}

// noSpaceError is a watch that failed for want of watches; walkError turns
// it into a *LimitError.
type noSpaceError struct{ rel string }

func (e *noSpaceError) Error() string {
	return "no inotify watch left for " + fsmirror.QuotePath(e.rel)
}

// walkError turns an error of a walk into the error to report.
func (w *Watcher) walkError(err error) error {
	var ns *noSpaceError
	if errors.As(err, &ns) {
		return w.limitError(ns.rel)
	}
	return err
}

// fail sorts out an error about directory rel: a directory that vanished (or
// became something else) is not an error, one that is denied is recorded.
func (wk *walker) fail(rel, op string, err error) error {
	switch {
	case vanished(err):
		return nil
	case err == unix.EACCES || err == unix.EPERM:
		wk.denied = append(wk.denied, rel)
		return nil
	case err == unix.ENOSPC && op == "watch directory":
		return &noSpaceError{rel}
	case err == ErrClosed:
		return err
	}
	return &fsmirror.PathError{Op: op, Path: rel, Err: err}
}

func vanished(err error) bool {
	return err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP
}

// dir watches directory name in parent (open as parentFd), whose path is
// rel, and walks below it. It returns the directory's node, or nil if the
// directory vanished or was denied.
func (wk *walker) dir(parent *node, parentFd int, name, rel string) (*node, error) {
	if wk.w.closing() {
		return nil, ErrClosed
	}
	fd, err := openDirAt(parentFd, name)
	if err != nil {
		return nil, wk.fail(rel, "open directory", err)
	}
	defer unix.Close(fd)
	wd, err := wk.w.addWatch(fd, rel)
	if err == unix.ENOSPC && wk.w.partial() {
		wk.w.addUnwatched(parent, name)
		wk.short = append(wk.short, rel)
		return nil, nil
	}
	if err != nil {
		return nil, wk.fail(rel, "watch directory", err)
	}
	n, isNew, loop := wk.place(wd, parent, name)
	if loop {
		return n, nil // visited already in this walk: a bind mount loop
	}
	n.seen = wk.epoch
	if isNew && parent.born != wk.epoch {
		wk.tops = append(wk.tops, rel)
	}
	if isNew || wk.descendKnown {
		return n, wk.children(n, fd, rel)
	}
	return n, nil
}

// place records that wd watches directory name in parent. The kernel
// returns the same wd for a directory already watched, wherever we thought
// it was: that node moves to where the directory is now.
func (wk *walker) place(wd int32, parent *node, name string) (n *node, isNew, loop bool) {
	t := &wk.w.tree
	if n := t.wds[wd]; n != nil {
		if n.seen == wk.epoch || parent != nil && t.isAncestor(n, parent) {
			// Visited in this walk, or above where it was found: a
			// bind mount loop (or a tree that events will correct).
			return n, false, true
		}
		if parent != nil {
			t.attach(n, parent, name)
		}
		return n, false, false
	}
	n = &node{wd: wd, born: wk.epoch}
	t.wds[wd] = n
	if parent != nil {
		t.attach(n, parent, name)
	}
	return n, true, false
}

// children walks the subdirectories of n, open as fd.
func (wk *walker) children(n *node, fd int, rel string) error {
	var subdirs []string
	err := readDirents(fd, wk.w.dirents, func(name []byte, typ uint8) {
		if typ == unix.DT_DIR || typ == unix.DT_UNKNOWN && isDirAt(fd, string(name)) {
			subdirs = append(subdirs, string(name))
		}
	})
	if err != nil {
		return wk.fail(rel, "read directory", err)
	}
	for _, name := range subdirs {
		crel := fsmirror.Join(rel, name)
		if wk.w.excluded(crel) {
			continue
		}
		if _, err := wk.dir(n, fd, name, crel); err != nil {
			return err
		}
	}
	return nil
}

// newDir watches directory name in parent, at path rel, that just appeared,
// and everything below it, then emits Rescan for it. If it cannot be opened,
// and remember is set, it is remembered as lost (see lostKey).
func (w *Watcher) newDir(parent *node, name, rel string, remember bool, emit func(Event)) error {
	dir, ok := w.pathOf(parent)
	if !ok {
		return nil
	}
	wk := w.newWalker(true)
	pfd, err := w.openRel(dir)
	var n *node
	if err == nil {
		n, err = wk.dir(parent, pfd, name, rel)
		unix.Close(pfd)
	} else {
		err = wk.fail(dir, "open directory", err)
	}
	if err != nil {
		return w.walkError(err)
	}
	if n == nil && len(wk.denied) == 0 && len(wk.short) == 0 && remember {
		w.addLost(parent, name)
	}
	for _, d := range wk.denied {
		if d != rel && d != dir {
			emit(Event{Kind: Rescan, Path: d, IsDir: true})
		}
	}
	emit(Event{Kind: Rescan, Path: rel, IsDir: true})
	return nil
}

// resync walks the directory at rel and below it again (see Resync), or the
// nearest watched ancestor of rel. It emits Rescan for the topmost newly
// watched directories and for denied ones.
func (w *Watcher) resync(rel string, emit func(Event)) error {
	start := w.top
	for rest := rel; rest != "" && start != nil; {
		var name string
		name, rest = cut(rest)
		c := start.children[name]
		if c == nil {
			break
		}
		start = c
	}
	wk := w.newWalker(true)
	if start == w.top {
		fd, err := w.openRel("")
		if err != nil {
			return err
		}
		w.top.seen = wk.epoch
		err = wk.children(w.top, fd, "")
		unix.Close(fd)
		if err != nil {
			return w.walkError(err)
		}
		// Every node still attached was visited or is below an unvisited
		// one; detached nodes were not visited at all.
		for _, n := range w.snapshot() {
			if n.seen != wk.epoch && w.wds[n.wd] == n {
				w.drop(n)
			}
		}
	} else {
		parent := start.parent
		dir, _ := w.pathOf(parent)
		srel, _ := w.pathOf(start)
		pfd, err := w.openRel(dir)
		if err == nil {
			_, err = wk.dir(parent, pfd, start.name, srel)
			unix.Close(pfd)
		} else {
			err = wk.fail(dir, "open directory", err)
		}
		if err != nil {
			return w.walkError(err)
		}
		w.sweep(start, wk.epoch)
	}
	for _, d := range wk.tops {
		emit(Event{Kind: Rescan, Path: d, IsDir: true})
	}
	for _, d := range append(wk.denied, wk.short...) {
		emit(Event{Kind: Rescan, Path: d, IsDir: true})
	}
	return nil
}

func (w *Watcher) snapshot() []*node {
	all := make([]*node, 0, len(w.wds))
	for _, n := range w.wds {
		if n != w.top {
			all = append(all, n)
		}
	}
	return all
}

// sweep drops the nodes at and below n that walk epoch did not visit.
func (w *Watcher) sweep(n *node, epoch uint64) {
	if n.seen != epoch {
		w.drop(n)
		return
	}
	stack := []*node{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range x.children {
			if c.seen != epoch {
				w.drop(c)
			} else {
				stack = append(stack, c)
			}
		}
	}
}

// countDirs counts the directories a complete watch would need, for the
// message of a LimitError. A directory seen twice (a bind mount loop) counts
// once.
func (w *Watcher) countDirs() int {
	fd, err := openRoot(w.root)
	if err != nil {
		return 0
	}
	return w.count(fd, "", make([]byte, 32<<10), make(map[[2]uint64]bool))
}

func (w *Watcher) count(fd int, rel string, buf []byte, seen map[[2]uint64]bool) int {
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || seen[[2]uint64{st.Dev, st.Ino}] {
		return 0
	}
	seen[[2]uint64{st.Dev, st.Ino}] = true
	var subdirs []string
	readDirents(fd, buf, func(name []byte, typ uint8) {
		if typ == unix.DT_DIR || typ == unix.DT_UNKNOWN && isDirAt(fd, string(name)) {
			subdirs = append(subdirs, string(name))
		}
	})
	total := 1
	for _, name := range subdirs {
		crel := fsmirror.Join(rel, name)
		if w.excluded(crel) {
			continue
		}
		if cfd, err := openDirAt(fd, name); err == nil {
			total += w.count(cfd, crel, buf, seen)
		}
	}
	return total
}
