package filter

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// excludeCase is one question to a filter and its answer.
type excludeCase struct {
	path  string
	isDir bool
	want  bool
	// gitDiffers marks the cases where fsmirror deliberately answers
	// otherwise than git (see the package doc); the git test skips them.
	gitDiffers bool
}

// excludeGroups are the rules of the package doc, each as patterns and the
// questions that show them. TestFilter_ExcludedAgainstGit asks git the same.
var excludeGroups = []struct {
	name     string
	patterns []string
	cases    []excludeCase
	noGit    string // why the patterns cannot be given to git, if they cannot
}{
	{
		name:     "name at any depth",
		patterns: []string{"*.log", "node_modules"},
		cases: []excludeCase{
			{path: "a.log", want: true},
			{path: "x/y/a.log", want: true},
			{path: "a.log", isDir: true, want: true},
			{path: ".log", want: true},
			{path: "a.logx", want: false},
			{path: "log", want: false},
			{path: "node_modules", isDir: true, want: true},
			{path: "a/b/node_modules", isDir: true, want: true},
			{path: "node_modules", want: true},
			{path: "node_modules2", isDir: true, want: false},
			{path: "a/node_modules_x/y", want: false},
		},
	},
	{
		name:     "anchored",
		patterns: []string{"/build", "docs/*.md", "src/gen/"},
		cases: []excludeCase{
			{path: "build", isDir: true, want: true},
			{path: "build", want: true},
			{path: "src/build", isDir: true, want: false},
			{path: "docs/a.md", want: true},
			{path: "docs/.md", want: true},
			{path: "docs", isDir: true, want: false},
			{path: "docs/x/a.md", want: false},
			{path: "src/docs/a.md", want: false},
			{path: "src/gen", isDir: true, want: true},
			{path: "x/src/gen", isDir: true, want: false},
		},
	},
	{
		name:     "directories only",
		patterns: []string{"cache/", "/out/"},
		cases: []excludeCase{
			{path: "cache", isDir: true, want: true},
			{path: "cache", want: false},
			{path: "a/b/cache", isDir: true, want: true},
			{path: "a/b/cache", want: false},
			{path: "out", isDir: true, want: true},
			{path: "out", want: false},
			{path: "a/out", isDir: true, want: false},
		},
	},
	{
		name:     "wildcards",
		patterns: []string{"a?c", "[a-c]x", "[!a]y", "[^b]z", "[[:digit:]]d", "[]-]e", "*q*", "k/a*b", "k/a?b"},
		cases: []excludeCase{
			{path: "abc", want: true},
			{path: "deep/abc", want: true},
			{path: "ac", want: false},
			{path: "abbc", want: false},
			{path: "bx", want: true},
			{path: "dx", want: false},
			{path: "ay", want: false},
			{path: "by", want: true},
			{path: "bz", want: false},
			{path: "cz", want: true},
			{path: "7d", want: true},
			{path: "xd", want: false},
			{path: "]e", want: true},
			{path: "-e", want: true},
			{path: "qq", want: true},
			{path: "aqb", want: true},
			{path: "k/ab", want: true},
			{path: "k/axxb", want: true},
			{path: "k/a/b", want: false},
			{path: "k/a/xb", want: false},
		},
	},
	{
		name:     "double star",
		patterns: []string{"**/logs", "a/**/b", "c/**", "**/d/e", "f/**/g/h", "x**y"},
		cases: []excludeCase{
			{path: "logs", isDir: true, want: true},
			{path: "p/q/logs", isDir: true, want: true},
			{path: "a/b", want: true},
			{path: "a/p/b", want: true},
			{path: "a/p/q/b", want: true},
			{path: "a/pb", want: false},
			{path: "z/a/b", want: false},
			{path: "c", isDir: true, want: false},
			{path: "c/p", want: true},
			{path: "c/p/q", want: true},
			{path: "d/e", want: true},
			{path: "p/d/e", want: true},
			{path: "p/d/e/q", want: true},
			{path: "p/d", isDir: true, want: false},
			{path: "f/g/p/g/h", want: true},
			{path: "f/g/h", want: true},
			{path: "f/g/p", want: false},
			{path: "xpqy", want: true},
			{path: "xp/qy", want: false},
		},
	},
	{
		name:     "negation",
		patterns: []string{"*.log", "!keep.log", "build/", "!build/keep", "tmp/**", "!tmp/keep"},
		cases: []excludeCase{
			{path: "a.log", want: true},
			{path: "keep.log", want: false},
			{path: "p/keep.log", want: false},
			{path: "build", isDir: true, want: true},
			{path: "build/keep", want: true},
			{path: "tmp", isDir: true, want: false},
			{path: "tmp/p", want: true},
			{path: "tmp/keep", want: false},
			{path: "tmp/keep/p", want: true},
		},
	},
	{
		name:     "last match wins",
		patterns: []string{"!a", "a", "b", "!b"},
		cases: []excludeCase{
			{path: "a", want: true},
			{path: "b", want: false},
		},
	},
	{
		name:     "ancestors",
		patterns: []string{"secret/", "!secret/ok", "!ok", "/top/*", "!/top/mid"},
		cases: []excludeCase{
			{path: "secret", isDir: true, want: true},
			{path: "secret/ok", want: true},
			{path: "p/secret/q/ok", want: true},
			{path: "top/mid", isDir: true, want: false},
			{path: "top/mid/x", want: false},
			{path: "top/other/x", want: true},
			{path: "", isDir: true, want: false},
		},
	},
	{
		name:     "escapes and spaces",
		patterns: []string{`\#hash`, `\!bang`, `trail\ `, "untrimmed   ", "sp ace", `lit\*`, `q\?`},
		cases: []excludeCase{
			{path: "#hash", want: true},
			{path: "!bang", want: true},
			{path: "trail ", want: true},
			{path: "trail", want: false},
			{path: "untrimmed", want: true},
			{path: "untrimmed ", want: false},
			{path: "sp ace", want: true},
			{path: "lit*", want: true},
			{path: "litx", want: false},
			{path: "q?", want: true},
			{path: "qx", want: false},
		},
	},
	{
		name:     "weird bytes",
		patterns: []string{"*.log", "?x", "??y", "[é]z", "caf?", "\xff*", "a\xc3*", "[\x80-\xfe]w"},
		cases: []excludeCase{
			{path: "a\nb.log", want: true},
			{path: "dir\nname/a.log", want: true},
			{path: "x\r.log", want: true},
			{path: "\xffx", want: true},
			{path: "éx", want: true, gitDiffers: true},
			{path: "\xfe\xfdx", want: false},
			{path: "\xff\xfey", want: true},
			{path: "éy", want: false, gitDiffers: true},
			{path: "éz", want: true, gitDiffers: true},
			{path: "\xc3z", want: false, gitDiffers: true},
			{path: "café", want: true, gitDiffers: true},
			{path: "caf\xff", want: true},
			{path: "\xffabc", want: true},
			{path: "éabc", want: false},
			{path: "a\xc3x", want: true},
			{path: "aé", want: false, gitDiffers: true},
			{path: "\x80w", want: true},
			{path: "éw", want: false},
			{path: "\xc3w", want: true},
		},
	},
	{
		name:     "newline in pattern",
		patterns: []string{"a\nb", "*\n"},
		noGit:    "a pattern file cannot hold a newline",
		cases: []excludeCase{
			{path: "a\nb", want: true},
			{path: "x\n", want: true},
			{path: "ab", want: false},
		},
	},
}

