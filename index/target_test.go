package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/targettest"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

func TestTarget_Conformance(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			targettest.Run(t, func(t *testing.T) (fsmirror.Target, string) {
				x, _ := openT(t, testConfig())
				inner, dir := localT(t)
				tg := x.Wrap(inner, trusted)
				// Registered last, run first: whatever the case did, a
				// full compare makes the index equal to the destination.
				t.Cleanup(func() {
					tg.SetTrusted(false)
					if _, err := walk(context.Background(), tg, ""); err != nil {
						t.Fatal(err)
					}
					assertIndexMatches(t, tg, inner)
				})
				return tg, dir
			})
		})
	}
}

var testMtime = int64(1_700_000_000_123_456_789)

func fileEntry(content string, mode uint32) fsmirror.Entry {
	return fsmirror.Entry{Type: fsmirror.TypeFile, Mode: mode, Size: int64(len(content)), Mtime: testMtime,
		Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

func dirEntry(mode uint32) fsmirror.Entry {
	return fsmirror.Entry{Type: fsmirror.TypeDir, Mode: mode, Mtime: testMtime, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

func mustApply(t testing.TB, tg fsmirror.Target, ops ...*fsmirror.Op) {
	t.Helper()
	for _, op := range ops {
		if err := tg.Apply(context.Background(), op); err != nil {
			t.Fatalf("apply %s %q: %v", op.Kind, op.Path, err)
		}
	}
}

func writeOp(path, content string) *fsmirror.Op {
	return &fsmirror.Op{Kind: fsmirror.OpWrite, Path: path, Entry: fileEntry(content, 0o644), Data: strings.NewReader(content), Replace: true}
}

func mkdirOp(path string) *fsmirror.Op {
	return &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: path, Entry: dirEntry(0o755)}
}

func TestTarget_PendingVisibleBeforeFlush(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.flushInterval, cfg.flushSize = time.Hour, 1<<30
	x, _ := openT(t, cfg)
	tg := x.Wrap(nopTarget{}, true)
	mustApply(t, tg, mkdirOp("d"), writeOp("d/f", "hello"), writeOp("g", "x"))

	inFile := func(path string) bool {
		found := false
		x.db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(entriesBucket).Get([]byte(keyOf(path))) != nil
			return nil
		})
		return found
	}
	check := func(when string) {
		t.Helper()
		e, err := tg.Lstat(ctx, "d/f")
		if err != nil || e.Size != 5 || e.Type != fsmirror.TypeFile {
			t.Fatalf("%s: Lstat(d/f) = %+v, %v", when, e, err)
		}
		entries, err := tg.ReadDir(ctx, "d")
		if err != nil || len(entries) != 1 || entries[0].Name != "f" {
			t.Fatalf("%s: ReadDir(d) = %+v, %v", when, entries, err)
		}
		entries, err = tg.ReadDir(ctx, "")
		if err != nil || len(entries) != 2 {
			t.Fatalf("%s: ReadDir(root) = %+v, %v", when, entries, err)
		}
		if n, err := x.Len(); err != nil || n != 3 {
			t.Fatalf("%s: Len = %d, %v, want 3", when, n, err)
		}
	}
	if inFile("d/f") {
		t.Fatal("committed before the flush")
	}
	check("pending")
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if !inFile("d/f") {
		t.Fatal("not committed by the flush")
	}
	check("committed")

	// A removal waiting in memory hides what the file holds.
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "d"})
	if !inFile("d/f") {
		t.Fatal("delete committed before the flush")
	}
	if _, err := tg.Lstat(ctx, "d/f"); !isNotExist(err) {
		t.Fatalf("Lstat(d/f) after delete: %v", err)
	}
	if _, err := tg.ReadDir(ctx, "d"); !isNotExist(err) {
		t.Fatalf("ReadDir(d) after delete: %v", err)
	}
	if n, _ := x.Len(); n != 1 {
		t.Fatalf("Len after delete = %d, want 1", n)
	}
}

