package remote

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
)

func TestIsFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&fsmirror.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("x: %w", syscall.EDQUOT), true},
		{syscall.EIO, false},
		{errors.New("no space left on device"), false}, // only the errno counts
	} {
		if got := isFull(c.err); got != c.want {
			t.Errorf("isFull(%v) = %v", c.err, got)
		}
	}
}

// TestFullState_Wait checks the pauses of a destination that keeps filling
// up: none the first time, then growing, and back to none once a write
// succeeds.
func TestFullState_Wait(t *testing.T) {
	var f fullState
	ctx := context.Background()
	if err := f.check(ctx, nil, "d"); err != nil {
		t.Fatalf("not full: %v", err)
	}
	write := &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "f", Entry: fsmirror.Entry{Size: 1 << 20}}
	var waits []time.Duration
	for range 4 {
		f.set(write)
		f.set(&fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d"}) // the same episode
		waits = append(waits, f.wait())
		f.on = false // as a check that found room would
	}
	if want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second}; fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("pauses %v, want %v", waits, want)
	}
	if f.need < 1<<20 {
		t.Errorf("need %d, less than the failed write", f.need)
	}
	f.wrote()
	f.set(write)
	if w := f.wait(); w != 0 {
		t.Errorf("after a write succeeded, the pause is %v, want 0", w)
	}
	if err := f.check(ctx, nil, "d"); !errors.Is(err, fsmirror.ErrTargetDown) {
		t.Errorf("full and not connected: %v, want ErrTargetDown", err)
	}
}