func TestFilter_Excluded(t *testing.T) {
	for _, g := range excludeGroups {
		t.Run(g.name, func(t *testing.T) {
			f, err := New(g.patterns)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range g.cases {
				if got := f.Excluded(c.path, c.isDir); got != c.want {
					t.Errorf("Excluded(%q, isDir=%v) = %v, want %v (patterns %q)", c.path, c.isDir, got, c.want, g.patterns)
				}
			}
		})
	}
	t.Run("nil filter", func(t *testing.T) {
		var f *Filter
		if f.Excluded("a", false) || f.Excluded("a/b", true) {
			t.Error("nil filter excluded a path")
		}
	})
	t.Run("zero filter", func(t *testing.T) {
		var f Filter
		if f.Excluded("a", false) {
			t.Error("zero filter excluded a path")
		}
	})
	t.Run("root is never excluded", func(t *testing.T) {
		f, err := New([]string{"*", "/**"})
		if err != nil {
			t.Fatal(err)
		}
		if f.Excluded("", true) {
			t.Error(`Excluded("") = true`)
		}
	})
}

// walk asks f about every path of tree the way a walker does: ExcludedName
// for each entry of a directory it entered, never entering an excluded
// directory. It returns the paths it did not exclude and those it did not
// visit.
func walk(f *Filter, tree []excludeCase) (kept, unvisited []string) {
	dirs := map[string][]excludeCase{}
	for _, c := range tree {
		dir, _ := split(c.path)
		dirs[dir] = append(dirs[dir], c)
	}
	seen := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		for _, c := range dirs[dir] {
			seen[c.path] = true
			_, name := split(c.path)
			if f.ExcludedName(dir, name, c.isDir) {
				continue
			}
			kept = append(kept, c.path)
			if c.isDir {
				visit(c.path)
			}
		}
	}
	visit("")
	for _, c := range tree {
		if !seen[c.path] {
			unvisited = append(unvisited, c.path)
		}
	}
	return kept, unvisited
}

