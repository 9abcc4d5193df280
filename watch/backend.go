package watch

import (
	"errors"
	"fmt"
)

// Backend is the kernel interface a Watcher learns of changes through.
type Backend uint8

const (
	// Inotify watches every directory of the tree with an inotify watch.
	// It works for any user and any file system, but a tree needs one
	// watch per directory, all added before New returns (see LimitError).
	Inotify Backend = iota
	// Fanotify marks the whole file system of the root, and any file
	// system mounted below it, with one fanotify mark each, and keeps the
	// events that fall inside the tree. It needs no watch per directory,
	// so New returns at once whatever the tree's size, but it needs
	// CAP_SYS_ADMIN, Linux 5.9 or later and file systems that report file
	// handles (ext4, xfs, btrfs, tmpfs, ...). See the package
	// documentation for its guarantees and limits.
	Fanotify
	// Auto is Fanotify where the process and the file system allow it,
	// and Inotify otherwise.
	Auto
)

var backendNames = [...]string{"inotify", "fanotify", "auto"}

// String returns the backend's name as ParseBackend accepts it.
func (b Backend) String() string {
	if int(b) < len(backendNames) {
		return backendNames[b]
	}
	return fmt.Sprintf("backend(%d)", b)
}

// ParseBackend returns the backend named s: "auto", "inotify" or
// "fanotify".
func ParseBackend(s string) (Backend, error) {
	for i, n := range backendNames {
		if s == n {
			return Backend(i), nil
		}
	}
	return 0, fmt.Errorf("unknown watcher %q: want auto, inotify or fanotify", s)
}

// ErrNoFanotify is wrapped by the error that says why the fanotify backend
// cannot watch a tree: the process lacks CAP_SYS_ADMIN, the kernel is too
// old, or a file system of the tree does not report file handles. With
// Auto, New uses inotify instead.
var ErrNoFanotify = errors.New("fanotify cannot watch this tree")

// noFanotify returns an error that wraps ErrNoFanotify and says why.
func noFanotify(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoFanotify, fmt.Sprintf(format, args...))
}
