package filter

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadPatterns(t *testing.T) {
	for _, c := range []struct {
		name    string
		content string
		want    []string
	}{
		{"empty file", "", nil},
		{"one per line", "*.log\nbuild/\n!keep.log", []string{"*.log", "build/", "!keep.log"}},
		{"comments and blank lines", "# header\n\n*.log\n   \n  # not a comment\n#\n", []string{"*.log", "  # not a comment"}},
		{"CRLF", "*.log\r\nbuild/\r\n\r\n# c\r\n", []string{"*.log", "build/"}},
		{"CR only before LF", "a\rb\n", []string{"a\rb"}},
		{"byte order mark", "\uFEFF*.log\n", []string{"*.log"}},
		{"trailing spaces", "a  \nb\\ \nc\\  \r\nd\t\n", []string{"a", `b\ `, `c\ `, "d\t"}},
		{"escapes kept", "\\#hash\n\\!bang\n", []string{`\#hash`, `\!bang`}},
		{"weird bytes", "caf\xff\n*.\xc3\xa9\n", []string{"caf\xff", "*.é"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "exclude")
			mustWrite(t, path, c.content)
			got, err := ReadPatterns(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ReadPatterns = %q, want %q", got, c.want)
			}
		})
	}
	t.Run("patterns work with New", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "exclude")
		mustWrite(t, path, "# logs\r\n*.log\r\n!keep.log\r\n\\#x\r\nsp\\ \r\n")
		pats, err := ReadPatterns(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := New(pats)
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]bool{"a.log": true, "keep.log": false, "#x": true, "sp ": true, "sp": false, "# logs": false} {
			if got := f.Excluded(path, false); got != want {
				t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
			}
		}
	})
	t.Run("malformed pattern names file and line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "exclude")
		mustWrite(t, path, "# ok\r\n*.log\r\n\r\nsrc/[a-\r\n")
		_, err := ReadPatterns(path)
		if err == nil {
			t.Fatal("no error")
		}
		if !errors.Is(err, ErrBadPattern) {
			t.Errorf("error %q does not wrap ErrBadPattern", err)
		}
		if want := path + `:4: parse pattern "src/[a-": unclosed '['`; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope")
		_, err := ReadPatterns(path)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBadPattern) {
			t.Fatalf("error %v: want one that wraps fs.ErrNotExist only", err)
		}
		if !strings.HasPrefix(err.Error(), "read patterns: ") || !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not say what failed on which file", err)
		}
	})
}