func split(path string) (dir, name string) {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

func TestFilter_ExcludedName(t *testing.T) {
	t.Run("walker agrees with Excluded", func(t *testing.T) {
		f, err := New([]string{"*.log", "!keep.log", "build/", "!build/keep", "tmp/**", "!tmp/keep", "/top/*", "!/top/mid", "**/d/e"})
		if err != nil {
			t.Fatal(err)
		}
		var tree []excludeCase
		for _, d := range []string{"p", "p/d", "p/d/e", "p/q", "build", "tmp", "tmp/keep", "top", "top/mid", "top/other"} {
			tree = append(tree, excludeCase{path: d, isDir: true})
		}
		for _, d := range []string{"", "p/", "p/d/", "p/d/e/", "p/q/", "build/", "tmp/", "tmp/keep/", "top/", "top/mid/", "top/other/"} {
			for _, name := range []string{"keep", "x", "e", "a.log", "keep.log"} {
				if !slices.ContainsFunc(tree, func(c excludeCase) bool { return c.path == d+name }) {
					tree = append(tree, excludeCase{path: d + name})
				}
			}
		}
		kept, unvisited := walk(f, tree)
		for _, c := range tree {
			want := !slices.Contains(kept, c.path)
			if got := f.Excluded(c.path, c.isDir); got != want {
				t.Errorf("Excluded(%q, %v) = %v, but the walker says %v", c.path, c.isDir, got, want)
			}
		}
		for _, p := range unvisited {
			if !f.Excluded(p, false) {
				t.Errorf("%q is below an excluded directory but not excluded", p)
			}
		}
		if len(kept) == 0 || len(unvisited) == 0 {
			t.Fatalf("tree does not exercise the walk: kept %q, unvisited %q", kept, unvisited)
		}
	})
	t.Run("matches the last name only", func(t *testing.T) {
		f, err := New([]string{"secret/", "!secret/ok"})
		if err != nil {
			t.Fatal(err)
		}
		// The caller promises that "secret" is not excluded; the answer
		// is then that of the patterns alone.
		if f.ExcludedName("secret", "ok", false) {
			t.Error(`ExcludedName("secret", "ok") = true, want false`)
		}
		if !f.ExcludedName("", "secret", true) {
			t.Error(`ExcludedName("", "secret", dir) = false, want true`)
		}
	})
	t.Run("nil filter", func(t *testing.T) {
		var f *Filter
		if f.ExcludedName("", "a", false) {
			t.Error("nil filter excluded a path")
		}
	})
	t.Run("does not allocate", func(t *testing.T) {
		f, err := New(benchPatterns)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			for _, e := range benchEntries {
				f.ExcludedName(e.dir, e.name, e.isDir)
			}
		})
		if allocs != 0 {
			t.Errorf("ExcludedName allocates %v times per walk", allocs)
		}
	})
}

