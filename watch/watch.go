// Package watch reports, in near real time, which paths under a directory
// tree may have changed, with recursive inotify or with fanotify (see
// Backend).
//
// Events are hints for a planner that looks at the tree as it is now: they
// say where to look, never what to do. The watcher's one promise is that
// nothing under the root changes without an event that covers it:
//
//   - every directory below the root, except excluded ones, is watched before
//     New returns, so a scan started after New misses nothing;
//   - a directory that appears later (created, or moved in from outside) is
//     watched, with everything below it, before the Rescan event that names it
//     is sent: a scan made after that event sees what was written before the
//     watch existed, and events report what is written after;
//   - when the kernel's queue overflows, events were lost: the watcher walks
//     the tree again, watches what it missed, forgets what is gone and sends
//     Rescan for the root.
//
// Both backends keep that promise and send the same kinds of events; they
// differ in what they cost and what they need.
//
// # inotify
//
// A MOVED_FROM and its MOVED_TO are paired by cookie into one Renamed event. A
// renamed directory keeps its watch and the watcher keeps each directory as
// (parent, name), so the paths of everything below it follow in O(1). Moves
// into and out of the tree, or of an excluded directory, are creations and
// deletions.
//
// An event names its path as it was when the kernel queued the event: a later
// Renamed of a directory moves that path. A consumer that keeps a set of dirty
// paths moves the dirty paths below From to below Path when it gets a
// directory's Renamed.
//
// Memory does not grow with the event rate: one goroutine reads events into
// one buffer and hands them over in batches, each batch at most one read's
// worth. A slow consumer makes the reader wait; the kernel's queue then
// overflows, which becomes a Rescan. An idle watcher uses no CPU: it sleeps in
// the runtime's poller, with a timer only while a MOVED_FROM waits a few
// milliseconds for its MOVED_TO (or, see below, while some directories are
// not watched).
//
// Each watched directory uses one inotify watch, counted against the
// fs.inotify.max_user_watches of the user; running out is an error that says
// how many are needed (see LimitError). With Options.OnLimit the watcher
// keeps going instead: it watches what it can, the directories it could not
// watch get a Rescan every Options.LimitRescan (and a new attempt to watch
// them), and OnLimit hears of it; no subtree is missed silently. Watch
// descriptors are allocated cyclically by the kernel, so a removed one is not
// reused before about 2^31 others have been; the watcher relies on that.
//
// Not reported: changes made through another mount of the same files (bind
// mounts, NFS servers), file systems mounted below the root after New (their
// directories are watched only after a Rescan that walks them), writes
// through a shared memory mapping, and writes to a file through a hard link
// outside the tree.
//
// # fanotify
//
// The fanotify backend (Linux 5.9 or later, CAP_SYS_ADMIN and
// CAP_DAC_READ_SEARCH) puts one mark on the file system of the root, and one
// on each file system mounted below it when New runs (but for those in
// excluded directories), with FAN_REPORT_DFID_NAME: every event names a
// directory by its file handle, and a name in it. New returns without
// walking the tree, and no directory needs a watch, so the size of the tree
// costs neither time nor kernel memory. The price is that the kernel reports
// every change of the whole file system: the watcher keeps those below the
// root, which costs a little CPU for each change elsewhere, and an idle tree
// on a busy file system is not an idle watcher.
//
// A directory's handle is turned into a path by opening it
// (open_by_handle_at) and asking the kernel its name, and the answer is kept
// in a cache of recently seen directories; the cache is emptied whenever a
// directory is renamed, so a path it holds is never older than the events
// being read. Paths are relative to where the root is now: a rename above
// the root changes nothing. Events in excluded directories are dropped, as
// inotify never sees them; a directory created, deleted or renamed with an
// excluded name is a change of its parent. A handle that cannot be opened
// because its directory was deleted (ESTALE) is dropped: the deletion of
// that directory, or of the highest of its ancestors that left the tree,
// comes later in the queue and covers whatever happened in it. A directory
// whose path is too long for the kernel to name (beyond PATH_MAX) is reported
// as a Rescan of its deepest ancestor that can be named; one that cannot be
// opened for want of a resource, as a Rescan of the root.
//
// Renames come as one FAN_RENAME event (Linux 5.17) that names both sides,
// so they need no pairing; on older kernels a MOVED_FROM is paired with the
// next event of the same process if that is a MOVED_TO, in the same read or,
// waiting at most PairWait, the next one. The kernel merges an event into an
// identical one of the same process still queued, which can put a change
// made after a rename before it: so after a rename, each of its names that
// an earlier event of the same read named is reported changed again.
//
// An event names its path as it is when the watcher reads it, which may be
// after later renames of its directories: the Renamed events of those still
// follow, and a consumer that plans from the tree as it is now loses
// nothing. New directories need no work: the file system's mark covers them
// at once; they get a Rescan all the same, as with inotify.
//
// The reader does not wait for the consumer: it keeps the kernel's queue
// short, since other trees' changes fill it too, and holds the events of the
// tree (at most 16384) until the consumer takes them; beyond that they are
// replaced by one Rescan of the root, as after a kernel queue overflow
// (FAN_Q_OVERFLOW, which fs.fanotify.max_queued_events bounds). A batch may
// hold several reads' worth of events.
//
// Not reported: writes through a shared memory mapping, and to a file through
// a hard link outside the tree; file systems mounted below the root after
// New, and anything done to the directories they hide; the unmounting of the
// root itself when it is a mount point (it can only be lazy: the watcher
// holds the root open).
// A bind mount below the root of a file system the tree already holds is
// refused (ErrNoFanotify): one path per directory could not name both places.
// With Auto, New falls back to inotify whenever fanotify cannot watch the
// tree (FanotifyError says why).
package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// Kind is what an Event says about its Path.
type Kind uint8

