package index_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/index"
	"github.com/fsmirror/fsmirror/target/local"
)

// A mirror keeps one index per destination. The first run (or a run after a
// crash) compares with the destination itself and records what it finds;
// after a clean close, the next run compares with the index alone.
func Example() {
	state, _ := os.MkdirTemp("", "state")
	defer os.RemoveAll(state)
	dst, _ := os.MkdirTemp("", "dst")
	defer os.RemoveAll(dst)
	ctx := context.Background()

	for run := 1; run <= 2; run++ {
		x, err := index.Open(filepath.Join(state, "dst.index"), "/srv/www", dst)
		if err != nil {
			log.Fatal(err)
		}
		if r := x.Recovered(); r != "" {
			log.Print(r)
		}
		inner, err := local.New(dst)
		if err != nil {
			log.Fatal(err)
		}
		tg := x.Wrap(inner, x.Trusted())
		fmt.Printf("run %d: trusted %v\n", run, x.Trusted())

		// What a sync does: list, then apply what differs.
		entries, err := tg.ReadDir(ctx, "")
		if err != nil {
			log.Fatal(err)
		}
		if len(entries) == 0 {
			e := fsmirror.Entry{Type: fsmirror.TypeFile, Mode: 0o644, Size: 2, Mtime: 1_700_000_000_000_000_000}
			if err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: "index.html", Entry: e, Data: strings.NewReader("hi")}); err != nil {
				log.Fatal(err)
			}
		}
		for _, e := range entries {
			fmt.Printf("run %d: %s %s, %d bytes\n", run, e.Type, e.Name, e.Size)
		}
		tg.Close()
		if err := x.Close(); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// run 1: trusted false
	// run 2: trusted true
	// run 2: file index.html, 2 bytes
}
