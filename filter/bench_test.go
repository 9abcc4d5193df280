package filter

import "testing"

// benchPatterns is a typical exclude list.
var benchPatterns = []string{"*.log", "node_modules/", "/build", "docs/**/*.tmp", "!keep.log"}

// benchEntries are the questions a walker asks, most of which no pattern
// matches, as in a real tree.
var benchEntries = []struct {
	dir, name string
	isDir     bool
}{
	{"", "src", true},
	{"", "build", true},
	{"", "README.md", false},
	{"src", "main.go", false},
	{"src", "main_test.go", false},
	{"src/internal/store", "store.go", false},
	{"src/internal/store", "debug.log", false},
	{"src/internal/store", "keep.log", false},
	{"web", "node_modules", true},
	{"web/app/components", "Button.tsx", false},
	{"docs/guide/part1", "draft.tmp", false},
	{"docs/guide/part1", "intro.md", false},
	{"assets/images/icons", "logo.png", false},
	{"assets/images/icons", "logo@2x.png", false},
	{"vendor/github.com/x/y", "y.go", false},
	{"vendor/github.com/x/y", "LICENSE", false},
}

func BenchmarkFilter_ExcludedName(b *testing.B) {
	for _, c := range []struct {
		name     string
		patterns []string
	}{
		{"0 patterns", nil},
		{"5 patterns", benchPatterns},
	} {
		b.Run(c.name, func(b *testing.B) {
			f, err := New(c.patterns)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e := &benchEntries[i%len(benchEntries)]
				f.ExcludedName(e.dir, e.name, e.isDir)
			}
		})
	}
}

func BenchmarkFilter_Excluded(b *testing.B) {
	f, err := New(benchPatterns)
	if err != nil {
		b.Fatal(err)
	}
	paths := make([]string, len(benchEntries))
	for i, e := range benchEntries {
		paths[i] = e.name
		if e.dir != "" {
			paths[i] = e.dir + "/" + e.name
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Excluded(paths[i%len(paths)], benchEntries[i%len(paths)].isDir)
	}
}