// The kinds of events. Every kind implies that Path may have changed.
const (
	// Changed: Path (a file, symlink, special file or directory entry) may
	// have been created, modified, had its metadata changed, or been
	// deleted: re-plan Path. IsDir is set when the kernel said Path is a
	// directory (attribute change or deletion).
	Changed Kind = iota + 1
	// Closed: Path was closed by a process that had it open for writing
	// (IN_CLOSE_WRITE): its content is final for now. It implies Changed.
	Closed
	// Opened: Path's content was modified (IN_MODIFY) and a writer probably
	// still has it open; a Closed follows when the writer closes it, unless
	// it writes through a mapping or never closes. inotify does not report
	// an open for writing as such, so the first write stands for it. It
	// implies Changed: a consumer that does not wait for Closed must treat
	// Opened exactly as Changed. The kernel sends the same IN_MODIFY for a
	// truncate(2) by path and for a new mtime set alone (touch -m), after
	// which no Closed comes; on a directory it is reported as Changed.
	Opened
	// Renamed: From was renamed to Path, both inside the tree. IsDir tells if
	// it is a directory, whose contents moved with it. A rename over an
	// existing Path replaced it.
	Renamed
	// Rescan: Path and everything below it must be scanned again ("" is the
	// root). It is sent for a directory that appeared (created or moved in:
	// its contents may predate its watch), for a directory that could not
	// be watched (its own changes will not be reported), and for the root
	// when the kernel's queue overflowed. Every directory below Path that
	// could be watched is watched before the event is sent.
	Rescan
)

var kindNames = [...]string{"?", "changed", "closed", "opened", "renamed", "rescan"}

// String returns the kind's name, such as "renamed".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event says that something at Path may have changed.
type Event struct {
	Kind  Kind
	Path  string // relative to the root, '/'-separated, raw bytes; "" is the root
	From  string // the old path, for Renamed
	IsDir bool   // Path is a directory (always for Rescan; when known for the others)
	// Overflow is set on the Rescan of the root that follows a kernel queue
	// overflow (IN_Q_OVERFLOW, FAN_Q_OVERFLOW), or an overflow of the events
	// the fanotify backend holds for a consumer that does not take them:
	// events were lost, which a user may want to hear about
	// (fs.inotify.max_queued_events, fs.fanotify.max_queued_events).
	Overflow bool
}

// String describes the event for a person, such as `renamed "a" -> "b"`.
func (e Event) String() string {
	s := e.Kind.String() + " " + fsmirror.QuotePath(e.Path)
	if e.Kind == Renamed {
		s = e.Kind.String() + " " + fsmirror.QuotePath(e.From) + " -> " + fsmirror.QuotePath(e.Path)
	}
	if e.IsDir {
		s += " (dir)"
	}
	return s
}

