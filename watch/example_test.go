package watch_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsmirror/fsmirror/watch"
)

func Example() {
	root, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	w, err := watch.New(root, watch.Options{
		Exclude: func(rel string, isDir bool) bool { return strings.HasSuffix(rel, ".git") },
	})
	if err != nil {
		log.Fatal(err) // a *watch.LimitError says how to raise the limit
	}
	defer w.Close()
	// Every directory is watched: scanning the tree now misses nothing.

	os.Mkdir(filepath.Join(root, ".git"), 0o755)
	os.WriteFile(filepath.Join(root, ".git", "index"), []byte("excluded"), 0o644)
	os.Mkdir(filepath.Join(root, "docs"), 0o755)
	os.WriteFile(filepath.Join(root, "docs", "a.txt"), []byte("hello"), 0o644)
	os.Rename(filepath.Join(root, "docs"), filepath.Join(root, "doc"))

	for batch := range w.Events() {
		for _, e := range batch {
			if e.Kind != watch.Rescan && e.Kind != watch.Renamed {
				// docs/a.txt has its own events if it was written after
				// the watch on docs was added; the Rescan covers it anyway.
				continue
			}
			fmt.Println(e)
			if e.Kind == watch.Renamed {
				return
			}
		}
	}
	// Output:
	// rescan docs (dir)
	// renamed docs -> doc (dir)
}

// A tree of any size: fanotify where the process and the file system allow
// it, else inotify, which keeps going if it runs out of watches.
func Example_auto() {
	w, err := watch.New("/srv/www", watch.Options{
		Backend: watch.Auto,
		OnLimit: func(e *watch.LimitError) {
			if e == nil {
				log.Print("every directory is watched again")
				return
			}
			log.Printf("warning: %v", e) // how many watches the tree needs, what is rescanned
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if w.Backend() == watch.Inotify {
		log.Printf("watching %d directories with inotify (fanotify: %v)", w.Watches(), w.FanotifyError())
	}
	for batch := range w.Events() {
		for _, e := range batch {
			fmt.Println(e)
		}
	}
}