func TestTarget_FlushesByItself(t *testing.T) {
	cfg := testConfig()
	cfg.flushInterval, cfg.flushSize = 20*time.Millisecond, 1<<30
	x, _ := openT(t, cfg)
	tg := x.Wrap(nopTarget{}, true)
	mustApply(t, tg, writeOp("f", "x"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		x.mu.RLock()
		n := x.pending.n
		x.mu.RUnlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pending change never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTarget_UntrustedRebuilds(t *testing.T) {
	ctx := context.Background()
	inner, dir := localT(t)
	testutil.NastyTree(t, dir)
	testutil.Build(t, dir,
		testutil.File("top", "top", 0o640).Mtime(testMtime),
		testutil.HardLink("files/linked", "top"),
		testutil.Dir("empty", 0o700),
	)
	if os.Geteuid() == 0 {
		testutil.Build(t, dir, testutil.Fifo("fifo", 0o600))
	}
	x, path := openT(t, testConfig())
	tg := x.Wrap(inner, false)

	rebuild := func(t *testing.T) {
		t.Helper()
		tg.SetTrusted(false)
		if _, err := tg.Lstat(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := walk(ctx, tg, ""); err != nil {
			t.Fatal(err)
		}
		tg.SetTrusted(true)
		assertIndexMatches(t, tg, inner)
	}
	t.Run("from empty", rebuild)

	t.Run("after changes behind its back", func(t *testing.T) {
		testutil.Build(t, dir,
			testutil.File("dirs/new", "new", 0o600),
			testutil.File("top", "rewritten in place", 0o640),
		)
		for _, p := range []string{"links", "empty"} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
		testutil.Build(t, dir, testutil.File("links", "a file where a directory was", 0o600))
		n0, _ := x.Len()
		rebuild(t)
		if n, _ := x.Len(); n >= n0 {
			t.Fatalf("Len %d after removing a directory of links, was %d", n, n0)
		}
		if _, err := tg.Lstat(ctx, "links/"+testutil.NastyNames()[0]); !isNotExist(err) {
			t.Fatalf("stale entry below a replaced directory: %v", err)
		}
	})

	t.Run("after the index was emptied", func(t *testing.T) {
		want, _ := x.Len()
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		x2, err := open(path, testSrc, testDst, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer x2.Close()
		if n, _ := x2.Len(); n != 0 || x2.Trusted() {
			t.Fatalf("new index: Len %d, trusted %v", n, x2.Trusted())
		}
		tg = x2.Wrap(inner, false)
		rebuild(t)
		if n, _ := x2.Len(); n != want {
			t.Fatalf("Len after rebuild = %d, want %d", n, want)
		}
	})
}

func TestTarget_UntrustedStatRecords(t *testing.T) {
	ctx := context.Background()
	inner, dir := localT(t)
	testutil.Build(t, dir, testutil.File("d/f", "abc", 0o600))
	x, _ := openT(t, testConfig())
	tg := x.Wrap(inner, false)
	for _, p := range []string{"", "d", "d/f"} {
		if _, err := tg.Lstat(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := x.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	os.RemoveAll(filepath.Join(dir, "d"))
	if _, err := tg.Lstat(ctx, "d"); !isNotExist(err) {
		t.Fatal(err)
	}
	if n, _ := x.Len(); n != 1 {
		t.Fatalf("Len after d vanished = %d, want 1", n)
	}
}

// TestTarget_ListingRacesAnOp checks that a listing taken before an op, but
// recorded after it, does not undo the op's record.
func TestTarget_ListingRacesAnOp(t *testing.T) {
	ctx := context.Background()
	x, _ := openT(t, testConfig())
	inner, _ := localT(t)
	tg := x.Wrap(inner, false)
	slow := &gateTarget{Target: inner, listed: make(chan struct{}), release: make(chan struct{})}
	ut := x.Wrap(slow, false)
	done := make(chan error)
	go func() {
		_, err := ut.ReadDir(ctx, "")
		done <- err
	}()
	<-slow.listed // the listing is taken: empty
	mustApply(t, tg, writeOp("f", "new"))
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tg.SetTrusted(true)
	if _, err := tg.Lstat(ctx, "f"); err != nil {
		t.Fatalf("the listing undid the write: %v", err)
	}
}

type gateTarget struct {
	fsmirror.Target
	listed, release chan struct{}
}

func (g *gateTarget) ReadDir(ctx context.Context, dir string) ([]fsmirror.Entry, error) {
	entries, err := g.Target.ReadDir(ctx, dir)
	close(g.listed)
	<-g.release
	return entries, err
}

func TestTarget_DeepSubtrees(t *testing.T) {
	ctx := context.Background()
	x, _ := openT(t, testConfig())
	inner, dir := localT(t)
	tg := x.Wrap(inner, true)
	comp := strings.Repeat("d", 200)
	// Siblings whose keys sort next to the subtree's: none may be moved or
	// removed with it.
	siblings := []string{"t\x01", "t.", "t0", "t ", "t-x", "tt"}
	for _, s := range siblings {
		mustApply(t, tg, mkdirOp(s), writeOp(s+"/f", s))
	}
	mustApply(t, tg, mkdirOp("t"))
	path := "t"
	for i := range 30 { // 6000 bytes: longer than PATH_MAX
		path = fsmirror.Join(path, comp)
		mustApply(t, tg, mkdirOp(path), writeOp(path+"/f", fmt.Sprint(i)))
	}
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: path + "/l", Entry: fsmirror.Entry{Type: fsmirror.TypeSymlink, Target: "f", Mtime: testMtime}})
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpLink, Path: "t/" + comp + "/hard", From: path + "/f"})
	assertIndexMatches(t, tg, inner)
	n0, _ := x.Len()

	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpRename, From: "t", Path: "u"})
	assertIndexMatches(t, tg, inner)
	if n, _ := x.Len(); n != n0 {
		t.Fatalf("Len after rename = %d, want %d", n, n0)
	}
	moved := "u" + strings.TrimPrefix(path, "t")
	if e, err := tg.Lstat(ctx, moved+"/l"); err != nil || e.Target != "f" {
		t.Fatalf("Lstat of the moved deep symlink = %+v, %v", e, err)
	}
	if _, err := tg.Lstat(ctx, path+"/f"); !isNotExist(err) {
		t.Fatalf("old deep path still recorded: %v", err)
	}

	// Rename over a directory that holds something else.
	mustApply(t, tg, mkdirOp("v"), writeOp("v/old", "old"))
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpRename, From: "u/" + comp, Path: "v", Replace: true})
	assertIndexMatches(t, tg, inner)
	if _, err := tg.Lstat(ctx, "v/old"); !isNotExist(err) {
		t.Fatalf("replaced directory's content still recorded: %v", err)
	}

	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "v"})
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "u"})
	assertIndexMatches(t, tg, inner)
	if n, _ := x.Len(); n != 2*len(siblings) {
		t.Fatalf("Len after deleting the subtrees = %d, want %d (the siblings)", n, 2*len(siblings))
	}
	if names, _ := os.ReadDir(dir); len(names) != len(siblings) {
		t.Fatalf("destination holds %d names, want %d", len(names), len(siblings))
	}
}

