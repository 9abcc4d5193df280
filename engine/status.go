package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// State says what a live mirror is doing, for status reports.
type State string

// The states of a live mirror. The engine reports StateWatching and
// StateDown; the caller knows the others.
const (
	StateStarting    State = "starting"     // being set up
	StateInitialSync State = "initial-sync" // the first whole-tree sync is under way
	StateWatching    State = "watching"     // mirroring changes as they come
	StateDown        State = "down"         // the destination is unreachable; changes are kept
	StateStopped     State = "stopped"      // not running (any more)
	StateFailed      State = "failed"       // stopped by an error
)

// Status is a snapshot of a running live mirror (Live or Batcher).
type Status struct {
	State State
	// Queue is the number of dirty paths waiting or being sent. A subtree
	// to compare counts as one.
	Queue int
	// Oldest is when the oldest change not yet applied to the target was
	// first seen; zero when the target is up to date. While the target is
	// down, it is at the latest when the target went down.
	Oldest time.Time
}

// Lag returns the age of the oldest change not yet applied at now: zero
// when the target is up to date.
func (s Status) Lag(now time.Time) time.Duration {
	if s.Oldest.IsZero() || now.Before(s.Oldest) {
		return 0
	}
	return now.Sub(s.Oldest)
}

// statusRequests is how a Status call reaches the loop of a running Run,
// which owns the queue: nothing is tracked for it beyond the time each
// item was first queued, and a snapshot costs O(queue) only when asked.
type statusRequests struct {
	requests chan chan Status
	done     chan struct{} // closed when Run returns
	once     sync.Once
	running  atomic.Bool
}

func newStatusRequests() statusRequests {
	return statusRequests{requests: make(chan chan Status), done: make(chan struct{})}
}

// ask sends a request to the loop and waits for its answer.
func (r *statusRequests) ask(ctx context.Context) (Status, bool) {
	if !r.running.Load() {
		return Status{}, false
	}
	answer := make(chan Status, 1)
	select {
	case r.requests <- answer:
	case <-r.done:
		return Status{}, false
	case <-ctx.Done():
		return Status{}, false
	}
	select {
	case st := <-answer:
		return st, true
	case <-ctx.Done():
		return Status{}, false
	}
}

func (r *statusRequests) start() { r.running.Store(true) }

// stop is deferred by Run: no answer comes after it.
func (r *statusRequests) stop() {
	r.running.Store(false)
	if r.done != nil {
		r.once.Do(func() { close(r.done) })
	}
}

// liveStatus is what a Live keeps for Status.
type liveStatus struct {
	statusRequests
	// owedSince, owned by the dispatcher, is when the target went down,
	// from its coming back until a whole-tree compare has finished: the
	// work that failed while it was down is not in the queue, only owed
	// to that compare.
	owedSince time.Time
}

func newLiveStatus() liveStatus { return liveStatus{statusRequests: newStatusRequests()} }

// Status returns a snapshot of a Live whose Run is running; ok is false
// when Run is not (yet, or any more) running, or ctx ends first.
func (l *Live) Status(ctx context.Context) (st Status, ok bool) {
	return l.status.ask(ctx)
}

// snapshot is Status, on the dispatcher.
func (l *Live) snapshot(now time.Time) Status {
	st := Status{State: StateWatching, Queue: len(l.queue) + len(l.busy)}
	oldest := l.status.owedSince
	if since := l.down.downSince(); !since.IsZero() {
		st.State = StateDown
		oldest = earlier(oldest, since)
	}
	for _, it := range l.queue {
		oldest = earlier(oldest, it.queued)
	}
	for _, it := range l.busy {
		oldest = earlier(oldest, it.queued)
	}
	if oldest.After(now) {
		oldest = now
	}
	st.Oldest = oldest
	return st
}

// noteBackUp is called by the dispatcher when the target is back, before
// the down state is cleared.
func (l *Live) noteBackUp(time.Time) {
	l.status.owedSince = earlier(l.status.owedSince, l.down.downSince())
}

// noteFinished is called by the dispatcher for each finished item. No
// item was busy when the target came back, so a whole-tree item that
// finishes while the target is up was started since, and has compared
// everything the down spell left undone.
func (l *Live) noteFinished(it *item) {
	if !l.status.owedSince.IsZero() && it.kind == itemTree && it.path == "" && !l.down.isSet() {
		l.status.owedSince = time.Time{}
	}
}

// Status returns a snapshot of a Batcher whose Run is running; ok is
// false when Run is not (yet, or any more) running, or ctx ends first.
func (b *Batcher) Status(ctx context.Context) (st Status, ok bool) {
	return b.status.ask(ctx)
}

// snapshot is Status, on the Run goroutine.
func (b *Batcher) snapshot(now time.Time) Status {
	st := Status{State: StateWatching, Queue: len(b.pending) + len(b.inflight)}
	if b.wasDown {
		st.State = StateDown
	}
	var oldest time.Time
	for _, it := range b.pending {
		oldest = earlier(oldest, it.queued)
	}
	for it := range b.inflight {
		oldest = earlier(oldest, it.queued)
	}
	if b.rootMeta && oldest.IsZero() {
		oldest = now // not timed: counts as new
	}
	if oldest.After(now) {
		oldest = now
	}
	st.Oldest = oldest
	return st
}

// queuedAt returns now, or the current time for a zero now (work queued
// to run at once).
func queuedAt(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}

// earlier returns the earlier of two times, a zero time counting as none.
func earlier(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// lastError is the last error of a mirror, for status reports.
type lastError struct {
	msg string
	at  time.Time
}

// RecordError keeps err as the last error of the mirror whose work s
// counts (it does not count it: Errors does). The engine records the
// errors it reports, and the destination going down; callers record
// errors they learn of otherwise.
func (s *Stats) RecordError(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	s.last.Store(&lastError{msg: err.Error(), at: time.Now()})
}

// LastError returns the last error recorded and when, or "" if none.
func (s *Stats) LastError() (msg string, at time.Time) {
	if e := s.last.Load(); e != nil {
		return e.msg, e.at
	}
	return "", time.Time{}
}
