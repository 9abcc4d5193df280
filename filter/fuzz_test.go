package filter

import (
	"strings"
	"testing"
)

// FuzzNew feeds arbitrary patterns and paths to New and Excluded: no input
// may panic, and a pattern New accepts must match its own text when that
// text has no special characters.
func FuzzNew(f *testing.F) {
	for _, seed := range []struct{ pattern, path string }{
		{"*.log", "a/b.log"},
		{"[!a-c]x", "dx"},
		{"[[:alpha:]", "a"},
		{"a/**/b/", "a/x/b"},
		{`\`, "x"},
		{"!/x", "x"},
		{"[\xff-\xfe]", "\xff"},
		{"**/**/a", "a/a/a"},
		{"a\xc3*", "a\xc3\xa9"},
	} {
		f.Add(seed.pattern, seed.path, false)
	}
	f.Fuzz(func(t *testing.T, pattern, path string, isDir bool) {
		flt, err := New([]string{pattern})
		if err != nil {
			return
		}
		// Make path a valid tree path: no NUL, no empty components.
		path = strings.ReplaceAll(path, "\x00", "")
		var parts []string
		for _, p := range strings.Split(path, "/") {
			if p != "" {
				parts = append(parts, p)
			}
		}
		path = strings.Join(parts, "/")
		got := flt.Excluded(path, isDir)
		if path != "" && !got {
			dir, name := split(path)
			if flt.ExcludedName(dir, name, isDir) {
				t.Errorf("ExcludedName(%q, %q) but not Excluded(%q)", dir, name, path)
			}
		}
		if pattern != "" && !strings.ContainsAny(pattern, "*?[\\!#/ ") && !flt.Excluded(pattern, false) {
			t.Errorf("pattern %q does not match itself", pattern)
		}
	})
}
