// Package targettest is the conformance suite every fsmirror.Target passes:
// each op kind, replacing one node type by another, atomic writes, paths that
// try to leave the root, and paths longer than PATH_MAX.
package targettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// NewFunc returns a target for the empty directory it also returns, which
// the suite inspects directly to check what the target did.
type NewFunc func(t *testing.T) (fsmirror.Target, string)

// Run runs the suite.
func Run(t *testing.T, newTarget NewFunc) {
	ctx := context.Background()
	mtime := int64(1_600_000_000_123_456_789)
	file := func(mode uint32) fsmirror.Entry {
		return fsmirror.Entry{Type: fsmirror.TypeFile, Mode: mode, Mtime: mtime, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	}
	apply := func(t *testing.T, tg fsmirror.Target, op *fsmirror.Op) {
		t.Helper()
		if err := tg.Apply(ctx, op); err != nil {
			t.Fatalf("apply %s %q: %v", op.Kind, op.Path, err)
		}
	}
	write := func(t *testing.T, tg fsmirror.Target, path, content string, replace bool) {
		t.Helper()
		e := file(0o640)
		e.Size = int64(len(content))
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: path, Entry: e, Data: strings.NewReader(content), Replace: replace})
	}

	t.Run("WriteSetsContentAndMeta", func(t *testing.T) {
		tg, dir := newTarget(t)
		write(t, tg, "f", "hello", false)
		checkFile(t, dir, "f", "hello", 0o640, mtime)
		write(t, tg, "f", "hello, again", true)
		checkFile(t, dir, "f", "hello, again", 0o640, mtime)
		noTemps(t, dir)
	})
	t.Run("WriteFromFile", func(t *testing.T) {
		tg, dir := newTarget(t)
		src := filepath.Join(t.TempDir(), "src")
		data := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // more than one copy call
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		e := file(0o600)
		e.Size = int64(len(data))
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "big", Entry: e, Data: f})
		checkFile(t, dir, "big", string(data), 0o600, mtime)
	})
	t.Run("WriteReplacesDirectory", func(t *testing.T) {
		tg, dir := newTarget(t)
		mustMkdirAll(t, filepath.Join(dir, "x", "sub"))
		write(t, tg, "x", "now a file", true)
		checkFile(t, dir, "x", "now a file", 0o640, mtime)
	})
	t.Run("WriteIntoMissingDirectoryFails", func(t *testing.T) {
		tg, dir := newTarget(t)
		e := file(0o644)
		err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "no/such/f", Entry: e, Data: strings.NewReader("")})
		if err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
		noTemps(t, dir)
	})
	t.Run("MkdirAndSetMeta", func(t *testing.T) {
		tg, dir := newTarget(t)
		d := fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o750, Mtime: mtime, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: d})
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: d}) // idempotent
		write(t, tg, "d/f", "x", false)
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSetMeta, Path: "d", Entry: d})
		st := lstat(t, filepath.Join(dir, "d"))
		if st.Mode&0o7777 != 0o750 || st.Mtim.Nano() != mtime {
			t.Fatalf("dir mode %o mtime %d, want 750 %d", st.Mode&0o7777, st.Mtim.Nano(), mtime)
		}
	})
	t.Run("MkdirReplacesFile", func(t *testing.T) {
		tg, dir := newTarget(t)
		write(t, tg, "d", "file first", false)
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
		if st := lstat(t, filepath.Join(dir, "d")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Fatal("d is not a directory")
		}
	})
	t.Run("Symlink", func(t *testing.T) {
		tg, dir := newTarget(t)
		l := fsmirror.Entry{Type: fsmirror.TypeSymlink, Target: "../nowhere\nat all", Mtime: mtime, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: "l", Entry: l})
		l.Target = "/etc/passwd"
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: "l", Entry: l, Replace: true})
		got, err := os.Readlink(filepath.Join(dir, "l"))
		if err != nil || got != "/etc/passwd" {
			t.Fatalf("readlink = %q, %v", got, err)
		}
		if st := lstat(t, filepath.Join(dir, "l")); st.Mtim.Nano() != mtime {
			t.Fatalf("symlink mtime %d, want %d", st.Mtim.Nano(), mtime)
		}
		noTemps(t, dir)
	})
	t.Run("Link", func(t *testing.T) {
		tg, dir := newTarget(t)
		write(t, tg, "a", "shared", false)
		write(t, tg, "b", "other", false)
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpLink, Path: "b", From: "a", Replace: true})
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpLink, Path: "b", From: "a", Replace: true}) // already linked
		if lstat(t, filepath.Join(dir, "a")).Ino != lstat(t, filepath.Join(dir, "b")).Ino {
			t.Fatal("a and b are not one inode")
		}
		noTemps(t, dir)
	})
	t.Run("RenameDirectoryThenWriteInside", func(t *testing.T) {
		tg, dir := newTarget(t)
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "old", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
		write(t, tg, "old/f", "1", false) // the target now knows "old"
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpRename, Path: "new", From: "old"})
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "old", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
		write(t, tg, "old/g", "2", false)
		checkFile(t, dir, "new/f", "1", 0o640, mtime)
		checkFile(t, dir, "old/g", "2", 0o640, mtime)
		if _, err := os.Lstat(filepath.Join(dir, "new/g")); err == nil {
			t.Fatal("write to old/g landed in the renamed directory")
		}
	})
	t.Run("DeleteRecursive", func(t *testing.T) {
		tg, dir := newTarget(t)
		mustMkdirAll(t, filepath.Join(dir, "d/e/f"))
		if err := os.WriteFile(filepath.Join(dir, "d/e/f/x"), nil, 0o400); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "d/e"), 0o500); err != nil { // read-only directory
			t.Fatal(err)
		}
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "d"})
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: "d"}) // already gone
		if _, err := os.Lstat(filepath.Join(dir, "d")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("d still there: %v", err)
		}
	})
	t.Run("ReadDirAndLstat", func(t *testing.T) {
		tg, _ := newTarget(t)
		write(t, tg, "f", "abc", false)
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpSymlink, Path: "l", Entry: fsmirror.Entry{Type: fsmirror.TypeSymlink, Target: "f"}})
		entries, err := tg.ReadDir(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]fsmirror.Entry{}
		for _, e := range entries {
			got[e.Name] = e
		}
		if got["f"].Type != fsmirror.TypeFile || got["f"].Size != 3 || got["d"].Type != fsmirror.TypeDir ||
			got["l"].Type != fsmirror.TypeSymlink || got["l"].Target != "f" || len(got) != 3 {
			t.Fatalf("ReadDir = %+v", entries)
		}
		if _, err := tg.ReadDir(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("ReadDir(missing) error = %v, want not-exist", err)
		}
		if e, err := tg.Lstat(ctx, "l"); err != nil || e.Type != fsmirror.TypeSymlink {
			t.Fatalf("Lstat(l) = %+v, %v", e, err)
		}
	})
	t.Run("Hash", func(t *testing.T) {
		tg, _ := newTarget(t)
		h, ok := tg.(fsmirror.Hasher)
		if !ok {
			t.Skip("target does not hash files where they are")
		}
		write(t, tg, "f", "hash me", false)
		sum, err := h.Hash(ctx, "f")
		want := sha256.Sum256([]byte("hash me"))
		if err != nil || !bytes.Equal(sum, want[:]) {
			t.Fatalf("Hash = %x, %v", sum, err)
		}
	})
	t.Run("NeverLeavesTheRoot", func(t *testing.T) {
		tg, dir := newTarget(t)
		outside := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
			t.Fatal(err)
		}
		e := file(0o644)
		for _, p := range []string{"evil/x", "../x", "/x", "a/../../x", "a//b", "./x", "evil"} {
			op := &fsmirror.Op{Kind: fsmirror.OpWrite, Path: p, Entry: e, Data: strings.NewReader("x")}
			if p == "evil" {
				// Replacing the symlink itself is allowed; what matters is
				// that nothing is written through it.
				op.Replace = true
				apply(t, tg, op)
				continue
			}
			if err := tg.Apply(ctx, op); err == nil {
				t.Errorf("write %q succeeded", p)
			}
		}
		for _, p := range []string{"evil/d"} {
			if err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: p}); err == nil {
				t.Errorf("mkdir %q succeeded", p)
			}
		}
		if names, _ := os.ReadDir(outside); len(names) != 0 {
			t.Fatalf("written outside the root: %v", names)
		}
	})
	t.Run("DeeperThanPathMax", func(t *testing.T) {
		tg, dir := newTarget(t)
		comp := strings.Repeat("d", 200)
		path := ""
		for range 30 { // 6000 bytes
			path = fsmirror.Join(path, comp)
			apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: path, Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}})
		}
		write(t, tg, path+"/f", "deep", false)
		e, err := tg.Lstat(ctx, path+"/f")
		if err != nil || e.Size != 4 {
			t.Fatalf("Lstat deep file = %+v, %v", e, err)
		}
		apply(t, tg, &fsmirror.Op{Kind: fsmirror.OpDelete, Path: comp})
		if _, err := os.Lstat(filepath.Join(dir, comp)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("deep tree not deleted: %v", err)
		}
	})
}

func checkFile(t *testing.T, dir, rel, content string, mode uint32, mtime int64) {
	t.Helper()
	p := filepath.Join(dir, rel)
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Fatalf("%s: content %q, want %q", rel, got, content)
	}
	st := lstat(t, p)
	if st.Mode&0o7777 != mode || st.Mtim.Nano() != mtime {
		t.Fatalf("%s: mode %o mtime %d, want %o %d", rel, st.Mode&0o7777, st.Mtim.Nano(), mode, mtime)
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustMkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// noTemps fails if a temporary is left anywhere under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && fsmirror.IsTempName(d.Name()) {
			t.Errorf("temporary left behind: %s", p)
		}
		return nil
	})
}
