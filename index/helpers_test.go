package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/local"
)

const (
	testSrc = "/srv/src"
	testDst = "/srv/dst"
)

// testConfig flushes often and in small batches, so that tests run through
// commits while they apply ops.
func testConfig() config {
	c := defaultConfig
	c.lockTimeout = 100 * time.Millisecond
	c.flushInterval = time.Millisecond
	c.flushSize = 7
	return c
}

// openT opens an index in a new temporary directory and closes it at the end
// of the test.
func openT(t testing.TB, cfg config) (*Index, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := open(path, testSrc, testDst, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, path
}

// localT returns a local target on a new empty directory.
func localT(t testing.TB) (*local.Target, string) {
	t.Helper()
	dir := t.TempDir()
	tg, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg, dir
}

// nopTarget applies every op and holds nothing: the index alone is measured.
type nopTarget struct{}

func (nopTarget) ReadDir(context.Context, string) ([]fsmirror.Entry, error) { return nil, nil }
func (nopTarget) Lstat(_ context.Context, p string) (fsmirror.Entry, error) {
	return fsmirror.Entry{}, &fsmirror.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}
func (nopTarget) Apply(_ context.Context, op *fsmirror.Op) error {
	if op.Data != nil {
		io.Copy(io.Discard, op.Data)
	}
	return nil
}
func (nopTarget) Close() error { return nil }

// walk lists every directory of tg from dir down, as a full compare does,
// and returns the listings by directory.
func walk(ctx context.Context, tg fsmirror.Target, dir string) (map[string][]fsmirror.Entry, error) {
	out := map[string][]fsmirror.Entry{}
	var rec func(string) error
	rec = func(d string) error {
		entries, err := tg.ReadDir(ctx, d)
		if err != nil {
			return err
		}
		slices.SortFunc(entries, func(a, b fsmirror.Entry) int { return strings.Compare(a.Name, b.Name) })
		out[d] = entries
		for _, e := range entries {
			if e.Type == fsmirror.TypeDir {
				if err := rec(fsmirror.Join(d, e.Name)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, rec(dir)
}

// diffIndex compares what the trusted target tg says with what the
// destination real holds: every listing, the root's metadata, and which
// paths share an inode. A recorded UnknownMtime matches any mtime.
func diffIndex(t testing.TB, tg *Target, real fsmirror.Target) []string {
	t.Helper()
	ctx := context.Background()
	trusted := tg.trusted.Load()
	tg.SetTrusted(true)
	defer tg.SetTrusted(trusted)
	got, err := walk(ctx, tg, "")
	if err != nil {
		t.Fatalf("walk index: %v", err)
	}
	want, err := walk(ctx, real, "")
	if err != nil {
		t.Fatalf("walk destination: %v", err)
	}
	var diffs []string
	gotRoot, err := tg.Lstat(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantRoot, err := real.Lstat(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if gotRoot != implicitRoot() {
		diffs = append(diffs, diffEntry("", &gotRoot, &wantRoot)...)
	}
	idx2real, real2idx := map[uint64]uint64{}, map[uint64]uint64{}
	for dir, w := range want {
		g, ok := got[dir]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%q: directory not in the index", dir))
			continue
		}
		i, j := 0, 0
		for i < len(g) || j < len(w) {
			switch {
			case j == len(w) || i < len(g) && g[i].Name < w[j].Name:
				diffs = append(diffs, fmt.Sprintf("%q: in the index only", fsmirror.Join(dir, g[i].Name)))
				i++
			case i == len(g) || g[i].Name > w[j].Name:
				diffs = append(diffs, fmt.Sprintf("%q: missing from the index", fsmirror.Join(dir, w[j].Name)))
				j++
			default:
				p := fsmirror.Join(dir, w[j].Name)
				diffs = append(diffs, diffEntry(p, &g[i], &w[j])...)
				if r, ok := idx2real[g[i].Ino]; ok && r != w[j].Ino {
					diffs = append(diffs, fmt.Sprintf("%q: shares index inode %d with a path it is not linked to", p, g[i].Ino))
				}
				if x, ok := real2idx[w[j].Ino]; ok && x != g[i].Ino {
					diffs = append(diffs, fmt.Sprintf("%q: a hard link the index does not know", p))
				}
				idx2real[g[i].Ino], real2idx[w[j].Ino] = w[j].Ino, g[i].Ino
				i++
				j++
			}
		}
	}
	for dir := range got {
		if _, ok := want[dir]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: directory in the index only", dir))
		}
	}
	slices.Sort(diffs)
	return diffs
}

func diffEntry(p string, g, w *fsmirror.Entry) []string {
	var d []string
	add := func(what string, gv, wv any) {
		d = append(d, fmt.Sprintf("%q: %s %v in the index, %v in the destination", p, what, gv, wv))
	}
	if g.Type != w.Type {
		add("type", g.Type, w.Type)
		return d
	}
	// An unknown mtime makes the metadata of anything but a directory
	// unknown: a node the index lost track of.
	metaKnown := g.Mtime != UnknownMtime || g.Type == fsmirror.TypeDir
	if metaKnown && g.Mode != w.Mode&0o7777 {
		add("mode", fmt.Sprintf("%o", g.Mode), fmt.Sprintf("%o", w.Mode))
	}
	if g.Mtime != UnknownMtime && g.Mtime != w.Mtime {
		add("mtime", g.Mtime, w.Mtime)
	}
	if metaKnown && (g.Uid != w.Uid || g.Gid != w.Gid) {
		add("owner", fmt.Sprint(g.Uid, ":", g.Gid), fmt.Sprint(w.Uid, ":", w.Gid))
	}
	switch g.Type {
	case fsmirror.TypeFile, fsmirror.TypeSymlink:
		if g.Size != w.Size {
			add("size", g.Size, w.Size)
		}
	}
	if g.Target != w.Target {
		add("target", fmt.Sprintf("%q", g.Target), fmt.Sprintf("%q", w.Target))
	}
	if g.Rdev != w.Rdev {
		add("rdev", g.Rdev, w.Rdev)
	}
	return d
}

func assertIndexMatches(t testing.TB, tg *Target, real fsmirror.Target) {
	t.Helper()
	if diffs := diffIndex(t, tg, real); len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], "...")
		}
		t.Fatalf("index differs from the destination:\n%s", strings.Join(diffs, "\n"))
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