// Options tune a Watcher. The zero value is ready to use.
type Options struct {
	// Exclude reports whether the directory at relative path rel is
	// excluded: it is never watched nor descended, and no event names it.
	// It is only asked about directories (isDir is always true; the
	// parameter lets a filter's method be passed as is). It is called with
	// the watcher's lock held: it must not call the Watcher. May be nil.
	Exclude func(rel string, isDir bool) bool
	// BufferSize is the size in bytes of the buffer events are read into,
	// which bounds the size of a batch. 0 means 64 KiB; it is raised to the
	// least the kernel accepts (one event with a 255-byte name).
	BufferSize int
	// PairWait is how long a MOVED_FROM that ends a read waits for its
	// MOVED_TO before it counts as a move out of the tree. 0 means 5ms.
	// Only inotify uses it.
	PairWait time.Duration
	// Backend chooses inotify (the zero value), fanotify, or Auto.
	Backend Backend
	// OnLimit, if set, makes an inotify watcher that runs out of watches
	// keep going instead of failing: the directories it could not watch
	// (each with everything below it) get a Rescan event every
	// LimitRescan, and it tries again to watch them then. OnLimit is
	// called with a *LimitError (see its Unwatched) each time the watcher
	// goes from watching every directory to missing some, and with nil
	// when every directory is watched again, from New or from the
	// watcher's goroutine. It must not call the Watcher. Without OnLimit,
	// running out of watches is an error (see LimitError), as it is with
	// OnLimit when not even the root can be watched.
	OnLimit func(*LimitError)
	// LimitRescan is how often the directories that could not be watched
	// for want of inotify watches are rescanned (see OnLimit). 0 means one
	// minute.
	LimitRescan time.Duration
}

const (
	defaultBufferSize  = 64 << 10
	minBufferSize      = unix.SizeofInotifyEvent + unix.NAME_MAX + 1
	defaultPairWait    = 5 * time.Millisecond
	defaultLimitRescan = time.Minute
)

// ErrClosed is returned by Resync on a watcher that was closed or failed.
var ErrClosed = errors.New("watcher closed")

// ErrRootGone is the fatal error of a watcher whose root directory was
// deleted, moved or unmounted: the paths it would report have no meaning.
var ErrRootGone = errors.New("watched root directory was deleted, moved or unmounted")

// Watcher watches a directory tree. Its methods are safe for concurrent use.
type Watcher struct {
	root     string
	exclude  func(string, bool) bool
	bufSize  int
	pairWait time.Duration

	backend Backend         // Inotify or Fanotify
	fanErr  error           // with Auto and inotify: why fanotify was not used
	file    *os.File        // the inotify or fanotify instance, non-blocking, in the runtime's poller
	rc      syscall.RawConn // file's descriptor, held for the duration of each use
	events  chan []Event
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed when the reader goroutine has returned

	// inotify only
	onLimit     func(*LimitError)
	limitRescan time.Duration
	maxWatches  int // a limit below the kernel's, for tests; 0 for none

	// fanotify only (guarded by mu)
	fan      *fanState
	outbox   []Event       // events read and not yet handed to the sender
	outFull  bool          // outbox holds only the Rescan of an overflow
	outReady chan struct{} // tells the sender that the outbox has events
	sent     chan struct{} // closed when the sender has returned

	closeOnce sync.Once
	fileOnce  sync.Once

	mu        sync.Mutex
	dead      bool  // the reader has returned
	err       error // why the watcher stopped, if not by Close
	useProc   bool  // add watches through /proc/self/fd (else by path)
	tree            // guarded by mu
	pending   []moveFrom
	extra     []Event // events from Resync, sent by the reader
	pause     *pauseRequest
	dirents   []byte // getdents buffer for walks
	resyncAll bool   // too many lost directories: walk everything again

	nextLimitRescan time.Time // when to rescan the unwatched directories
	shortReported   bool      // OnLimit was told that directories are unwatched
}

type pauseRequest struct {
	gate, ack chan struct{}
}

