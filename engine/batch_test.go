package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/watch"
)

// fakeSyncer is a PathSyncer that records its calls. fail, if set, decides
// the error of each call; hold, if set, keeps each call running until a
// value arrives.
type fakeSyncer struct {
	mu      sync.Mutex
	calls   []string // "all", or "paths:a,b trees:c"
	running map[int][]string
	overlap string // the first overlap seen between running calls
	maxRun  int
	fail    func(n int, call string) error
	hold    chan struct{}
}

func (f *fakeSyncer) do(ctx context.Context, call string, touched []string) error {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, call)
	for _, r := range f.running {
		for _, p := range r {
			for _, q := range touched {
				if related(p, q) && f.overlap == "" {
					f.overlap = fmt.Sprintf("%q runs while %q does", q, p)
				}
			}
		}
	}
	if f.running == nil {
		f.running = map[int][]string{}
	}
	f.running[n] = touched
	f.maxRun = max(f.maxRun, len(f.running))
	fail := f.fail
	f.mu.Unlock()
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	delete(f.running, n)
	f.mu.Unlock()
	if fail != nil {
		return fail(n, call)
	}
	return nil
}

func (f *fakeSyncer) SyncAll(ctx context.Context) error { return f.do(ctx, "all", []string{""}) }

func (f *fakeSyncer) SyncPaths(ctx context.Context, paths, trees []string) error {
	ps, ts := slices.Clone(paths), slices.Clone(trees)
	slices.Sort(ps)
	slices.Sort(ts)
	var touched []string
	for _, p := range append(ps, ts...) {
		if p != "" {
			touched = append(touched, p)
		}
	}
	return f.do(ctx, "paths:"+strings.Join(ps, ",")+" trees:"+strings.Join(ts, ","), touched)
}

func (f *fakeSyncer) Close() error { return nil }

func (f *fakeSyncer) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// runBatcher runs a batcher on events until it is idle with every event
// taken in, and returns its error.
func runBatcher(t *testing.T, b *Batcher, batches ...[]watch.Event) error {
	t.Helper()
	ch := make(chan []watch.Event, len(batches))
	for _, batch := range batches {
		ch <- batch
	}
	close(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := b.Run(ctx, ch)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run did not finish within 30s")
	}
	return err
}

func ev(kind watch.Kind, path string) watch.Event { return watch.Event{Kind: kind, Path: path} }

