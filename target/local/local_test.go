package local_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/targettest"
	"github.com/fsmirror/fsmirror/target/local"
)

func TestTarget_Conformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) (fsmirror.Target, string) {
		dir := t.TempDir()
		tg, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.Close() })
		return tg, dir
	})
}

func TestNewBelow(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("Create", func(t *testing.T) {
		tg, err := local.NewBelow(root, "a/b", true)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		if err := tg.Apply(context.Background(), &fsmirror.Op{Kind: fsmirror.OpMkdir, Path: "d", Entry: fsmirror.Entry{Type: fsmirror.TypeDir, Mode: 0o755}}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(root, "a/b/d")); err != nil || !fi.IsDir() {
			t.Fatalf("mkdir below a/b: %v", err)
		}
		if fi, _ := os.Stat(filepath.Join(root, "a")); fi.Mode().Perm() != 0o700 {
			t.Errorf("a made with mode %v, want owner-only", fi.Mode())
		}
	})
	t.Run("Missing", func(t *testing.T) {
		if _, err := local.NewBelow(root, "nope", false); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("missing directory without create: %v, want ErrNotExist", err)
		}
	})
	for _, rel := range []string{"link", "link/x", "file", "file/x", "..", "a/../..", "/etc"} {
		t.Run("Refuses_"+strings.ReplaceAll(rel, "/", "|"), func(t *testing.T) {
			if tg, err := local.NewBelow(root, rel, true); err == nil {
				tg.Close()
				t.Fatalf("NewBelow(%q) opened a target", rel)
			}
			if names, _ := os.ReadDir(outside); len(names) != 0 {
				t.Fatalf("made %v outside the root", names)
			}
		})
	}
}

func TestTarget_FreeSpace(t *testing.T) {
	tg, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	bytes, files, err := tg.FreeSpace(context.Background())
	if err != nil || bytes == 0 || files == 0 {
		t.Fatalf("FreeSpace = %d bytes, %d inodes, %v", bytes, files, err)
	}
}
