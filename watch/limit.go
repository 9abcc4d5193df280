package watch

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrWatchLimit is wrapped by every error caused by running out of inotify
// watches (see LimitError).
var ErrWatchLimit = errors.New("inotify watch limit reached")

// The files the limits are read from; tests point them elsewhere.
var (
	maxUserWatchesFile = "/proc/sys/fs/inotify/max_user_watches"
	nsMaxWatchesFile   = "/proc/sys/user/max_inotify_watches"
)

// LimitError reports that a directory could not be watched because the
// user has no inotify watch left. Every directory of the tree needs one, and
// the limit is shared with the user's other programs (editors, IDEs, other
// watchers).
type LimitError struct {
	Path string // the directory that could not be watched, relative to the root
	// Limit is fs.inotify.max_user_watches, or 0 if it could not be read.
	Limit int
	// NamespaceLimit is user.max_inotify_watches of the current user
	// namespace when that is lower than Limit (in a container), else 0.
	NamespaceLimit int
	// Needed is the number of directories in the tree, excluded ones left
	// out: the least number of watches the tree needs.
	Needed int
	// Unwatched, for a watcher that keeps going (Options.OnLimit), is the
	// number of directories it could not watch, each with everything below
	// it; they are rescanned every Rescan.
	Unwatched int
	Rescan    time.Duration
	// Fanotify, with Backend Auto, is why fanotify, which needs no watch
	// per directory, is not used.
	Fanotify error
}

// Error says what limit was reached and how to raise it, for example
// "inotify watch limit reached: fs.inotify.max_user_watches is 8192, the
// tree needs at least 12345 (one per directory, shared with the user's other
// programs); raise it with: sysctl fs.inotify.max_user_watches=21504".
func (e *LimitError) Error() string {
	var b strings.Builder
	b.WriteString(ErrWatchLimit.Error())
	switch {
	case e.NamespaceLimit > 0:
		fmt.Fprintf(&b, ": user.max_inotify_watches is %d in this user namespace (fs.inotify.max_user_watches is %d)", e.NamespaceLimit, e.Limit)
	case e.Limit > 0:
		fmt.Fprintf(&b, ": fs.inotify.max_user_watches is %d", e.Limit)
	default:
		b.WriteString(": fs.inotify.max_user_watches could not be read")
	}
	fmt.Fprintf(&b, ", the tree needs at least %d (one per directory, shared with the user's other programs)", e.Needed)
	limit, name := e.Limit, "fs.inotify.max_user_watches"
	if e.NamespaceLimit > 0 {
		limit, name = e.NamespaceLimit, "user.max_inotify_watches"
	}
	fmt.Fprintf(&b, "; raise it with: sysctl %s=%d", name, suggestLimit(limit, e.Needed))
	if e.Fanotify != nil {
		if errors.Is(e.Fanotify, ErrNoFanotify) {
			fmt.Fprintf(&b, "; %v", e.Fanotify)
		} else {
			fmt.Fprintf(&b, "; fanotify could not be used either: %v", e.Fanotify)
		}
	}
	if e.Unwatched > 0 {
		fmt.Fprintf(&b, "; watching the rest: %d directories that could not be watched, each with everything below it, are rescanned every %v", e.Unwatched, e.Rescan)
	}
	return b.String()
}

// Unwrap returns ErrWatchLimit.
func (e *LimitError) Unwrap() error { return ErrWatchLimit }

// suggestLimit returns a limit that leaves room for the tree whatever the
// user's other programs already use: the current limit plus the tree's
// needs, rounded up to a multiple of 1024.
func suggestLimit(limit, needed int) int {
	s := max(limit, 0) + needed
	return (s + 1023) / 1024 * 1024
}

// limitError builds the error for a watch that failed with ENOSPC on rel.
func (w *Watcher) limitError(rel string) *LimitError {
	e := &LimitError{Path: rel, Needed: w.countDirs(), Fanotify: w.fanErr}
	e.Limit, _ = readInt(maxUserWatchesFile)
	if ns, ok := readInt(nsMaxWatchesFile); ok && ns > 0 && (e.Limit == 0 || ns < e.Limit) {
		e.NamespaceLimit = ns
	}
	return e
}
