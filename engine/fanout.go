package engine

import (
	"time"

	"github.com/fsmirror/fsmirror/watch"
)

// Fanout hands every batch of events from in to n outputs, one per
// destination of the same source. Outputs are buffered; an output whose
// consumer is more than buffer batches behind misses batches instead of
// holding up the others, and is sent a Rescan of the whole tree as soon as
// it has room again, so that its destination still converges. The outputs
// are closed after in is. Batches are shared: consumers must not modify
// them.
func Fanout(in <-chan []watch.Event, n, buffer int) []<-chan []watch.Event {
	outs := make([]chan []watch.Event, n)
	ro := make([]<-chan []watch.Event, n)
	for i := range outs {
		outs[i] = make(chan []watch.Event, buffer)
		ro[i] = outs[i]
	}
	go fanout(in, outs)
	return ro
}

// fanoutRetry is how often a missed Rescan is offered again while an
// output is full and no new batch comes.
var fanoutRetry = 50 * time.Millisecond

func fanout(in <-chan []watch.Event, outs []chan []watch.Event) {
	behind := make([]bool, len(outs)) // missed batches, owes a Rescan
	rescan := []watch.Event{{Kind: watch.Rescan, Path: ""}}
	// catchUp offers the owed Rescans; it reports whether some are still owed.
	catchUp := func() bool {
		owed := false
		for i, out := range outs {
			if !behind[i] {
				continue
			}
			select {
			case out <- rescan:
				behind[i] = false
			default:
				owed = true
			}
		}
		return owed
	}
	var retry <-chan time.Time // set only while a Rescan is owed: idle means idle
	for {
		select {
		case batch, ok := <-in:
			if !ok {
				for i, out := range outs {
					if behind[i] {
						out <- rescan
					}
					close(out)
				}
				return
			}
			owed := catchUp()
			for i, out := range outs {
				if behind[i] {
					continue // the Rescan it is owed covers this batch too
				}
				select {
				case out <- batch:
				default:
					behind[i], owed = true, true
				}
			}
			if owed && retry == nil {
				retry = time.After(fanoutRetry)
			}
		case <-retry:
			retry = nil
			if catchUp() {
				retry = time.After(fanoutRetry)
			}
		}
	}
}
