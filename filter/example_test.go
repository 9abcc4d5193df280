package filter_test

import (
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"testing/fstest"

	"github.com/fsmirror/fsmirror/filter"
)

func Example() {
	f, err := filter.New([]string{
		"*.log",     // any .log file, at any depth
		"!keep.log", // except keep.log
		"/build/",   // the directory build at the root
		"docs/**/*.tmp",
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []struct {
		path  string
		isDir bool
	}{
		{"debug.log", false},
		{"src/app/debug.log", false},
		{"src/keep.log", false},
		{"build", true},
		{"build/keep.log", false}, // below an excluded directory
		{"src/build", true},
		{"docs/a/b/draft.tmp", false},
	} {
		fmt.Println(p.path, f.Excluded(p.path, p.isDir))
	}
	// Output:
	// debug.log true
	// src/app/debug.log true
	// src/keep.log false
	// build true
	// build/keep.log true
	// src/build false
	// docs/a/b/draft.tmp true
}

// A walker asks ExcludedName about each entry and does not enter excluded
// directories, so nothing below them is ever asked about.
func ExampleFilter_ExcludedName() {
	tree := fstest.MapFS{
		"main.go":                   {},
		"app.log":                   {},
		"node_modules/lib/index.js": {},
		"web/node_modules/x.js":     {},
		"web/index.html":            {},
	}
	f, err := filter.New([]string{"*.log", "node_modules/"})
	if err != nil {
		log.Fatal(err)
	}
	err = fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		dir := path.Dir(p)
		if dir == "." {
			dir = "" // filter paths name the root ""
		}
		if f.ExcludedName(dir, d.Name(), d.IsDir()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fmt.Println(p)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// main.go
	// web
	// web/index.html
}

func ExampleReadPatterns() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "exclude")
	content := "# editor files\r\n*.swp\r\n\r\n\\#notes\r\ncache/   \r\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		log.Fatal(err)
	}

	patterns, err := filter.ReadPatterns(file)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", patterns)
	f, err := filter.New(patterns)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Excluded("#notes", false), f.Excluded("a/cache", true), f.Excluded("a/cache", false))
	// Output:
	// ["*.swp" "\\#notes" "cache/"]
	// true true false
}
