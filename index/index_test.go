package index

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpen_NewIsNotTrusted(t *testing.T) {
	x, _ := openT(t, testConfig())
	if x.Trusted() || x.Recovered() != "" {
		t.Fatalf("new index: trusted %v, recovered %q", x.Trusted(), x.Recovered())
	}
	if n, err := x.Len(); n != 0 || err != nil {
		t.Fatalf("Len = %d, %v", n, err)
	}
}

func TestOpen_CleanCloseIsTrusted(t *testing.T) {
	x, path := openT(t, testConfig())
	mustApply(t, x.Wrap(nopTarget{}, true), mkdirOp("d"), writeOp("d/f", "x"))
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	x2, err := open(path, testSrc, testDst, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	if !x2.Trusted() || x2.Recovered() != "" {
		t.Fatalf("after a clean close: trusted %v, recovered %q", x2.Trusted(), x2.Recovered())
	}
	if n, _ := x2.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	// Synthetic inode numbers go on where they stopped.
	e, err := x2.lstat("d/f")
	if err != nil || e.Ino < firstIno {
		t.Fatalf("Lstat(d/f) = %+v, %v", e, err)
	}
	if x2.nextIno <= e.Ino {
		t.Fatalf("next inode number %d not above the recorded %d", x2.nextIno, e.Ino)
	}
	// Open marked it unclean on disk already.
	if clean := readClean(t, x2); clean {
		t.Fatal("open index is marked clean on disk")
	}
}

func readClean(t *testing.T, x *Index) bool {
	t.Helper()
	var clean bool
	x.db.View(func(tx *bolt.Tx) error {
		clean = string(tx.Bucket(metaBucket).Get(metaClean)) == "\x01"
		return nil
	})
	return clean
}

func TestOpen_UncleanIsNotTrusted(t *testing.T) {
	t.Run("copied while open", func(t *testing.T) {
		x, path := openT(t, testConfig())
		mustApply(t, x.Wrap(nopTarget{}, true), writeOp("f", "x"))
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		crashed := filepath.Join(t.TempDir(), "crashed.db")
		if err := os.WriteFile(crashed, data, 0o600); err != nil {
			t.Fatal(err)
		}
		x2, err := open(crashed, testSrc, testDst, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer x2.Close()
		if x2.Trusted() || x2.Recovered() != "" {
			t.Fatalf("copy of an open index: trusted %v, recovered %q", x2.Trusted(), x2.Recovered())
		}
		if n, _ := x2.Len(); n != 1 {
			t.Fatalf("Len = %d, want the 1 committed path", n)
		}
	})
	t.Run("never closed", func(t *testing.T) {
		x, path := openT(t, testConfig())
		mustApply(t, x.Wrap(nopTarget{}, true), writeOp("f", "x"))
		// As a kill -9 would leave it: the file closed by the kernel,
		// the last batch lost.
		close(x.quit)
		<-x.done
		x.closeOnce.Do(func() {})
		if err := x.db.Close(); err != nil {
			t.Fatal(err)
		}
		x2, err := open(path, testSrc, testDst, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer x2.Close()
		if x2.Trusted() {
			t.Fatal("index never closed is trusted")
		}
	})
	t.Run("close after a failed record", func(t *testing.T) {
		x, path := openT(t, testConfig())
		x.mu.Lock()
		x.broken = errors.New("test")
		x.mu.Unlock()
		if err := x.Close(); err == nil {
			t.Fatal("Close of a broken index succeeded")
		}
		x2, err := open(path, testSrc, testDst, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer x2.Close()
		if x2.Trusted() {
			t.Fatal("broken index is trusted")
		}
	})
}

func TestOpen_OtherMirror(t *testing.T) {
	x, path := openT(t, testConfig())
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"/other/src", testDst}, {testSrc, "/other/dst"}} {
		_, err := open(path, pair[0], pair[1], testConfig())
		if !errors.Is(err, ErrOtherMirror) {
			t.Fatalf("Open for %v: %v, want ErrOtherMirror", pair, err)
		}
		for _, s := range []string{testSrc, testDst, pair[0], pair[1], path} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
	}
	// The file was left alone.
	x2, err := open(path, testSrc, testDst, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	if !x2.Trusted() {
		t.Fatal("refusing another pair spoiled the index")
	}
}

func TestOpen_Corrupt(t *testing.T) {
	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	cases := []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string
	}{
		{"garbage", func(t *testing.T, path string) { os.WriteFile(path, garbage, 0o600) }, "invalid"},
		{"short garbage", func(t *testing.T, path string) { os.WriteFile(path, garbage[:100], 0o600) }, "invalid"},
		{"truncated", func(t *testing.T, path string) {
			closedIndex(t, path)
			os.Truncate(path, 3000)
		}, "unreadable"},
		{"other format version", func(t *testing.T, path string) {
			closedIndex(t, path)
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(metaBucket).Put(metaVersion, binary.LittleEndian.AppendUint32(nil, formatVersion+1))
			})
		}, "format version 2"},
		{"missing bucket", func(t *testing.T, path string) {
			closedIndex(t, path)
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket(entriesBucket) })
		}, "bucket"},
		{"another kind of database", func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("something else"))
				return err
			})
		}, "bucket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.db")
			c.make(t, path)
			x, err := open(path, testSrc, testDst, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			r := x.Recovered()
			if x.Trusted() || r == "" {
				t.Fatalf("trusted %v, recovered %q", x.Trusted(), r)
			}
			if !strings.Contains(r, c.reason) || !strings.Contains(r, path+".corrupt") {
				t.Errorf("Recovered() = %q, want it to name %q and the file set aside", r, c.reason)
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Errorf("corrupt file not set aside: %v", err)
			}
			if n, err := x.Len(); n != 0 || err != nil {
				t.Fatalf("Len = %d, %v", n, err)
			}
			// The fresh index works.
			mustApply(t, x.Wrap(nopTarget{}, true), writeOp("f", "x"))
			if n, _ := x.Len(); n != 1 {
				t.Fatalf("Len = %d after a write", n)
			}
		})
	}
}

