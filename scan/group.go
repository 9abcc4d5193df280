// Package scan walks trees in parallel and compares them: it is the engine of
// `fsmirror verify` and gives the sync engine its worker pool.
package scan

import (
	"context"
	"sync"
)

// Group runs tasks on a fixed number of goroutines. A task may add more
// tasks; Go never blocks. Tasks run last-in first-out, so a tree walk goes
// depth first and keeps few directories open at once.
type Group struct {
	ctx     context.Context
	mu      sync.Mutex
	more    *sync.Cond // a task was queued, or the workers must stop
	idle    *sync.Cond // pending reached zero
	tasks   []func()
	pending int // queued plus running
	wg      sync.WaitGroup
}

// NewGroup starts workers goroutines (at least one). Once ctx is done, tasks
// still queued are dropped.
func NewGroup(ctx context.Context, workers int) *Group {
	if workers < 1 {
		workers = 1
	}
	g := &Group{ctx: ctx}
	g.more = sync.NewCond(&g.mu)
	g.idle = sync.NewCond(&g.mu)
	g.wg.Add(workers)
	for range workers {
		go g.work()
	}
	return g
}

// Go queues task.
func (g *Group) Go(task func()) {
	g.mu.Lock()
	g.tasks = append(g.tasks, task)
	g.pending++
	g.mu.Unlock()
	g.more.Signal()
}

// Wait returns when every task queued so far, and every task they queued, has
// run (or was dropped because the context ended), and stops the workers.
func (g *Group) Wait() {
	g.mu.Lock()
	for g.pending > 0 {
		g.idle.Wait()
	}
	g.pending = -1 // tells the workers to stop
	g.mu.Unlock()
	g.more.Broadcast()
	g.wg.Wait()
}

func (g *Group) work() {
	defer g.wg.Done()
	g.mu.Lock()
	for {
		for len(g.tasks) == 0 && g.pending >= 0 {
			g.more.Wait()
		}
		if g.pending < 0 {
			g.mu.Unlock()
			return
		}
		task := g.tasks[len(g.tasks)-1]
		g.tasks[len(g.tasks)-1] = nil
		g.tasks = g.tasks[:len(g.tasks)-1]
		g.mu.Unlock()
		if g.ctx.Err() == nil {
			task()
		}
		g.mu.Lock()
		g.pending--
		if g.pending == 0 {
			g.idle.Broadcast()
		}
	}
}