// TestTarget_FailedOps checks that an op that fails leaves the index
// knowing less, never claiming what is not there.
func TestTarget_FailedOps(t *testing.T) {
	ctx := context.Background()
	x, _ := openT(t, testConfig())
	inner, dir := localT(t)
	tg := x.Wrap(inner, true)
	mustApply(t, tg, mkdirOp("d"), writeOp("d/f", "f"), mkdirOp("e"), writeOp("e/g", "g"))
	// Behind the index's back.
	if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	if err := tg.Apply(ctx, writeOp("d/f2", "x")); err == nil {
		t.Fatal("write into a vanished directory succeeded")
	}
	if _, err := tg.Lstat(ctx, "d"); !isNotExist(err) {
		t.Fatalf("vanished directory still recorded after a failed write into it: %v", err)
	}
	if err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpRename, From: "e", Path: "e/g/x"}); err == nil {
		t.Fatal("rename into a file succeeded")
	}
	assertIndexMatches(t, tg, inner)
	if err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: "nope", Entry: fileEntry("", 0o600)}); err == nil {
		t.Fatal("setmeta of a missing path succeeded")
	}
	assertIndexMatches(t, tg, inner)
}

func TestTarget_RandomOps(t *testing.T) {
	for seed := range uint64(randomSeeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { randomOps(t, seed, randomOpsN, false) })
	}
	// With listings and lstats of the destination in between, recorded
	// as a full compare records them.
	for seed := range uint64(randomSeeds) {
		t.Run(fmt.Sprint("mixed/seed", seed), func(t *testing.T) { randomOps(t, seed, randomOpsN, true) })
	}
}