// closedIndex creates a cleanly closed index at path holding a few paths.
func closedIndex(t *testing.T, path string) {
	t.Helper()
	x, err := open(path, testSrc, testDst, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, x.Wrap(nopTarget{}, true), mkdirOp("d"), writeOp("d/f", strings.Repeat("x", 100)))
	for i := range 200 {
		mustApply(t, x.Wrap(nopTarget{}, true), writeOp("d/"+strings.Repeat("n", 100)+string(rune('a'+i%26))+string(rune('a'+i/26)), "x"))
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

func boltUpdate(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_Locked(t *testing.T) {
	x, path := openT(t, testConfig())
	cfg := testConfig()
	cfg.lockTimeout = 50 * time.Millisecond
	start := time.Now()
	_, err := open(path, testSrc, testDst, cfg)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another fsmirror is using this state directory") {
		t.Errorf("error %q does not say who holds which file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
	// Untouched by the attempt.
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x2, err := open(path, testSrc, testDst, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	if !x2.Trusted() {
		t.Fatal("not trusted after the locked attempt and a clean close")
	}
}

func TestOpen_MissingDirectory(t *testing.T) {
	_, err := open(filepath.Join(t.TempDir(), "no", "such", "index.db"), testSrc, testDst, testConfig())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func TestIndex_UseAfterClose(t *testing.T) {
	x, _ := openT(t, testConfig())
	tg := x.Wrap(nopTarget{}, true)
	x.Close()
	if _, err := tg.ReadDir(context.Background(), ""); err == nil {
		t.Error("ReadDir after Close succeeded")
	}
	if err := tg.Apply(context.Background(), writeOp("f", "x")); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if _, err := x.Len(); err == nil {
		t.Error("Len after Close succeeded")
	}
}
