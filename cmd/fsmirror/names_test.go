package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// needsQuoting reports whether a path cannot be shown as it is on one
// unambiguous line: it holds a control character or invalid UTF-8, or
// starts or ends with a space.
func needsQuoting(p string) bool {
	if !utf8.ValidString(p) || strings.HasPrefix(p, " ") || strings.HasSuffix(p, " ") {
		return true
	}
	return controlChars(p) != "" || strings.ContainsRune(p, '\n')
}

// verboseLines parses the lines sync -v prints for ops of one kind ("write",
// "mkdir", "delete") into the paths they name, unquoting quoted ones. It
// fails the test on a line it cannot read back.
func verboseLines(t *testing.T, stdout, kind string) map[string]string {
	t.Helper()
	paths := map[string]string{} // path -> the line naming it
	for _, line := range lines(stdout) {
		rest, ok := strings.CutPrefix(line, kind+" ")
		if !ok {
			continue
		}
		rest = strings.TrimLeft(rest, " ")
		if kind == "mkdir" || kind == "delete" {
			rest = strings.TrimSuffix(rest, "/")
		}
		p := rest
		if strings.HasPrefix(rest, `"`) {
			var err error
			if p, err = strconv.Unquote(rest); err != nil {
				t.Errorf("line %q: cannot unquote the path: %v", line, err)
				continue
			}
		}
		paths[p] = line
	}
	return paths
}

func TestSync_NastyNames(t *testing.T) {
	t.Parallel()
	src, dst := srcDst(t)
	testutil.NastyTree(t, src)
	// The same names at the top, where a leading space starts the path.
	var nodes []testutil.Node
	for _, n := range testutil.NastyNames() {
		nodes = append(nodes, testutil.File(n, n, 0o640).Mtime(t0))
	}
	testutil.Build(t, src, nodes...)

	r := mustRun(t, 0, "sync", "-v", src, dst)
	testutil.AssertMirror(t, src, dst, diffOpt())
	if r := mustRun(t, 0, "verify", "--checksum", src, dst); r.stdout != "" {
		t.Errorf("verify lists differences:\n%s", r.stdout)
	}

	t.Run("-v shows each name on one line", func(t *testing.T) {
		if c := controlChars(r.stdout); c != "" {
			t.Errorf("-v output holds control characters %q", c)
		}
		if !utf8.ValidString(r.stdout) {
			t.Errorf("-v output is not valid UTF-8")
		}
		writes, mkdirs := verboseLines(t, r.stdout, "write"), verboseLines(t, r.stdout, "mkdir")
		for _, n := range testutil.NastyNames() {
			for _, want := range []struct {
				path string
				seen map[string]string
			}{{n, writes}, {"files/" + n, writes}, {"dirs/" + n + "/" + n, writes}, {"dirs/" + n, mkdirs}} {
				line, ok := want.seen[want.path]
				switch {
				case !ok:
					t.Errorf("-v output has no line for %q", want.path)
				case needsQuoting(want.path) && !strings.Contains(line, strconv.Quote(want.path)):
					t.Errorf("-v line %q does not quote %q", line, want.path)
				}
			}
		}
		if got, want := len(lines(r.stdout)), 4*len(testutil.NastyNames())+len(testutil.NastyNames())+3+1; got != want {
			t.Errorf("-v printed %d lines, want %d (one per change)", got, want)
		}
	})

	t.Run("second run", func(t *testing.T) {
		if r := mustRun(t, 0, "sync", "-v", src, dst); r.stdout != "" {
			t.Errorf("second sync -v lists changes:\n%s", r.stdout)
		}
	})

	t.Run("deletes", func(t *testing.T) {
		for _, n := range testutil.NastyNames() {
			if err := os.Remove(filepath.Join(src, n)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(filepath.Join(src, "dirs")); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, 0, "sync", "-v", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		deletes := verboseLines(t, r.stdout, "delete")
		for _, n := range testutil.NastyNames() {
			line, ok := deletes[n]
			switch {
			case !ok:
				t.Errorf("-v output has no delete line for %q:\n%s", n, r.stdout)
			case needsQuoting(n) && !strings.Contains(line, strconv.Quote(n)):
				t.Errorf("-v line %q does not quote %q", line, n)
			}
		}
		if c := controlChars(r.stdout); c != "" {
			t.Errorf("-v output holds control characters %q", c)
		}
	})
}

func TestSync_DeepTree(t *testing.T) {
	t.Parallel()
	src, dst := srcDst(t)
	bottom := testutil.DeepTree(t, src)
	if len(bottom) <= 4096 {
		t.Fatalf("the deep tree is only %d bytes deep", len(bottom))
	}
	// An extra deep tree in the destination, to be deleted.
	testutil.DeepTree(t, filepath.Join(dst, "extra"))

	r := mustRun(t, 0, "sync", "-v", src, dst)
	testutil.AssertMirror(t, src, dst, diffOpt())
	if !hasLine(r.stdout, "write   "+bottom) {
		t.Errorf("-v output lacks the write of the bottom file on one line:\n%s", r.stdout)
	}
	if !hasLine(r.stdout, "delete  extra/") {
		t.Errorf("-v output lacks the delete of extra/:\n%s", r.stdout)
	}
	if r := mustRun(t, 0, "verify", "--checksum", src, dst); r.stdout != "" {
		t.Errorf("verify lists differences:\n%s", r.stdout)
	}

	t.Run("changed at the bottom", func(t *testing.T) {
		testutil.Build(t, src, testutil.File(bottom, "changed at the bottom\n", 0o600).Mtime(t0))
		r := mustRun(t, 1, "verify", src, dst)
		if !strings.HasPrefix(r.stdout, bottom+": ") || len(lines(r.stdout)) != 1 {
			t.Errorf("verify does not list the bottom file, alone:\n%s", r.stdout)
		}
		mustRun(t, 0, "sync", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		if r := mustRun(t, 0, "sync", "-v", src, dst); r.stdout != "" {
			t.Errorf("third sync -v lists changes:\n%s", r.stdout)
		}
	})
}