// randomOps applies n random ops, some of them failing, to a local target
// through a trusted index that starts empty, and checks that the index
// always says what the destination holds. With mixed, untrusted listings
// and lstats come in between, which replace the index's inode numbers by
// the destination's.
func randomOps(t *testing.T, seed uint64, n int, mixed bool) {
	ctx := context.Background()
	cfg := testConfig()
	switch seed % 3 {
	case 1: // everything stays in memory until Close
		cfg.flushInterval, cfg.flushSize = time.Hour, 1<<30
	case 2: // one commit per change
		cfg.flushSize = 1
	}
	x, path := openT(t, cfg)
	inner, _ := localT(t)
	tg := x.Wrap(inner, true)
	rng := rand.New(rand.NewPCG(seed, 42))
	names := []string{"a", "b", "ab", "a b", "a.b", "a\nb", "\xff\xfe", "c", "d\x01"}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	mtime := func() int64 { return 1_600_000_000_000_000_000 + rng.Int64N(1e17) }
	pick := func(s []string) string { return pickOne(rng, s) }
	fileModes := []uint32{0o600, 0o644, 0o755, 0o640, 0o4755}
	dirModes := []uint32{0o700, 0o755, 0o750}
	counts := map[fsmirror.OpKind]int{}
	failed := 0
	for i := range n {
		dirs, files, all := listTree(t, inner)
		if mixed && rng.IntN(4) == 0 {
			tg.SetTrusted(false)
			if rng.IntN(2) == 0 {
				d := pick(dirs)
				if os.Getenv("INDEX_DEBUG") != "" {
					t.Logf("list %q", d)
				}
				if _, err := tg.ReadDir(ctx, d); err != nil {
					t.Fatal(err)
				}
			} else {
				q := pick(append(all, ""))
				if os.Getenv("INDEX_DEBUG") != "" {
					t.Logf("lstat %q", q)
				}
				if _, err := tg.Lstat(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			tg.SetTrusted(true)
		}
		p := fsmirror.Join(pick(dirs), pick(names))
		_, statErr := inner.Lstat(ctx, p)
		exists := statErr == nil
		var op *fsmirror.Op
		switch k := rng.IntN(12); {
		case k < 2:
			op = &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: p, Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: pickOne(rng, dirModes), Uid: uid, Gid: gid}}
		case k < 4:
			content := strings.Repeat("x", rng.IntN(40))
			e := fsmirror.Entry{Type: fsmirror.TypeFile, Mode: pickOne(rng, fileModes), Size: int64(len(content)), Mtime: mtime(), Uid: uid, Gid: gid}
			op = &fsmirror.Op{Kind: fsmirror.OpWrite, Path: p, Entry: e, Data: strings.NewReader(content), Replace: exists}
		case k < 5:
			e := fsmirror.Entry{Type: fsmirror.TypeSymlink, Mode: 0o777, Target: pick([]string{"a", "../x", "t\nt", "/etc"}), Mtime: mtime(), Uid: uid, Gid: gid}
			op = &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: p, Entry: e, Replace: exists}
		case k < 6 && os.Geteuid() == 0:
			e := fsmirror.Entry{Type: fsmirror.TypeFifo, Mode: 0o640, Mtime: mtime(), Uid: uid, Gid: gid}
			op = &fsmirror.Op{Kind: fsmirror.OpMknod, Path: p, Entry: e, Replace: exists}
		case k < 7 && len(files) > 0:
			op = &fsmirror.Op{Kind: fsmirror.OpLink, Path: p, From: pick(files), Replace: exists}
		case k < 8 && len(all) > 0:
			op = &fsmirror.Op{Kind: fsmirror.OpRename, Path: p, From: pick(all), Replace: exists}
		case k < 9 && len(all) > 0:
			op = &fsmirror.Op{Kind: fsmirror.OpDelete, Path: pick(all)}
		case k < 11:
			q := pick(append(all, ""))
			e, err := inner.Lstat(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			e.Mtime = mtime()
			switch e.Type {
			case fsmirror.TypeDir:
				e.Mode = pickOne(rng, dirModes)
			case fsmirror.TypeFile:
				e.Mode = pickOne(rng, fileModes)
			}
			op = &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: q, Entry: e}
		default: // ops that fail
			switch rng.IntN(3) {
			case 0:
				op = &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "nosuch/" + pick(names), Entry: fileEntry("", 0o600), Data: strings.NewReader("")}
			case 1:
				op = &fsmirror.Op{Kind: fsmirror.OpRename, Path: p, From: "nosuch"}
			default:
				op = &fsmirror.Op{Kind: fsmirror.OpLink, Path: p, From: "nosuch"}
			}
		}
		counts[op.Kind]++
		if os.Getenv("INDEX_DEBUG") != "" {
			t.Logf("op %d: %s %q from %q", i, op.Kind, op.Path, op.From)
		}
		err := tg.Apply(ctx, op)
		if err != nil {
			failed++
		}
		if diffs := diffIndex(t, tg, inner); len(diffs) > 0 {
			t.Fatalf("after op %d, %s %q from %q (error %v), the index differs from the destination:\n%s",
				i, op.Kind, op.Path, op.From, err, strings.Join(diffs, "\n"))
		}
	}
	t.Logf("ops %v, %d failed", counts, failed)
	if mixed {
		// A full compare makes every inode number the destination's.
		tg.SetTrusted(false)
		if _, err := walk(ctx, tg, ""); err != nil {
			t.Fatal(err)
		}
		tg.SetTrusted(true)
	}
	assertIndexMatches(t, tg, inner)

	// As the engine ends a sync: every directory's metadata, deepest first.
	dirs, _, all := listTree(t, inner)
	slices.Reverse(dirs)
	for _, d := range dirs {
		mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: d, Entry: dirEntry(0o755)})
	}
	assertIndexMatches(t, tg, inner)
	listings, err := walk(ctx, tg, "")
	if err != nil {
		t.Fatal(err)
	}
	for d, entries := range listings {
		for _, e := range entries {
			if e.Mtime == UnknownMtime {
				t.Errorf("%q: mtime still unknown after every directory's metadata was set", fsmirror.Join(d, e.Name))
			}
		}
	}
	if n, _ := x.Len(); n != len(all)+1 {
		t.Errorf("Len = %d, want %d paths and the root", n, len(all))
	}

	// What was committed is what was seen.
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x2, err := open(path, testSrc, testDst, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	if !x2.Trusted() {
		t.Fatal("not trusted after a clean close")
	}
	assertIndexMatches(t, x2.Wrap(inner, true), inner)
}