// New watches root and every directory below it, without following symlinks
// (root itself may be one) and without entering excluded directories. The
// tree is watched when New returns, so a caller that scans the tree
// afterwards misses nothing. The error for a missing root wraps
// fs.ErrNotExist; running out of inotify watches is a *LimitError (unless
// Options.OnLimit is set); a tree that fanotify cannot watch, with Backend
// Fanotify, is an error that wraps ErrNoFanotify.
func New(root string, opt Options) (*Watcher, error) {
	// Absolute, so that a chdir elsewhere in the process changes nothing.
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	rootFd, err := openRoot(root)
	if err != nil {
		return nil, fmt.Errorf("watch %s: root directory: %w", root, err)
	}
	defer unix.Close(rootFd)
	w := &Watcher{
		root:        root,
		exclude:     opt.Exclude,
		bufSize:     max(opt.BufferSize, minBufferSize),
		pairWait:    opt.PairWait,
		events:      make(chan []Event, 1),
		done:        make(chan struct{}),
		exited:      make(chan struct{}),
		onLimit:     opt.OnLimit,
		limitRescan: opt.LimitRescan,
		maxWatches:  maxWatchesForTest,
	}
	if opt.BufferSize == 0 {
		w.bufSize = defaultBufferSize
	}
	if w.pairWait <= 0 {
		w.pairWait = defaultPairWait
	}
	if w.limitRescan <= 0 {
		w.limitRescan = defaultLimitRescan
	}
	switch opt.Backend {
	case Fanotify:
		err = w.startFanotify(rootFd)
	case Auto:
		if err = w.startFanotify(rootFd); err != nil {
			w.fanErr = err
			err = w.startInotify(rootFd)
		}
	default:
		err = w.startInotify(rootFd)
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	return w, nil
}

// startInotify watches the tree with inotify and starts the reader.
func (w *Watcher) startInotify(rootFd int) error {
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return initError(err)
	}
	file := os.NewFile(uintptr(ifd), "inotify")
	rc, err := file.SyscallConn()
	if err == nil {
		err = file.SetReadDeadline(time.Time{})
	}
	if err != nil {
		file.Close()
		return fmt.Errorf("inotify descriptor cannot be polled: %w", err)
	}
	w.backend, w.file, w.rc = Inotify, file, rc
	w.useProc = true
	w.dirents = make([]byte, 32<<10)
	w.tree.init()
	w.mu.Lock()
	err = w.watchRoot(rootFd)
	short, report := w.shortError()
	w.mu.Unlock()
	if err != nil {
		file.Close()
		return err
	}
	if report {
		w.onLimit(short)
	}
	go w.run()
	return nil
}

// startFanotify watches the tree with fanotify and starts the reader and
// the sender.
func (w *Watcher) startFanotify(rootFd int) error {
	if err := newFanotify(w, rootFd); err != nil {
		return err
	}
	w.backend = Fanotify
	w.bufSize = max(w.bufSize, fanMinBuffer)
	w.outReady = make(chan struct{}, 1)
	w.sent = make(chan struct{})
	go w.runFan()
	go w.deliver()
	return nil
}

// initError explains why an inotify instance could not be made.
func initError(err error) error {
	if err == unix.EMFILE {
		if n, ok := readInt("/proc/sys/fs/inotify/max_user_instances"); ok {
			return fmt.Errorf("create inotify instance: %w (fs.inotify.max_user_instances is %d; raise it with: sysctl fs.inotify.max_user_instances=%d)", err, n, 2*n)
		}
	}
	return fmt.Errorf("create inotify instance: %w", err)
}

// watchRoot watches the root and every directory below it.
func (w *Watcher) watchRoot(rootFd int) error {
	wd, err := w.addWatch(rootFd, "")
	if err == unix.ENOENT {
		// No /proc: watch by path (limited to PATH_MAX).
		w.useProc = false
		wd, err = w.addWatch(rootFd, "")
	}
	if err != nil {
		if err == unix.ENOSPC {
			return w.limitError("")
		}
		return fmt.Errorf("watch root directory: %w", err)
	}
	wk := w.newWalker(false)
	w.top, _, _ = wk.place(wd, nil, "")
	w.top.seen = wk.epoch
	if err := wk.children(w.top, rootFd, ""); err != nil {
		return w.walkError(err)
	}
	if len(wk.denied) > 0 {
		err := &fsmirror.PathError{Op: "watch directory", Path: wk.denied[0], Err: unix.EACCES,
			Hint: "exclude it, or give fsmirror read access to it"}
		if n := len(wk.denied) - 1; n > 0 {
			return fmt.Errorf("%w (and %d more directories)", err, n)
		}
		return err
	}
	return nil
}

