package testutil_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

func ExampleDiff() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	mtime := time.Unix(1_700_000_000, 123_456_789)
	for _, root := range []string{src, dst} {
		os.Mkdir(root, 0o755)
		os.WriteFile(filepath.Join(root, "notes\n.txt"), []byte("same size"), 0o644)
		os.Chtimes(filepath.Join(root, "notes\n.txt"), mtime, mtime)
		os.Symlink("notes\n.txt", filepath.Join(root, "link"))
	}
	// A mirror that lost a byte's worth of change, and a mode.
	os.WriteFile(filepath.Join(dst, "notes\n.txt"), []byte("same SIZE"), 0o644)
	os.Chtimes(filepath.Join(dst, "notes\n.txt"), mtime, mtime)
	os.Chmod(filepath.Join(dst, "notes\n.txt"), 0o600)

	diffs, err := testutil.Diff(src, dst, testutil.DiffOptions{
		IgnoreRootMeta:     true, // the roots were made at different times
		IgnoreSymlinkMtime: true, // and so were the links
	})
	if err != nil {
		fmt.Println(err)
	}
	for _, d := range diffs {
		fmt.Println(d)
	}
	// Output:
	// "notes\n.txt": mode differs: src 0644, dst 0600
	// "notes\n.txt": content differs at byte 5
}
