package fsmirror

import (
	"context"
	"errors"
)

// PathSyncer is a destination that reads the source itself and is only told
// which paths to bring up to date, such as a host reached with rsync. It is
// the other kind of destination next to Target: a Target is sent ops with
// their data and must answer ReadDir and Lstat exactly, which a host that
// cannot run fsmirror cannot do, so the engine hands a PathSyncer paths, in
// batches, instead of plans.
//
// Paths are relative to the source the syncer was made for. A syncer must
// be safe for concurrent use; the caller never passes a path to two calls
// that run at once, nor a path to one and a path below it to another.
//
// The error of SyncAll and SyncPaths says what the caller does next:
//
//   - nil: every path given now has the state the source had when it was
//     read. A path that vanished from the source while it was read is no
//     error: the event of its removal follows.
//   - an error wrapping ErrTargetDown: the destination could not be reached,
//     or the connection broke or timed out (a daemon restart, a network
//     failure). Some paths may be done, none is known to be: the caller keeps
//     them all and tries again later, backing off, for as long as it runs.
//   - an error wrapping ErrPartial: the destination was reached, but some
//     paths failed (they are not named: the caller retries them all, which
//     costs little for those that are done). The caller retries a few times,
//     backing off, then reports the paths as failed.
//   - the context's error when ctx ended first.
//   - any other error: retrying cannot help (a wrong password, an unknown
//     module, an option the far side refuses); the caller stops and shows it.
type PathSyncer interface {
	// SyncAll makes the whole destination a mirror of the source.
	SyncAll(ctx context.Context) error
	// SyncPaths brings each of paths to its state in the source: copied
	// when new or changed, deleted (with what is below it) when the source
	// no longer has it; for a directory that exists in the source, only the
	// directory itself, not its contents. Each of trees, which must not be
	// "", is made a mirror of the source's subtree at that path, deletes
	// included. No path or tree is below another one; the root "" may be one
	// of paths all the same, and stands for its own metadata only.
	SyncPaths(ctx context.Context, paths, trees []string) error
	// Close releases the syncer's resources.
	Close() error
}

// ErrPartial marks an error of a PathSyncer that reached its destination
// but could not bring every path up to date; the others are done.
var ErrPartial = errors.New("some paths failed")
