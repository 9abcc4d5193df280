package engine

import (
	"sync"
	"time"
)

// downState records that the target of a live mirror is unreachable, and
// paces the probes that wait for it: a first one soon, then at growing
// intervals up to maxProbeWait.
type downState struct {
	mu    sync.Mutex
	down  bool
	since time.Time // when it went down
	wait  time.Duration
}

// Probe pauses; tests lower them.
var (
	firstProbeWait = 500 * time.Millisecond
	maxProbeWait   = 30 * time.Second
)

// set marks the target down and reports whether it was up until now.
func (d *downState) set() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.down
	if !was {
		d.since = time.Now()
	}
	d.down = true
	return !was
}

func (d *downState) isSet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

// downSince returns when the target went down, or zero if it is up.
func (d *downState) downSince() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.down {
		return time.Time{}
	}
	return d.since
}

// clear marks the target up and resets the pauses.
func (d *downState) clear() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = false
	d.wait = 0
}

// nextWait returns the pause before the next probe.
func (d *downState) nextWait() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wait == 0 {
		d.wait = firstProbeWait
	} else {
		d.wait = min(2*d.wait, maxProbeWait)
	}
	return d.wait
}
