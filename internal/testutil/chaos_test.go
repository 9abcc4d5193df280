package testutil

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// chaosTree describes what a tree made by Chaos holds.
type chaosTree struct {
	files, dirs, symlinks, hardLinks int
	depth                            int // of the deepest directory
	fileModes                        map[uint32]bool
	newline, badUTF8, space          bool
	temps                            []string // editor temporaries left behind
}

func describeTree(t *testing.T, root string) chaosTree {
	t.Helper()
	paths, err := ListTree(root)
	if err != nil {
		t.Fatal(err)
	}
	ct := chaosTree{fileModes: map[uint32]bool{}}
	for _, p := range paths {
		var sys unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &sys); err != nil {
			t.Fatal(err)
		}
		name := p[strings.LastIndexByte(p, '/')+1:]
		ct.newline = ct.newline || strings.Contains(name, "\n")
		ct.badUTF8 = ct.badUTF8 || !utf8.ValidString(name)
		ct.space = ct.space || strings.Contains(name, " ")
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".~") {
			ct.temps = append(ct.temps, p)
		}
		switch sys.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			ct.dirs++
			ct.depth = max(ct.depth, strings.Count(p, "/")+1)
			continue
		case unix.S_IFLNK:
			ct.symlinks++
		case unix.S_IFREG:
			ct.fileModes[sys.Mode&0o7777] = true
			if sys.Nlink > 1 {
				ct.hardLinks++
			}
		}
		ct.files++
	}
	return ct
}

func TestChaos_Bounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "tree"), filepath.Join(dir, "outside")
	Build(t, root, Dir(".", 0o755))
	Build(t, outside, Dir(".", 0o755))
	opt := ChaosOptions{Seed: 1, Ops: 15_000, MaxFiles: 300, MaxDepth: 3, Outside: outside, Chown: os.Geteuid() == 0}
	stats, err := Chaos(context.Background(), root, opt)
	if err != nil {
		t.Fatalf("Chaos: %v", err)
	}
	t.Logf("stats: %v", stats)
	var done, missed int64
	for op := range numChaosOps {
		done += stats.Done[op]
		missed += stats.Missed[op]
		if op == ChaosChown && !opt.Chown {
			continue
		}
		if stats.Done[op] == 0 {
			t.Errorf("no %s done", op)
		}
	}
	if done+missed != opt.Ops || done != stats.Total() {
		t.Errorf("%d done and %d missed, want %d in all", done, missed, opt.Ops)
	}
	ct := describeTree(t, root)
	t.Logf("tree: %+v", ct)
	// Races and moves in may pass the bound by a few.
	if ct.files > opt.MaxFiles+20 {
		t.Errorf("%d files, want at most about %d", ct.files, opt.MaxFiles)
	}
	if ct.dirs > opt.MaxFiles/8+10 {
		t.Errorf("%d directories, want at most about %d", ct.dirs, opt.MaxFiles/8)
	}
	if ct.depth > opt.MaxDepth {
		t.Errorf("directories %d deep, want at most %d", ct.depth, opt.MaxDepth)
	}
	if ct.files < 50 || ct.dirs < 3 || ct.symlinks == 0 || ct.hardLinks == 0 || len(ct.fileModes) < 3 {
		t.Errorf("tree not varied enough: %+v", ct)
	}
	if !ct.newline || !ct.badUTF8 || !ct.space {
		t.Errorf("no name with a newline, invalid UTF-8 or a space: %+v", ct)
	}
	if len(ct.temps) > 0 {
		t.Errorf("temporaries left: %q", ct.temps)
	}
}

// TestChaos_Replay checks that one worker replays the same tree from a
// seed, so that a failure can be replayed.
func TestChaos_Replay(t *testing.T) {
	t.Parallel()
	run := func() string {
		dir := t.TempDir()
		root, outside := filepath.Join(dir, "tree"), filepath.Join(dir, "outside")
		Build(t, root, Dir(".", 0o755))
		Build(t, outside, Dir(".", 0o755))
		_, err := Chaos(context.Background(), root, ChaosOptions{Workers: 1, Seed: 42, Ops: 3000, MaxFiles: 200, Outside: outside})
		if err != nil {
			t.Fatalf("Chaos: %v", err)
		}
		return root
	}
	a, b := run(), run()
	la, err := ListTree(a)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := ListTree(b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(la, "\x00") != strings.Join(lb, "\x00") {
		t.Fatalf("two runs with one worker and the same seed made different trees:\n%q\n%q", la, lb)
	}
	for _, p := range la {
		sa, err := os.Lstat(filepath.Join(a, p))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := os.Lstat(filepath.Join(b, p))
		if err != nil {
			t.Fatal(err)
		}
		if sa.Mode() != sb.Mode() || sa.Mode().IsRegular() && sa.Size() != sb.Size() {
			t.Errorf("%q: %v %d and %v %d", p, sa.Mode(), sa.Size(), sb.Mode(), sb.Size())
			continue
		}
		if sa.Mode().IsRegular() {
			ca, _ := os.ReadFile(filepath.Join(a, p))
			cb, _ := os.ReadFile(filepath.Join(b, p))
			if !bytes.Equal(ca, cb) {
				t.Errorf("%q: contents differ", p)
			}
		}
	}
}

func TestChaos_Context(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// Without an op limit, only the context stops it: cancel it once the
	// tree shows that work is under way (however slow the machine is).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		for range 3000 { // at most 30s
			if names, _ := os.ReadDir(root); len(names) > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stats, err := Chaos(ctx, root, ChaosOptions{Seed: 3})
	if err != nil {
		t.Fatalf("Chaos: %v", err)
	}
	if stats.Total() == 0 {
		t.Errorf("Chaos returned before it did anything: %v", stats)
	}
	if _, err := Chaos(context.Background(), filepath.Join(root, "nosuch"), ChaosOptions{Ops: 1}); err == nil {
		t.Errorf("Chaos on a missing root: no error")
	}
}