func TestBatcher_Intake(t *testing.T) {
	now := time.Unix(1000, 0)
	pendingOf := func(b *Batcher) []string {
		var out []string
		for _, it := range b.order {
			if it != nil {
				k := "path"
				if it.tree {
					k = "tree"
				}
				out = append(out, k+":"+it.path)
			}
		}
		return out
	}
	t.Run("coalesces", func(t *testing.T) {
		b := NewBatcher(&fakeSyncer{}, BatchOptions{})
		for range 1000 {
			b.intake([]watch.Event{ev(watch.Changed, "d/f"), ev(watch.Opened, "d/f"), ev(watch.Closed, "d/f")}, now)
		}
		if got := pendingOf(b); !slices.Equal(got, []string{"path:d/f"}) || b.rootMeta {
			t.Fatalf("pending = %v, rootMeta %v", got, b.rootMeta)
		}
	})
	t.Run("renames", func(t *testing.T) {
		b := NewBatcher(&fakeSyncer{}, BatchOptions{})
		b.intake([]watch.Event{
			{Kind: watch.Renamed, From: "a/f", Path: "a/g"},
			{Kind: watch.Renamed, From: "d", Path: "e/d2", IsDir: true},
		}, now)
		want := []string{"path:a/f", "path:a/g", "path:d", "tree:e/d2"}
		if got := pendingOf(b); !slices.Equal(got, want) || !b.rootMeta {
			t.Fatalf("pending = %v, want %v; rootMeta %v (d left the root)", got, want, b.rootMeta)
		}
	})
	t.Run("a tree swallows what is below it", func(t *testing.T) {
		b := NewBatcher(&fakeSyncer{}, BatchOptions{})
		b.intake([]watch.Event{
			ev(watch.Changed, "d/1"), ev(watch.Changed, "e"), ev(watch.Opened, "d/x/2"),
			{Kind: watch.Rescan, Path: "d", IsDir: true},
			ev(watch.Changed, "d/3"),
		}, now)
		if got := pendingOf(b); !slices.Equal(got, []string{"path:e", "tree:d"}) {
			t.Fatalf("pending = %v", got)
		}
		if it := b.pending["d"]; it.writing.IsZero() {
			t.Errorf("the tree does not wait for the file being written below it")
		}
	})
	t.Run("excluded paths", func(t *testing.T) {
		flt, err := filter.New([]string{"*.swp", "cache/"})
		if err != nil {
			t.Fatal(err)
		}
		b := NewBatcher(&fakeSyncer{}, BatchOptions{Filter: flt})
		b.intake([]watch.Event{
			ev(watch.Closed, "d/.f.swp"),
			{Kind: watch.Renamed, From: "d/.f.swp", Path: "d/f"},
			{Kind: watch.Changed, Path: "cache", IsDir: true},
			{Kind: watch.Changed, Path: "x/cache"}, // a file: "cache/" is for directories
		}, now)
		if got := pendingOf(b); !slices.Equal(got, []string{"path:d/f", "path:x/cache"}) {
			t.Fatalf("pending = %v", got)
		}
	})
	t.Run("memory is bounded", func(t *testing.T) {
		var notices []string
		b := NewBatcher(&fakeSyncer{}, BatchOptions{MaxDirty: 1000, Report: func(e Event) { notices = append(notices, e.Err.Error()) }})
		for i := range 100 {
			var batch []watch.Event
			for j := range 500 {
				batch = append(batch, ev(watch.Closed, fmt.Sprintf("d%d/f%d", i, j)))
			}
			b.intake(batch, now)
			if len(b.pending) > 1000+500 || len(b.order) > 4*1024+1500 {
				t.Fatalf("after %d events: %d pending, %d in order", (i+1)*500, len(b.pending), len(b.order))
			}
		}
		if _, ok := b.pending[""]; !ok || len(notices) == 0 {
			t.Errorf("no whole-tree sync queued after more than MaxDirty paths; notices %q", notices)
		}
	})
}