func TestNew(t *testing.T) {
	t.Run("malformed", func(t *testing.T) {
		for _, c := range []struct{ pattern, reason string }{
			{"a[", "unclosed '['"},
			{"[a-", "unclosed '['"},
			{`[a\`, "unclosed '['"},
			{"[!]", "unclosed '['"},
			{"x/[a/b", "unclosed '['"},
			{"[z-a]", "invalid range z-a"},
			{"[[:nope:]]", "unknown character class [:nope:]"},
			{`a\`, "trailing backslash"},
			{"!", "empty pattern"},
			{"/", "empty pattern"},
			{"!/", "empty pattern"},
			{"a//b", "empty path component"},
			{"a\x00b", "NUL byte"},
		} {
			t.Run(c.pattern, func(t *testing.T) {
				f, err := New([]string{"ok", c.pattern})
				if err == nil {
					t.Fatalf("New(%q) = %v, want an error", c.pattern, f.rules)
				}
				if !errors.Is(err, ErrBadPattern) {
					t.Errorf("error %q does not wrap ErrBadPattern", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, strconv.Quote(c.pattern)) || !strings.Contains(msg, c.reason) {
					t.Errorf("error %q does not name pattern %q and reason %q", msg, c.pattern, c.reason)
				}
			})
		}
	})
	t.Run("well formed oddities", func(t *testing.T) {
		for _, p := range []string{"a]", "[[]", "[a-]", "[!-a]", "[]]", "[[:alpha:][:digit:]_]", "[[:x]", `a\ `, "**", "**/**", "a/**/**/b", "[/]"} {
			if _, err := New([]string{p}); err != nil {
				t.Errorf("New(%q): %v", p, err)
			}
		}
	})
	t.Run("ignored lines", func(t *testing.T) {
		f, err := New([]string{"", "#comment", "   ", "# also"})
		if err != nil {
			t.Fatal(err)
		}
		if !f.Empty() || f.Excluded("#comment", false) {
			t.Error("comments or blanks became patterns")
		}
	})
}

func TestFilter_Empty(t *testing.T) {
	for _, c := range []struct {
		name     string
		patterns []string
		want     bool
	}{
		{"none", nil, true},
		{"comments and blanks", []string{"# x", "", "  "}, true},
		{"re-includes only", []string{"!a", "!*.log"}, true},
		{"one pattern", []string{"a"}, false},
		{"re-include after pattern", []string{"a", "!b"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := New(c.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Empty(); got != c.want {
				t.Errorf("Empty() = %v, want %v", got, c.want)
			}
		})
	}
	t.Run("nil filter", func(t *testing.T) {
		if !(*Filter)(nil).Empty() {
			t.Error("nil filter is not empty")
		}
	})
}

func TestFilter_Patterns(t *testing.T) {
	t.Run("as given", func(t *testing.T) {
		in := []string{"# c", "*.log", "", "!keep.log", "a  "}
		f, err := New(in)
		if err != nil {
			t.Fatal(err)
		}
		got := f.Patterns()
		if !slices.Equal(got, in) {
			t.Errorf("Patterns() = %q, want %q", got, in)
		}
		got[1] = "changed"
		in[2] = "changed"
		if f.Patterns()[1] != "*.log" || f.Patterns()[2] != "" {
			t.Error("Patterns shares memory with its caller")
		}
	})
	t.Run("nil filter", func(t *testing.T) {
		if got := (*Filter)(nil).Patterns(); got != nil {
			t.Errorf("Patterns() = %q, want nil", got)
		}
	})
}
