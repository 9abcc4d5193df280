package index

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fsmirror/fsmirror"
)

// A gen is a batch of changes not yet in the file, by parent directory and
// name, so that a listing overlays the changes of one directory with one
// lookup.
type gen struct {
	dirs map[string]map[string]rec
	// below holds every directory with a change in it or anywhere below
	// it, so that a subtree without changes is known at once.
	below map[string]struct{}
	n     int // number of changes
}

// rec is one change: an entry, or its removal.
type rec struct {
	e   fsmirror.Entry
	del bool
}

func newGen() *gen {
	return &gen{dirs: map[string]map[string]rec{}, below: map[string]struct{}{}}
}

// touches reports whether g changes anything below directory dir.
func (g *gen) touches(dir string) bool {
	_, ok := g.below[dir]
	return ok
}

func (g *gen) get(dir, name string) (rec, bool) {
	r, ok := g.dirs[dir][name]
	return r, ok
}

func (g *gen) set(dir, name string, r rec) {
	m := g.dirs[dir]
	if m == nil {
		m = map[string]rec{}
		g.dirs[dir] = m
		for d := dir; ; {
			if _, ok := g.below[d]; ok {
				break
			}
			g.below[d] = struct{}{}
			if d == "" {
				break
			}
			d, _ = fsmirror.Split(d)
		}
	}
	if _, ok := m[name]; !ok {
		g.n++
	}
	m[name] = r
}

// merged returns a new batch of the changes of g, then those of newer.
func merged(g, newer *gen) *gen {
	out := newGen()
	for _, src := range []*gen{g, newer} {
		for dir, m := range src.dirs {
			for name, r := range m {
				out.set(dir, name, r)
			}
		}
	}
	return out
}

// run is the flusher: it commits what is pending flushInterval after the
// first change of a batch, or at once when flushSize changes are pending.
// It sleeps while nothing is pending.
func (x *Index) run() {
	defer close(x.done)
	retry := x.cfg.flushInterval
	for {
		// After a failed commit, a full batch waits for the retry too.
		full := x.full
		if retry > x.cfg.flushInterval {
			full = nil
		}
		now := false
		select {
		case <-x.kick:
		case <-full:
			now = true
		case <-x.quit:
			return
		}
		if !now {
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-full:
				t.Stop()
			case <-x.quit:
				t.Stop()
				return
			}
		}
		if err := x.flush(); err != nil {
			// Kept pending; try again, less and less often.
			retry = min(2*retry, 10*time.Second)
			x.signal(x.kick)
		} else {
			retry = x.cfg.flushInterval
		}
	}
}

// signal wakes the flusher without blocking.
func (x *Index) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// flush commits the pending changes in one transaction. Readers see them in
// x.flushing until the commit is over. A failed commit keeps them pending.
func (x *Index) flush() error {
	x.mu.Lock()
	if x.pending.n == 0 {
		x.mu.Unlock()
		return nil
	}
	g := x.pending
	x.flushing, x.pending = g, newGen()
	nextIno := x.nextIno
	x.mu.Unlock()

	err := x.db.Update(func(tx *bolt.Tx) error { return commit(tx, g, nextIno) })

	x.mu.Lock()
	if err != nil {
		x.pending = merged(g, x.pending)
	}
	x.flushing = nil
	x.flushed.Broadcast()
	x.mu.Unlock()
	return err
}

// commit writes batch g in tx, in key order: neighbours share pages.
func commit(tx *bolt.Tx, g *gen, nextIno uint64) error {
	type change struct {
		key []byte
		r   rec
	}
	changes := make([]change, 0, g.n)
	for dir, m := range g.dirs {
		for name, r := range m {
			changes = append(changes, change{key: []byte(dir + "\x00" + name), r: r})
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return bytes.Compare(a.key, b.key) })
	b := tx.Bucket(entriesBucket)
	for _, c := range changes {
		var err error
		if c.r.del {
			err = b.Delete(c.key)
		} else {
			// bbolt keeps the value slice until the commit: no reuse.
			err = b.Put(c.key, appendValue(make([]byte, 0, valueSize+len(c.r.e.Target)), &c.r.e))
		}
		if err != nil {
			return err
		}
	}
	return tx.Bucket(metaBucket).Put(metaIno, binary.LittleEndian.AppendUint64(nil, nextIno))
}
