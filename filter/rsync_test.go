package filter

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestFilter_RsyncRules(t *testing.T) {
	for _, tt := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"*.o"}, []string{"- *.o"}},
		{[]string{"*.log", "!keep.log"}, []string{"+ keep.log", "- *.log"}},
		{[]string{"/build", "cache/"}, []string{"- cache/", "- /build"}},
		{[]string{"docs/*.md"}, []string{"- /docs/*.md"}},
		{[]string{"**/tmp"}, []string{"- tmp"}},
		{[]string{"**/a/b"}, []string{"- /a/b", "- /**/a/b"}},
		{[]string{"a/**/b/"}, []string{"- /a/b/", "- /a/**/b/"}},
		{[]string{"a/**"}, []string{"- /a/**"}},
		{[]string{"x**y"}, []string{"- x*y"}},
		{[]string{`\#lit`, `\!bang`, `a\ `}, []string{"- a ", "- !bang", "- #lit"}},
		{[]string{`back\\slash`}, []string{`- back\slash`}},                          // no wildcard: rsync takes it literally
		{[]string{`back\\slash*`, `st\*r*`}, []string{`- st\*r*`, `- back\\slash*`}}, // a wildcard: escapes count
		{[]string{"[!a-c]x", "[[:digit:]]"}, []string{"- [[:digit:]]", "- [!a-c]x"}},
		{[]string{"# comment", "", "   "}, nil},
		{[]string{"!nothing-excluded-yet"}, []string{"+ nothing-excluded-yet"}},
	} {
		f, err := New(tt.patterns)
		if err != nil {
			t.Fatalf("New(%q): %v", tt.patterns, err)
		}
		got, err := f.RsyncRules()
		if err != nil {
			t.Errorf("RsyncRules(%q): %v", tt.patterns, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("RsyncRules(%q) = %q, want %q", tt.patterns, got, tt.want)
		}
	}
	for _, bad := range []string{"[é]x", "a/**/b/**/c/**/d/**/e/**/f"} {
		f, err := New([]string{bad})
		if err != nil {
			t.Fatalf("New(%q): %v", bad, err)
		}
		if _, err := f.RsyncRules(); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("RsyncRules(%q): error %v, want one naming the pattern", bad, err)
		}
	}
	var nilFilter *Filter
	if r, err := nilFilter.RsyncRules(); r != nil || err != nil {
		t.Errorf("nil filter: %q, %v", r, err)
	}
}

// TestFilter_RsyncRulesAgainstRsync gives the translated rules to a real
// rsync that mirrors one tree into another with --delete, and requires it to
// leave out exactly what Excluded excludes and to delete none of it: rsync
// is the oracle of the translation.
func TestFilter_RsyncRulesAgainstRsync(t *testing.T) {
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("rsync is not installed: the translation to rsync rules is not checked against it")
	}
	names := []string{"a", "b", "ab", "ba", "aab", "bb", "*", "a*", "x", `a\b`, "a b", "[a]", "a?b", "#x", "!x", "a ", " a"}
	cases := [][]string{
		{"a", "!ab"}, {"*", "!a/", "!a/*"}, {"a/**/b"}, {"**/a/b"}, {"a/**"}, {"/a"}, {"a/"}, {"/a/", "!/a/b"},
		{`a\b`}, {`a\\b`}, {`a\\*`}, {"a b"}, {`\[a]`}, {"[a]"}, {`a\?b`}, {"a?b"}, {`\#x`}, {`\!x`},
		{`a\ `}, {"a "}, {" a"}, {"*b", "!bb"}, {"[!a]*"}, {"a*/"}, {"a/*/b"}, {"**/b/**"}, {"a**b"},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 60 {
		var pats []string
		for range 1 + rng.IntN(3) {
			p, _ := randomPattern(rng)
			if rng.IntN(4) == 0 {
				p = "!" + p
			}
			pats = append(pats, p)
		}
		cases = append(cases, pats)
	}
	for i, pats := range cases {
		// Each case has its own generator, so that the cases can run at
		// once: most of the time goes to starting rsync.
		rng := rand.New(rand.NewPCG(9, uint64(i)))
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			rsyncOracle(t, rsync, rng, names, pats)
		})
	}
}

// rsyncOracle builds a source and a destination tree from random paths of
// names, has rsync mirror one to the other with --delete and the rules of
// patterns, and compares what is left with what the filter says.
func rsyncOracle(t *testing.T, rsync string, rng *rand.Rand, names, pats []string) {
	f, err := New(pats)
	if err != nil {
		t.Fatalf("New(%q): %v", pats, err)
	}
	rules, err := f.RsyncRules()
	if err != nil {
		t.Fatalf("RsyncRules(%q): %v", pats, err)
	}
	dirs, files := randomUniverse(rng, names, 30)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	inSrc, inDst := map[string]bool{}, map[string]bool{}
	for _, root := range []string{src, dst} {
		for _, d := range append([]string{""}, dirs...) {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range files {
		k := rng.IntN(3) // 0: src only, 1: dst only, 2: both
		for _, side := range []struct {
			root string
			in   map[string]bool
			ok   bool
		}{{src, inSrc, k != 1}, {dst, inDst, k != 0}} {
			if side.ok {
				side.in[p] = true
				if err := os.WriteFile(filepath.Join(side.root, p), []byte(side.root), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	args := []string{"-r", "--delete"}
	for _, r := range rules {
		args = append(args, "--filter="+r)
	}
	cmd := exec.Command(rsync, append(args, src+"/", dst+"/")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%q: rsync %q: %v\n%s", pats, args, err, out)
	}
	var want []string
	for _, d := range dirs {
		want = append(want, d)
	}
	for _, p := range files {
		if f.Excluded(p, false) && inDst[p] || !f.Excluded(p, false) && inSrc[p] {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	got, err := listTree(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("patterns %q as rsync rules %q:\nrsync left  %q\nfilter says %q\nsource files %q", pats, rules, got, want, keys(inSrc))
	}
}

// randomUniverse returns directories and files built from random paths of
// the given names, with no path both a file and a directory.
func randomUniverse(rng *rand.Rand, names []string, n int) (dirs, files []string) {
	isDir, leaves := map[string]bool{}, map[string]bool{}
	for range n {
		parts := make([]string, 1+rng.IntN(3))
		for i := range parts {
			parts[i] = names[rng.IntN(len(names))]
		}
		for i := 1; i < len(parts); i++ {
			isDir[strings.Join(parts[:i], "/")] = true
		}
		leaves[strings.Join(parts, "/")] = true
	}
	for d := range isDir {
		dirs = append(dirs, d)
	}
	for p := range leaves {
		if !isDir[p] {
			files = append(files, p)
		}
	}
	slices.Sort(dirs)
	slices.Sort(files)
	return dirs, files
}

func listTree(root string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		paths = append(paths, rel)
		return nil
	})
	slices.Sort(paths)
	return paths, err
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