func pickOne[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// listTree returns the directories (the root "" first), the regular files and
// all the paths below the root of tg.
func listTree(t testing.TB, tg fsmirror.Target) (dirs, files, all []string) {
	t.Helper()
	listings, err := walk(context.Background(), tg, "")
	if err != nil {
		t.Fatal(err)
	}
	dirs = []string{""}
	for d, entries := range listings {
		for _, e := range entries {
			p := fsmirror.Join(d, e.Name)
			all = append(all, p)
			switch e.Type {
			case fsmirror.TypeDir:
				dirs = append(dirs, p)
			case fsmirror.TypeFile:
				files = append(files, p)
			}
		}
	}
	// Map order is random: sort, so that a seed is one sequence.
	slices.Sort(dirs)
	slices.Sort(files)
	slices.Sort(all)
	return dirs, files, all
}

// TestTarget_Concurrent applies ops from several goroutines while others
// list, as the engine's workers do, and checks the result.
func TestTarget_Concurrent(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.maxPending = 3 // writers wait for commits
	x, _ := openT(t, cfg)
	inner, _ := localT(t)
	tg := x.Wrap(inner, true)
	const workers, perWorker = 4, 60
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		d := fmt.Sprint("w", w)
		mustApply(t, tg, mkdirOp(d))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				p := fmt.Sprintf("%s/f%d", d, i%17)
				ops := []*fsmirror.Op{writeOp(p, fmt.Sprint(i))}
				switch i % 5 {
				case 3:
					ops = append(ops, &fsmirror.Op{Kind: fsmirror.OpRename, From: p, Path: p + ".moved", Replace: true})
				case 4:
					ops = append(ops, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: p})
				}
				for _, op := range ops {
					if err := tg.Apply(ctx, op); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for w := range workers {
					if _, err := tg.ReadDir(ctx, fmt.Sprint("w", w)); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := tg.Lstat(ctx, "w0/f1"); err != nil && !isNotExist(err) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	assertIndexMatches(t, tg, inner)
}

// randomSeeds is how many random op sequences TestTarget_RandomOps runs.
var randomSeeds = 6

// randomOpsN is the length of each sequence.
var randomOpsN = 300

// TestTarget_HardLinkMeta checks that setting the metadata of one name of
// an inode sets it for all its recorded names, also after a reopen and
// after the names were moved.
func TestTarget_HardLinkMeta(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	x, path := openT(t, cfg)
	inner, _ := localT(t)
	tg := x.Wrap(inner, true)
	mustApply(t, tg, mkdirOp("d"), writeOp("a", "shared"), writeOp("other", "x"),
		&fsmirror.Op{Kind: fsmirror.OpLink, From: "a", Path: "d/b"},
		&fsmirror.Op{Kind: fsmirror.OpLink, From: "d/b", Path: "c"})
	names := []string{"a", "d/b", "c"}
	setMeta := func(tg *Target, p string, mode uint32, mtime int64) {
		t.Helper()
		e := fileEntry("shared", mode)
		e.Mtime = mtime
		mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: p, Entry: e})
		for _, q := range names {
			got, err := tg.Lstat(ctx, q)
			if err != nil || got.Mode != mode || got.Mtime != mtime {
				t.Fatalf("after setmeta of %s: %s = %+v, %v", p, q, got, err)
			}
		}
		if got, _ := tg.Lstat(ctx, "other"); got.Mode == mode {
			t.Fatal("setmeta reached a file that is not linked")
		}
		assertIndexMatches(t, tg, inner)
	}
	setMeta(tg, "d/b", 0o600, testMtime+1)

	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x2, err := open(path, testSrc, testDst, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	tg = x2.Wrap(inner, true)
	setMeta(tg, "c", 0o640, testMtime+2)
	mustApply(t, tg, &fsmirror.Op{Kind: fsmirror.OpRename, From: "d", Path: "e"})
	names = []string{"a", "e/b", "c"}
	setMeta(tg, "a", 0o444, testMtime+3)
	// A new inode under one name: the others keep theirs.
	mustApply(t, tg, writeOp("a", "new content"))
	names = []string{"e/b", "c"}
	setMeta(tg, "c", 0o604, testMtime+4)
	if got, _ := tg.Lstat(ctx, "a"); got.Mode == 0o604 {
		t.Fatal("setmeta reached a name that is a new inode now")
	}

	// Links found by a full compare.
	tg.SetTrusted(false)
	if _, err := walk(ctx, tg, ""); err != nil {
		t.Fatal(err)
	}
	tg.SetTrusted(true)
	setMeta(tg, "e/b", 0o600, testMtime+5)
}

// TestTarget_LongKeys checks that a path too long to be a bbolt key is left
// unrecorded, with everything below it, and does not stop commits.
func TestTarget_LongKeys(t *testing.T) {
	ctx := context.Background()
	x, _ := openT(t, testConfig())
	tg := x.Wrap(nopTarget{}, true)
	comp := strings.Repeat("x", 250)
	var paths []string
	for p := comp; len(p) < bolt.MaxKeySize+1000; p = fsmirror.Join(p, comp) {
		mustApply(t, tg, mkdirOp(p), writeOp(p+"/f", "x"))
		paths = append(paths, p, p+"/f")
	}
	if err := x.flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	recorded := 0
	for _, p := range paths {
		_, err := tg.Lstat(ctx, p)
		fits := len(keyOf(p)) <= bolt.MaxKeySize
		switch {
		case fits && err == nil:
			recorded++
		case fits:
			t.Fatalf("Lstat of a %d-byte path: %v", len(p), err)
		case !isNotExist(err):
			t.Fatalf("Lstat of a %d-byte path, too long a key: %v", len(p), err)
		}
	}
	if recorded == 0 || recorded == len(paths) {
		t.Fatalf("%d of %d paths recorded", recorded, len(paths))
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestIndex_FlushFailureKeepsChanges checks that changes a commit could not
// write stay pending, visible, and are committed by the next flush.
func TestIndex_FlushFailureKeepsChanges(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.flushInterval, cfg.flushSize = time.Hour, 1<<30
	x, path := openT(t, cfg)
	tg := x.Wrap(nopTarget{}, true)
	mustApply(t, tg, mkdirOp("d"), writeOp("d/f", "x"))

	// A read-only handle on a copy makes the commit fail.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	real := x.db
	x.db = ro
	if err := x.flush(); err == nil {
		t.Fatal("flush into a read-only database succeeded")
	}
	x.db = real
	ro.Close()
	mustApply(t, tg, writeOp("d/g", "y"), &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "d/f"})
	entries, err := tg.ReadDir(ctx, "d")
	if err != nil || len(entries) != 1 || entries[0].Name != "g" {
		t.Fatalf("ReadDir(d) after a failed flush = %+v, %v", entries, err)
	}
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if x.pending.n != 0 {
		t.Fatalf("%d changes still pending", x.pending.n)
	}
	if n, _ := x.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

// TestTarget_CompareOfUnchangedTreeWritesNothing checks that a full compare
// that finds what is recorded changes nothing.
func TestTarget_CompareOfUnchangedTreeWritesNothing(t *testing.T) {
	ctx := context.Background()
	inner, dir := localT(t)
	testutil.NastyTree(t, dir)
	cfg := testConfig()
	cfg.flushInterval, cfg.flushSize = time.Hour, 1<<30
	x, _ := openT(t, cfg)
	tg := x.Wrap(inner, false)
	for range 2 {
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Lstat(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := walk(ctx, tg, ""); err != nil {
			t.Fatal(err)
		}
	}
	if x.pending.n != 0 {
		t.Fatalf("second compare of an unchanged tree recorded %d changes", x.pending.n)
	}
}
