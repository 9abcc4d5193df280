package index

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/fsmirror/fsmirror"
)

// The restart of a 50,000-file mirror: 2,500 directories of 20 files.
const (
	benchDirs    = 2500
	benchPerDir  = 20
	benchWorkers = 8 // the engine's default on 4 cores
)

func benchDir(i int) string { return fmt.Sprintf("d%02d/sub%04d", i%50, i) }

// recordTree records the mkdirs and writes of the benchmark tree through tg.
func recordTree(b *testing.B, tg fsmirror.Target) {
	ctx := context.Background()
	for i := range 50 {
		mustApply(b, tg, mkdirOp(fmt.Sprintf("d%02d", i)))
	}
	for i := range benchDirs {
		d := benchDir(i)
		mustApply(b, tg, mkdirOp(d))
		for j := range benchPerDir {
			e := fileEntry("", 0o644)
			e.Size = int64(1000 + j)
			if err := tg.Apply(ctx, &fsmirror.Op{Kind: fsmirror.OpWrite, Path: fmt.Sprintf("%s/file-%03d.html", d, j), Entry: e}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchIndex returns the path of a cleanly closed index of the benchmark tree.
func benchIndex(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "index.db")
	x, err := Open(path, testSrc, testDst)
	if err != nil {
		b.Fatal(err)
	}
	recordTree(b, x.Wrap(nopTarget{}, true))
	if err := x.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkTarget_ReadDirTrusted lists every directory of the tree from the
// index, one op being the whole tree, as a restart does.
func BenchmarkTarget_ReadDirTrusted(b *testing.B) {
	path := benchIndex(b)
	x, err := Open(path, testSrc, testDst)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	if !x.Trusted() {
		b.Fatal("not trusted")
	}
	tg := x.Wrap(nopTarget{}, true)
	ctx := context.Background()
	// The floor: bbolt alone, one read transaction and one cursor range
	// per directory, nothing decoded.
	b.Run("bolt-only", func(b *testing.B) {
		for b.Loop() {
			for i := range benchDirs {
				n := 0
				x.db.View(func(tx *bolt.Tx) error {
					prefix := []byte(childPrefix(benchDir(i)))
					c := tx.Bucket(entriesBucket).Cursor()
					for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
						n++
					}
					return nil
				})
				if n != benchPerDir {
					b.Fatalf("%d entries", n)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchDirs), "ns/dir")
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tree")
	})
	for _, workers := range []int{1, benchWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= benchDirs {
								return
							}
							entries, err := tg.ReadDir(ctx, benchDir(i))
							if err != nil || len(entries) != benchPerDir {
								b.Errorf("ReadDir = %d entries, %v", len(entries), err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			perDir := float64(b.Elapsed().Nanoseconds()) / float64(b.N*benchDirs)
			b.ReportMetric(perDir, "ns/dir")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tree")
		})
	}
}

// BenchmarkTarget_RecordWrites records the 50,000 writes (and 2,550
// mkdirs) of the tree into a new index, the final commit included.
func BenchmarkTarget_RecordWrites(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "index.db")
		x, err := Open(path, testSrc, testDst)
		if err != nil {
			b.Fatal(err)
		}
		tg := x.Wrap(nopTarget{}, true)
		b.StartTimer()
		recordTree(b, tg)
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchDirs*benchPerDir), "ns/write")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tree")
}

// BenchmarkTarget_RecordWritesParallel records the tree from benchWorkers
// goroutines, a directory each at a time, as the engine's workers do.
func BenchmarkTarget_RecordWritesParallel(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "index.db")
		x, err := Open(path, testSrc, testDst)
		if err != nil {
			b.Fatal(err)
		}
		tg := x.Wrap(nopTarget{}, true)
		for i := range 50 {
			mustApply(b, tg, mkdirOp(fmt.Sprintf("d%02d", i)))
		}
		b.StartTimer()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range benchWorkers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= benchDirs {
						return
					}
					d := benchDir(i)
					if err := tg.Apply(ctx, mkdirOp(d)); err != nil {
						b.Error(err)
						return
					}
					for j := range benchPerDir {
						e := fileEntry("", 0o644)
						op := &fsmirror.Op{Kind: fsmirror.OpWrite, Path: fmt.Sprintf("%s/file-%03d.html", d, j), Entry: e}
						if err := tg.Apply(ctx, op); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchDirs*benchPerDir), "ns/write")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tree")
}

// BenchmarkOpen opens the index of the tree and closes it again: the
// consistency check (or not), the scan for hard links, and two commits.
func BenchmarkOpen(b *testing.B) {
	path := benchIndex(b)
	for _, check := range []bool{true, false} {
		b.Run(fmt.Sprintf("check=%v", check), func(b *testing.B) {
			cfg := defaultConfig
			cfg.check = check
			for b.Loop() {
				x, err := open(path, testSrc, testDst, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := x.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTarget_RenameSubtree moves a directory of 10,000 entries.
func BenchmarkTarget_RenameSubtree(b *testing.B) {
	x, _ := openT(b, defaultConfig)
	tg := x.Wrap(nopTarget{}, true)
	mustApply(b, tg, mkdirOp("a"))
	for i := range 100 {
		d := fmt.Sprintf("a/%d", i)
		mustApply(b, tg, mkdirOp(d))
		for j := range 99 {
			mustApply(b, tg, writeOp(fmt.Sprintf("%s/%s%d", d, strings.Repeat("f", 20), j), ""))
		}
	}
	from, to := "a", "b"
	for b.Loop() {
		mustApply(b, tg, &fsmirror.Op{Kind: fsmirror.OpRename, From: from, Path: to})
		from, to = to, from
	}
}
