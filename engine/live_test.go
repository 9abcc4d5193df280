package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/watch"
)

func newTestLive(workers int) *Live {
	return &Live{opt: LiveOptions{Options: Options{Workers: workers}, MaxDelay: time.Second},
		pending: map[string]*item{}, dirMeta: map[string]struct{}{}, links: newLinkIndex(),
		busyPaths: newPathSet(), blockedPaths: newPathSet()}
}

// queued describes the queue as kind:path strings, in order.
func queued(l *Live) []string {
	var out []string
	for _, it := range l.queue {
		s := map[itemKind]string{itemPath: "path", itemTree: "tree", itemRename: "rename"}[it.kind] + ":" + it.path
		if it.kind == itemRename {
			s = "rename:" + it.from + "->" + it.path
		}
		out = append(out, s)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLive_Intake(t *testing.T) {
	now := time.Unix(1000, 0)
	t.Run("coalesces", func(t *testing.T) {
		l := newTestLive(2)
		for range 1000 {
			l.intake([]watch.Event{{Kind: watch.Changed, Path: "f"}, {Kind: watch.Opened, Path: "f"}}, now)
		}
		if got := queued(l); !equal(got, []string{"path:f"}) {
			t.Fatalf("queue = %v", got)
		}
	})
	t.Run("RenameRemapsQueuedWorkBelowIt", func(t *testing.T) {
		l := newTestLive(2)
		l.intake([]watch.Event{
			{Kind: watch.Changed, Path: "a/x"},
			{Kind: watch.Changed, Path: "other"},
			{Kind: watch.Renamed, From: "a", Path: "b", IsDir: true},
		}, now)
		want := []string{"path:other", "rename:a->b", "path:b/x"}
		if got := queued(l); !equal(got, want) {
			t.Fatalf("queue = %v, want %v", got, want)
		}
		if _, ok := l.pending["a/x"]; ok {
			t.Fatal("a/x still pending under its old name")
		}
	})
	t.Run("EditorSave", func(t *testing.T) {
		// write .f.swp, rename it over f: the temporary's work becomes f's,
		// after the rename.
		l := newTestLive(2)
		l.intake([]watch.Event{
			{Kind: watch.Changed, Path: "f"},
			{Kind: watch.Closed, Path: ".f.swp"},
			{Kind: watch.Renamed, From: ".f.swp", Path: "f"},
		}, now)
		want := []string{"rename:.f.swp->f", "path:f"}
		if got := queued(l); !equal(got, want) {
			t.Fatalf("queue = %v, want %v", got, want)
		}
	})
	t.Run("RescanSwallowsWorkBelow", func(t *testing.T) {
		l := newTestLive(2)
		l.intake([]watch.Event{
			{Kind: watch.Changed, Path: "d/1"},
			{Kind: watch.Changed, Path: "e"},
			{Kind: watch.Rescan, Path: "d", IsDir: true},
			{Kind: watch.Changed, Path: "d/2"},
		}, now)
		want := []string{"path:e", "tree:d", "path:d/2"}
		if got := queued(l); !equal(got, want) {
			t.Fatalf("queue = %v, want %v", got, want)
		}
	})
}

func TestLive_Dispatch(t *testing.T) {
	now := time.Unix(1000, 0)
	t.Run("NeverTwoWorkersOnOnePath", func(t *testing.T) {
		l := newTestLive(4)
		work := make(chan *item, 10)
		l.intake([]watch.Event{{Kind: watch.Changed, Path: "f"}}, now)
		l.dispatch(now, work)
		l.intake([]watch.Event{{Kind: watch.Changed, Path: "f"}}, now)
		l.dispatch(now, work)
		if len(work) != 1 || len(l.queue) != 1 {
			t.Fatalf("dispatched %d, queued %d; want 1 and 1", len(work), len(l.queue))
		}
		l.finish(result{it: <-work})
		l.dispatch(now, work)
		if len(work) != 1 || len(l.queue) != 0 {
			t.Fatalf("after finish: dispatched %d, queued %d; want 1 and 0", len(work), len(l.queue))
		}
	})
	t.Run("NothingPassesARename", func(t *testing.T) {
		l := newTestLive(4)
		work := make(chan *item, 10)
		l.intake([]watch.Event{{Kind: watch.Changed, Path: "a/f"}}, now)
		l.dispatch(now, work) // a/f runs
		l.intake([]watch.Event{
			{Kind: watch.Renamed, From: "a", Path: "b", IsDir: true}, // waits for a/f
			{Kind: watch.Changed, Path: "b/g"},                       // waits for the rename
			{Kind: watch.Changed, Path: "c"},                         // free to go
		}, now)
		l.dispatch(now, work)
		if len(work) != 2 {
			t.Fatalf("dispatched %d, want 2 (a/f and c)", len(work))
		}
		<-work
		if it := <-work; it.path != "c" {
			t.Fatalf("dispatched %q, want c", it.path)
		}
		if got := queued(l); !equal(got, []string{"rename:a->b", "path:b/g"}) {
			t.Fatalf("queue = %v", got)
		}
	})
	t.Run("WaitsForCloseUpToMaxDelay", func(t *testing.T) {
		l := newTestLive(4)
		l.opt.WriteQuiet = 300 * time.Millisecond
		work := make(chan *item, 10)
		// A log written every 200ms: never quiet, never closed.
		for ms := 0; ms < 1000; ms += 200 {
			at := now.Add(time.Duration(ms) * time.Millisecond)
			l.intake([]watch.Event{{Kind: watch.Opened, Path: "log"}}, at)
			if l.dispatch(at, work); len(work) != 0 {
				t.Fatalf("a file being written was copied after %dms", ms)
			}
		}
		if l.dispatch(now.Add(time.Second), work); len(work) != 1 {
			t.Fatal("a file open for writing was not copied after MaxDelay")
		}
		l.finish(result{it: <-work})
		// touch -m: one modification, then nothing.
		l.intake([]watch.Event{{Kind: watch.Opened, Path: "touched"}}, now)
		if next := l.dispatch(now, work); len(work) != 0 || !next.Equal(now.Add(300*time.Millisecond)) {
			t.Fatalf("dispatched %d, next %v; want 0 and now+WriteQuiet", len(work), next)
		}
		if l.dispatch(now.Add(300*time.Millisecond), work); len(work) != 1 {
			t.Fatal("a file modified once was not copied after WriteQuiet")
		}
		l.finish(result{it: <-work})
		l.intake([]watch.Event{{Kind: watch.Opened, Path: "f"}, {Kind: watch.Closed, Path: "f"}}, now)
		if l.dispatch(now, work); len(work) != 1 {
			t.Fatal("a closed file was not copied at once")
		}
	})
	t.Run("Delay", func(t *testing.T) {
		l := newTestLive(4)
		l.opt.Delay = 100 * time.Millisecond
		work := make(chan *item, 10)
		l.intake([]watch.Event{{Kind: watch.Changed, Path: "f"}}, now)
		if l.dispatch(now.Add(50*time.Millisecond), work); len(work) != 0 {
			t.Fatal("dispatched before the delay")
		}
		l.intake([]watch.Event{{Kind: watch.Changed, Path: "f"}}, now.Add(50*time.Millisecond))
		if next := l.dispatch(now.Add(120*time.Millisecond), work); len(work) != 0 || !next.Equal(now.Add(150*time.Millisecond)) {
			t.Fatalf("dispatched %d, next %v: the delay must restart with each event", len(work), next)
		}
	})
}

func TestLinkIndex(t *testing.T) {
	x := newLinkIndex()
	k := [2]uint64{1, 2}
	x.set("a", k)
	x.set("d/b", k)
	x.set("d/c", k)
	x.rename("d", "e")
	got := x.others("a", k)
	slices.Sort(got)
	if len(got) != 2 || got[0] != "e/b" || got[1] != "e/c" {
		t.Fatalf("others = %v", got)
	}
	x.remove("e/b")
	x.set("e/c", [2]uint64{1, 3})
	if got := x.others("a", k); len(got) != 0 {
		t.Fatalf("others = %v, want none", got)
	}
}

// overlaps reports whether two items touch a common path, pairwise: the
// reference the dispatcher's pathSet is checked against.
func overlaps(a, b *item) bool {
	if related(a.path, b.path) {
		return true
	}
	if a.kind == itemRename && (related(a.from, b.path) || b.kind == itemRename && related(a.from, b.from)) {
		return true
	}
	return b.kind == itemRename && related(a.path, b.from)
}

// related reports whether one path is the other or below it.
func related(p, q string) bool { return under(p, q) || under(q, p) }

// TestPathSet_AgreesWithOverlaps checks the dispatcher's indexed overlap
// test against the pairwise one it replaces, on random items.
func TestPathSet_AgreesWithOverlaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"", "a", "a/b", "a/b/c", "a/bc", "ab", "b", "b/a", "a/b/c/d"}
	randItem := func() *item {
		it := &item{kind: itemKind(1 + rng.IntN(3)), path: paths[rng.IntN(len(paths))]}
		if it.kind == itemRename {
			it.from = paths[rng.IntN(len(paths))]
		}
		return it
	}
	for range 2000 {
		set := newPathSet()
		var in []*item
		for range rng.IntN(4) {
			x := randItem()
			set.add(x)
			in = append(in, x)
		}
		if len(in) > 0 && rng.IntN(2) == 0 { // and one removed again
			set.remove(in[0])
			in = in[1:]
		}
		it := randItem()
		want := false
		for _, x := range in {
			want = want || overlaps(it, x)
		}
		if got := set.overlaps(it); got != want {
			t.Fatalf("item %+v against %d items: pathSet says %v, overlaps says %v", *it, len(in), got, want)
		}
		wantCover := false
		for _, x := range in {
			wantCover = wantCover || under(it.path, x.path) || x.kind == itemRename && under(it.path, x.from)
		}
		if got := set.covers(it.path); got != wantCover {
			t.Fatalf("covers(%q): pathSet says %v, want %v", it.path, got, wantCover)
		}
	}
}