// Events returns the channel on which batches of events are delivered, in
// the order the kernel reported them. The channel is closed after Close or a
// fatal error, and then Err says which. A batch belongs to the receiver.
func (w *Watcher) Events() <-chan []Event { return w.events }

// Err returns the error that stopped the watcher: nil while it runs, and
// nil if Close stopped it first. It is set before the Events channel is
// closed. A watcher that stopped on an error must be replaced (New) and the
// tree rescanned.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Watches returns the number of inotify watches in use: one per watched
// directory. It is 0 with fanotify, which needs none.
func (w *Watcher) Watches() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.wds)
}

// Backend returns the backend in use: Inotify or Fanotify, never Auto.
func (w *Watcher) Backend() Backend { return w.backend }

// FanotifyError returns why a watcher made with Backend Auto uses inotify:
// the error that kept fanotify from watching the tree. It is nil if fanotify
// was not tried.
func (w *Watcher) FanotifyError() error { return w.fanErr }

// Close stops the watcher, releases its inotify instance and waits for its
// goroutine to return. It may be called more than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() { close(w.done) })
	w.closeFile()
	<-w.exited
	return nil
}

func (w *Watcher) closeFile() {
	w.fileOnce.Do(func() { w.file.Close() })
}

func (w *Watcher) closing() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Resync walks the directory at rel (relative to the root) and everything
// below it, watches the directories that are not watched, and forgets those
// that are no longer there. For each directory it newly watches (topmost
// only), it queues a Rescan event, sent by the watcher's goroutine after the
// events it already has, so Resync may be called by the goroutine that
// receives the events. It returns ErrClosed after Close. Running out of
// watches is a *LimitError, and stops the watcher as it would in New.
//
// Resync assumes that directories moved out of rel were reported: a
// directory moved from rel to elsewhere in the tree while events were lost is
// forgotten. After an overflow the watcher resyncs the whole tree itself.
func (w *Watcher) Resync(rel string) error {
	if !fsmirror.IsValidPath(rel) {
		return fmt.Errorf("resync %s: invalid path", fsmirror.QuotePath(rel))
	}
	w.mu.Lock()
	if w.dead || w.err != nil || w.closing() {
		w.mu.Unlock()
		return ErrClosed
	}
	if w.fan != nil {
		// Every directory of the marked file systems is watched.
		w.mu.Unlock()
		return nil
	}
	var evs []Event
	err := w.resync(rel, func(e Event) { evs = append(evs, e) })
	if err != nil && !errors.Is(err, ErrClosed) {
		w.err = fmt.Errorf("watch %s: %w", w.root, err) // the reader stops
	}
	w.extra = append(w.extra, evs...)
	w.mu.Unlock()
	w.wake()
	if err != nil {
		return fmt.Errorf("resync %s: %w", fsmirror.QuotePath(rel), err)
	}
	return nil
}

// PauseForTest makes the watcher stop reading events until resume is called,
// so that a test can fill the kernel's queue until it overflows. It returns
// once the reader is paused, which may wait for a pending batch to be
// received. It is meant for tests only.
func (w *Watcher) PauseForTest() (resume func()) {
	p := &pauseRequest{gate: make(chan struct{}), ack: make(chan struct{})}
	w.mu.Lock()
	w.pause = p
	w.mu.Unlock()
	w.wake()
	select {
	case <-p.ack:
	case <-w.exited:
	}
	return sync.OnceFunc(func() { close(p.gate) })
}

// wake makes a blocked read return, so that the reader looks at w.extra,
// w.pause and w.err. Callers change those under w.mu first; the reader
// resets its deadline before it looks, so no wake-up is lost.
func (w *Watcher) wake() {
	w.file.SetReadDeadline(time.Unix(0, 1))
}
