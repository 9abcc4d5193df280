package engine

import (
	"context"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/watch"
)

// TestBatcher_Status checks that the status of a Batcher whose destination
// is down shows the kept paths and the time of the oldest one, and that
// it is up to date once the destination is back.
func TestBatcher_Status(t *testing.T) {
	clock := time.Unix(1000, 0)
	var down = true
	f := &fakeSyncer{}
	f.fail = func(int, string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if down {
			return fsmirror.ErrTargetDown
		}
		return nil
	}
	idle := make(chan struct{}, 100)
	b := NewBatcher(f, BatchOptions{RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		OnIdle: func() { idle <- struct{}{} }})
	now := make(chan time.Time, 1)
	now <- clock
	b.now = func() time.Time { t := <-now; now <- t; return t }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, ok := b.Status(ctx); ok {
		t.Fatal("Status answered before Run")
	}
	events := make(chan []watch.Event, 1)
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx, events) }()
	events <- []watch.Event{ev(watch.Changed, "d/a"), ev(watch.Changed, "d/b")}

	var st Status
	for {
		var ok bool
		if st, ok = b.Status(ctx); ok && st.State == StateDown {
			break // (not ok: Run has not started yet)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never down: %+v", st)
		case <-time.After(time.Millisecond):
		}
	}
	if st.Queue != 2 || !st.Oldest.Equal(clock) {
		t.Fatalf("status while down = %+v, want 2 paths queued since %v", st, clock)
	}
	later := clock.Add(90 * time.Second)
	<-now
	now <- later
	if got := st.Lag(later); got != 90*time.Second {
		t.Fatalf("lag = %v, want 90s", got)
	}

	f.mu.Lock()
	down = false
	f.mu.Unlock()
	for {
		st, _ = b.Status(ctx)
		if st.State == StateWatching && st.Queue == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never back: %+v", st)
		case <-idle:
		case <-time.After(time.Millisecond):
		}
	}
	if lag := st.Lag(later); lag != 0 {
		t.Fatalf("lag once up to date = %v (%+v)", lag, st)
	}
	close(events)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Status(ctx); ok {
		t.Fatal("Status answered after Run returned")
	}
}

func TestStatus_Lag(t *testing.T) {
	t0 := time.Unix(1000, 0)
	if got := (Status{}).Lag(t0); got != 0 {
		t.Errorf("lag of an up-to-date mirror = %v", got)
	}
	if got := (Status{Oldest: t0}).Lag(t0.Add(time.Second)); got != time.Second {
		t.Errorf("lag = %v, want 1s", got)
	}
	if got := earlier(time.Time{}, t0); !got.Equal(t0) {
		t.Errorf("earlier(zero, t0) = %v", got)
	}
}

func TestStats_RecordError(t *testing.T) {
	var s Stats
	if msg, _ := s.LastError(); msg != "" {
		t.Fatalf("last error of new stats = %q", msg)
	}
	s.RecordError(context.Canceled)
	s.RecordError(fsmirror.ErrTargetDown)
	if msg, at := s.LastError(); msg != fsmirror.ErrTargetDown.Error() || at.IsZero() {
		t.Fatalf("last error = %q at %v", msg, at)
	}
}
