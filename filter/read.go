package filter

import (
	"fmt"
	"os"
	"strings"
)

// ReadPatterns reads the patterns of an exclude file, as --exclude-from
// does. The file has .gitignore syntax: one pattern per line; blank lines and
// lines starting with '#' are skipped; a CR before the LF and a leading UTF-8
// byte order mark are tolerated; trailing spaces are dropped unless escaped
// with a backslash. The patterns are returned in order, ready for New.
//
// Every pattern is checked, so a malformed one is reported here with the
// file and line; that error wraps ErrBadPattern. Other errors are those of
// reading the file.
func ReadPatterns(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read patterns: %w", err)
	}
	text := strings.TrimPrefix(string(data), "\uFEFF")
	var patterns []string
	for n := 1; text != ""; n++ {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		line = trimTrailingSpaces(line)
		if line == "" {
			continue
		}
		if _, _, err := parseRule(line); err != nil {
			return nil, fmt.Errorf("read patterns: %s:%d: parse pattern %q: %w", path, n, line, err)
		}
		patterns = append(patterns, line)
	}
	return patterns, nil
}
