package watch

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// The fanotify backend reads the events of whole file systems, most of
// them about other trees. Its reader must keep the kernel's queue short
// whatever the consumer does, or events of other trees would overflow it and
// force a rescan of this one: it keeps reading, keeps the events below the
// root in an outbox, and a second goroutine (deliver) hands the outbox over
// to the consumer. The outbox is bounded: when it would hold more than
// maxOutbox events, they are replaced by a Rescan of the root, which covers
// them and every event that follows until the consumer takes it.

// maxOutbox bounds the events waiting for the consumer; tests lower it.
var maxOutbox = 16384

// runFan is the fanotify reader goroutine.
func (w *Watcher) runFan() {
	defer w.exit()
	buf := make([]byte, w.bufSize)
	for {
		// Arm the deadline before looking at the requests, so a wake-up
		// made after the look interrupts the read.
		w.mu.Lock()
		var pairDeadline time.Time
		if len(w.fan.waiting) > 0 {
			pairDeadline = w.fan.waitSince.Add(w.pairWait)
		}
		w.mu.Unlock()
		w.file.SetReadDeadline(pairDeadline)
		w.mu.Lock()
		p, extra, failed := w.pause, w.extra, w.err != nil
		w.pause, w.extra = nil, nil
		w.mu.Unlock()
		if failed {
			return
		}
		if len(extra) > 0 {
			w.post(extra)
		}
		if p != nil {
			close(p.ack)
			select {
			case <-p.gate:
			case <-w.done:
				return
			}
			continue
		}
		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if pairDeadline.IsZero() || time.Now().Before(pairDeadline) {
					continue
				}
				var batch []Event
				w.mu.Lock()
				err := w.fan.flushWaiting(func(e Event) { batch = appendEvent(batch, e) })
				w.mu.Unlock()
				if len(batch) > 0 {
					w.post(batch)
				}
				if err != nil {
					w.die(err)
					return
				}
				continue
			}
			w.die(fmt.Errorf("read fanotify events: %w", err))
			return
		}
		w.mu.Lock()
		batch, err := w.fan.process(buf[:n], n+fanMaxEvent > len(buf))
		w.mu.Unlock()
		if len(batch) > 0 {
			w.post(batch)
		}
		if err != nil {
			w.die(err)
			return
		}
	}
}

// post adds a batch to the outbox.
func (w *Watcher) post(batch []Event) {
	w.mu.Lock()
	switch {
	case w.outFull:
		// The Rescan of the root waiting in the outbox covers them.
	case len(w.outbox)+len(batch) > maxOutbox:
		w.outbox = append(w.outbox[:0], Event{Kind: Rescan, Path: "", IsDir: true, Overflow: true})
		w.outFull = true
	case len(w.outbox) == 0:
		w.outbox = batch
	default:
		for _, e := range batch {
			w.outbox = appendEvent(w.outbox, e)
		}
	}
	w.mu.Unlock()
	w.signalSender()
}

func (w *Watcher) signalSender() {
	select {
	case w.outReady <- struct{}{}:
	default:
	}
}

// deliver is the fanotify sender goroutine: it hands the outbox over to the
// consumer, until Close, or until the reader has returned and the outbox
// is empty.
func (w *Watcher) deliver() {
	defer close(w.sent)
	for {
		select {
		case <-w.outReady:
		case <-w.done:
			return
		}
		w.mu.Lock()
		batch, dead := w.outbox, w.dead
		w.outbox, w.outFull = nil, false
		w.mu.Unlock()
		if len(batch) > 0 && !w.send(batch) {
			return
		}
		if dead {
			w.mu.Lock()
			left := len(w.outbox)
			w.mu.Unlock()
			if left == 0 {
				return
			}
			w.signalSender()
		}
	}
}