// TestFanout_SlowOutputMissesNothing checks that an output nobody reads
// does not hold up the others, and that it is owed and then sent a Rescan
// of the whole tree once it is read again.
func TestFanout_SlowOutputMissesNothing(t *testing.T) {
	in := make(chan []watch.Event)
	outs := Fanout(in, 2, 2)
	fast, slow := outs[0], outs[1]
	const n = 50
	go func() {
		for i := range n {
			in <- []watch.Event{{Kind: watch.Changed, Path: "f" + string(rune('a'+i%26))}}
		}
		close(in)
	}()
	// The producer is done (fast is closed) while slow was never read:
	// slow held nobody up. fast got every batch, or a Rescan at the end
	// after those it was too slow for.
	var got []watch.Event
	for b := range fast {
		got = append(got, b...)
	}
	if len(got) != n && !slices.ContainsFunc(got, func(e watch.Event) bool { return e.Kind == watch.Rescan }) {
		t.Fatalf("the fast output got %d of %d batches and no Rescan", len(got), n)
	}
	var events []watch.Event
	for b := range slow {
		events = append(events, b...)
	}
	if len(events) == 0 || events[len(events)-1].Kind != watch.Rescan || events[len(events)-1].Path != "" {
		t.Fatalf("the slow output's last event is not a Rescan of the tree: %v", events)
	}
	if len(events) > 3 {
		t.Fatalf("the slow output got %d events; it should have missed most and got a Rescan", len(events))
	}
}
