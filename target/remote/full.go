package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/wire"
)

// isFull reports whether err says the destination's filesystem (or the
// far user's quota) has no room left.
func isFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// fullState remembers that the destination ran out of room, and how much a
// write that failed needed, so that Ping says the destination is back only
// when it has room for that: a live mirror then compares the tree again,
// which is too costly to repeat every half second against a full disk.
//
// Free space can be asked for (the far side's statfs) but quotas cannot:
// each time the destination fills up again without a write succeeding in
// between, Ping also waits longer before it says it is back, from nothing
// up to fullMaxWait.
type fullState struct {
	mu       sync.Mutex
	on       bool
	need     uint64 // bytes the largest failed write needed
	since    time.Time
	episodes int // times it filled up since a write last succeeded
}

// fullMaxWait bounds the pause between two attempts on a destination that
// keeps filling up; tests lower it.
var fullMaxWait = time.Minute

// set records that op failed for lack of room.
func (f *fullState) set(op *fsmirror.Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on {
		f.on = true
		f.need = 0
		f.since = time.Now()
		f.episodes++
	}
	need := uint64(64 << 10) // a directory, a symlink, an inode
	if op.Kind == fsmirror.OpWrite && op.Entry.Size > 0 {
		need += uint64(op.Entry.Size) + uint64(op.Entry.Size)/16
	}
	f.need = max(f.need, need)
}

// wrote records that a write succeeded.
func (f *fullState) wrote() {
	f.mu.Lock()
	if f.episodes > 0 && !f.on {
		f.episodes = 0
	}
	f.mu.Unlock()
}

// wait is the pause after the destination filled up before Ping says it
// may be back.
func (f *fullState) wait() time.Duration {
	if f.episodes <= 1 {
		return 0
	}
	return min(time.Second<<min(f.episodes-2, 16), fullMaxWait)
}

// check returns nil if the destination is not known to be full or now has
// room, and an ErrTargetDown error otherwise.
func (f *fullState) check(ctx context.Context, c *wire.Client, dest string) error {
	f.mu.Lock()
	on, need, since, wait, episodes := f.on, f.need, f.since, f.wait(), f.episodes
	f.mu.Unlock()
	if !on {
		return nil
	}
	if left := time.Until(since.Add(wait)); left > 0 {
		return fmt.Errorf("%w: %s is still full (it filled up %d times in a row; next try in %v)", fsmirror.ErrTargetDown, dest, episodes, left.Round(time.Second))
	}
	if c == nil {
		return fmt.Errorf("%w: %s: not connected", fsmirror.ErrTargetDown, dest)
	}
	bytes, files, err := c.FreeSpace(ctx)
	switch {
	case errors.Is(err, fsmirror.ErrTargetDown):
		return err
	case err != nil:
		// The far side cannot tell (an older agent): the pause alone
		// decides.
	case bytes < need || files == 0:
		return fmt.Errorf("%w: %s is still full: %d bytes and %d inodes free, a write needs %d bytes", fsmirror.ErrTargetDown, dest, bytes, files, need)
	}
	f.mu.Lock()
	f.on = false
	f.mu.Unlock()
	return nil
}
