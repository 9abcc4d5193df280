package benchutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestDirHas(t *testing.T) {
	dir := t.TempDir()
	want := map[string]int64{"a": 3, "b": 5}
	buf := make([]byte, 64) // small: several getdents calls
	if DirHas(dir, want, buf) {
		t.Fatal("empty directory has the files")
	}
	os.WriteFile(filepath.Join(dir, "a"), []byte("abc"), 0o644)
	if DirHas(dir, want, buf) {
		t.Fatal("a directory with one of two files has them")
	}
	os.WriteFile(filepath.Join(dir, ".b.XYZ"), []byte("hello"), 0o644) // rsync's temporary
	if DirHas(dir, want, buf) {
		t.Fatal("a temporary counts as a file")
	}
	os.Rename(filepath.Join(dir, ".b.XYZ"), filepath.Join(dir, "b"))
	if !DirHas(dir, want, buf) {
		t.Fatal("complete directory not recognised")
	}
	os.WriteFile(filepath.Join(dir, "b"), []byte("hell"), 0o644)
	if DirHas(dir, want, buf) {
		t.Fatal("a short file counts")
	}
	os.WriteFile(filepath.Join(dir, "b"), []byte("hello"), 0o644)
	os.WriteFile(filepath.Join(dir, "c"), nil, 0o644)
	if DirHas(dir, want, buf) {
		t.Fatal("an extra file counts")
	}
	for i := range 20 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("extra-%d", i)), nil, 0o644)
	}
	if n, err := countEntries(dir, buf); n != 23 || err != nil {
		t.Errorf("countEntries = %d, %v; want 23", n, err)
	}
	if DirHas(filepath.Join(dir, "missing"), want, buf) {
		t.Fatal("a missing directory has the files")
	}
}