func TestBatcher_Run(t *testing.T) {
	t.Run("one run per batch, root metadata along", func(t *testing.T) {
		f := &fakeSyncer{}
		b := NewBatcher(f, BatchOptions{})
		err := runBatcher(t, b, []watch.Event{
			ev(watch.Changed, "a"), ev(watch.Closed, "d/b"), {Kind: watch.Rescan, Path: "n", IsDir: true}, ev(watch.Changed, "n/x"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := f.log(), []string{"paths:,a,d/b trees:n"}; !slices.Equal(got, want) {
			t.Errorf("calls = %q, want %q", got, want)
		}
	})
	t.Run("never two runs on related paths", func(t *testing.T) {
		f := &fakeSyncer{hold: make(chan struct{})}
		stop := make(chan struct{})
		defer close(stop)
		go func() { // let each run go after a moment
			for {
				time.Sleep(time.Millisecond)
				select {
				case f.hold <- struct{}{}:
				case <-stop:
					return
				}
			}
		}()
		b := NewBatcher(f, BatchOptions{Processes: 4, MaxPaths: 2})
		var batches [][]watch.Event
		for i := range 30 {
			batches = append(batches, []watch.Event{
				ev(watch.Closed, fmt.Sprintf("d%d/f", i%3)),
				{Kind: watch.Rescan, Path: fmt.Sprintf("d%d", i%4), IsDir: true},
				ev(watch.Changed, fmt.Sprintf("d%d/sub/g", i%5)),
				{Kind: watch.Renamed, From: fmt.Sprintf("d%d", i%2), Path: fmt.Sprintf("e%d", i%3), IsDir: true},
			})
		}
		if err := runBatcher(t, b, batches...); err != nil {
			t.Fatal(err)
		}
		if f.overlap != "" {
			t.Errorf("overlapping runs: %s", f.overlap)
		}
		if f.maxRun < 2 {
			t.Errorf("never more than %d runs at once, with 4 allowed", f.maxRun)
		}
	})
	t.Run("a whole-tree sync does not wait for ever", func(t *testing.T) {
		// Two processes and a steady stream of changes, so that a run is
		// nearly always going on: the whole-tree sync swallows what is
		// queued and what comes after it, so it gets its turn.
		f := &fakeSyncer{hold: make(chan struct{})}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				time.Sleep(time.Millisecond)
				select {
				case f.hold <- struct{}{}:
				case <-stop:
					return
				}
			}
		}()
		b := NewBatcher(f, BatchOptions{Processes: 2, MaxPaths: 4})
		events := make(chan []watch.Event)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- b.Run(ctx, events) }()
		done := make(chan struct{})
		for i := 0; ; i++ {
			if i == 20 && !b.Rescan(ctx, "", func() { close(done) }) {
				t.Fatal("Rescan refused")
			}
			var batch []watch.Event
			for j := range 8 {
				batch = append(batch, ev(watch.Closed, fmt.Sprintf("d%d/f%d", j, i)))
			}
			select {
			case events <- batch:
			case <-ctx.Done():
				t.Fatal("the whole-tree sync never ran under a steady stream of changes")
			}
			if i > 20 {
				select {
				case <-done:
				default:
					continue
				}
				break
			}
		}
		close(events)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("waits for the close of a file being written", func(t *testing.T) {
		f := &fakeSyncer{}
		b := NewBatcher(f, BatchOptions{WriteQuiet: time.Hour, MaxDelay: time.Hour})
		events := make(chan []watch.Event, 2)
		events <- []watch.Event{ev(watch.Opened, "d/log")}
		idle := make(chan struct{}, 100)
		b.opt.OnIdle = func() { idle <- struct{}{} }
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- b.Run(ctx, events) }()
		time.Sleep(50 * time.Millisecond)
		if got := f.log(); len(got) > 0 {
			t.Fatalf("a file still open for writing was sent: %q", got)
		}
		events <- []watch.Event{ev(watch.Closed, "d/log")}
		close(events)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if got := f.log(); !slices.Equal(got, []string{"paths:d/log trees:"}) {
			t.Errorf("calls = %q", got)
		}
	})
	t.Run("destination down: paths kept, whole tree once it is back", func(t *testing.T) {
		down := fmt.Errorf("connection refused: %w", fsmirror.ErrTargetDown)
		f := &fakeSyncer{fail: func(n int, _ string) error {
			if n < 3 {
				return down
			}
			return nil
		}}
		var notices []string
		b := NewBatcher(f, BatchOptions{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
			Report: func(e Event) { notices = append(notices, e.Err.Error()) }})
		if err := runBatcher(t, b, []watch.Event{ev(watch.Closed, "d/a")}, []watch.Event{ev(watch.Closed, "d/b")}); err != nil {
			t.Fatal(err)
		}
		calls := f.log()
		if len(calls) < 5 || calls[len(calls)-1] != "all" || !strings.Contains(calls[len(calls)-2], "d/a") || !strings.Contains(calls[len(calls)-2], "d/b") {
			t.Errorf("calls = %q; want retries of d/a and d/b, then the whole tree", calls)
		}
		if len(notices) < 3 || !strings.Contains(notices[0], "connection refused") || !strings.Contains(notices[0], "trying again in") {
			t.Errorf("notices = %q", notices)
		}
	})
	t.Run("partial failures: a few tries, then reported", func(t *testing.T) {
		f := &fakeSyncer{fail: func(int, string) error { return fmt.Errorf("permission denied: %w", fsmirror.ErrPartial) }}
		var errs []Event
		b := NewBatcher(f, BatchOptions{PartialRetries: 2, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Report: func(e Event) {
			if e.Kind == EventError {
				errs = append(errs, e)
			}
		}})
		if err := runBatcher(t, b, []watch.Event{ev(watch.Closed, "d/a")}); err != nil {
			t.Fatal(err)
		}
		if got := f.log(); len(got) != 3 {
			t.Errorf("calls = %q, want 3 (one try and 2 retries)", got)
		}
		if len(errs) != 1 || errs[0].Path != "d/a" || !strings.Contains(errs[0].Err.Error(), "gave up after 3 tries") {
			t.Errorf("errors reported: %+v", errs)
		}
	})
	t.Run("partial failures: retries isolate the failing path", func(t *testing.T) {
		f := &fakeSyncer{fail: func(_ int, call string) error {
			if strings.Contains(call, "d/bad") {
				return fmt.Errorf("permission denied: %w", fsmirror.ErrPartial)
			}
			return nil
		}}
		var errs []Event
		b := NewBatcher(f, BatchOptions{PartialRetries: 6, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, Report: func(e Event) {
			if e.Kind == EventError {
				errs = append(errs, e)
			}
		}})
		var batch []watch.Event
		for i := range 40 {
			batch = append(batch, ev(watch.Closed, fmt.Sprintf("d/%02d", i)))
		}
		batch = append(batch, ev(watch.Closed, "d/bad"))
		if err := runBatcher(t, b, batch); err != nil {
			t.Fatal(err)
		}
		if len(errs) != 1 || errs[0].Path != "d/bad" || !strings.Contains(errs[0].Err.Error(), `(d/bad; gave up`) {
			t.Errorf("errors reported: %+v", errs)
		}
		if n := len(f.log()); n > 1+2*6 {
			t.Errorf("%d runs for one failing path in 41", n)
		}
	})
	t.Run("fatal", func(t *testing.T) {
		fatal := errors.New("auth failed")
		f := &fakeSyncer{fail: func(int, string) error { return fatal }}
		b := NewBatcher(f, BatchOptions{})
		events := make(chan []watch.Event, 1)
		events <- []watch.Event{ev(watch.Closed, "d/a")}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Run(ctx, events); err != fatal {
			t.Errorf("Run = %v, want the fatal error", err)
		}
	})
	t.Run("overflow: the whole tree", func(t *testing.T) {
		f := &fakeSyncer{}
		var notices []string
		b := NewBatcher(f, BatchOptions{Report: func(e Event) { notices = append(notices, e.Err.Error()) }})
		if err := runBatcher(t, b, []watch.Event{ev(watch.Closed, "d/a"), {Kind: watch.Rescan, Path: "", IsDir: true, Overflow: true}}); err != nil {
			t.Fatal(err)
		}
		if got := f.log(); !slices.Equal(got, []string{"all"}) || len(notices) != 1 || !strings.Contains(notices[0], "overflow") {
			t.Errorf("calls = %q, notices %q", got, notices)
		}
	})
	t.Run("rescan requests", func(t *testing.T) {
		f := &fakeSyncer{}
		b := NewBatcher(f, BatchOptions{})
		events := make(chan []watch.Event)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- b.Run(ctx, events) }()
		done := make(chan struct{})
		if !b.Rescan(ctx, "", func() { close(done) }) {
			t.Fatal("Rescan refused")
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("the rescan was never done")
		}
		close(events)
		if err := <-errc; err != nil || !slices.Equal(f.log(), []string{"all"}) {
			t.Errorf("Run = %v, calls %q", err, f.log())
		}
	})
}
