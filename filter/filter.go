// Package filter decides which paths of a tree fsmirror leaves out, from
// exclude rules written in gitignore syntax (`--exclude PATTERN`,
// `--exclude-from FILE`).
//
// The rules are those git documents for .gitignore, applied as if all
// patterns came from one .gitignore file at the root of the tree:
//
//   - A pattern without a slash, other than a trailing one, matches a name at
//     any depth ("*.log", "node_modules"). A leading or middle slash anchors
//     the pattern to the root ("/build", "docs/*.md").
//   - A trailing slash makes a pattern match directories only ("cache/").
//   - "*" matches any run of characters, "?" one character, "[a-z]", "[!a]",
//     "[^a]" and "[[:digit:]]" one character of a set; none of them matches '/'.
//     A backslash makes the next character literal.
//   - "**" as a whole path component matches any number of directories: a
//     leading "**/" at any depth, a middle "/**/" zero or more directories, a
//     trailing "/**" everything inside (but not the directory itself). Other
//     runs of asterisks are a single "*".
//   - "!" re-includes what an earlier pattern excluded; the last pattern that
//     matches a path decides. A path below an excluded directory is excluded,
//     whatever the patterns say about it: git cannot re-include a file whose
//     parent directory is excluded, and neither can fsmirror.
//   - Blank patterns and patterns starting with '#' are ignored; "\#" and "\!"
//     start a pattern with a literal '#' or '!'. Trailing spaces are dropped
//     unless escaped ("\ "). Matching is case-sensitive.
//
// Paths and names are byte strings and may hold anything but '/' and NUL:
// newlines, spaces, invalid UTF-8. A character, for "?" and for classes, is
// one UTF-8 encoded rune, or a single byte where the bytes are not valid
// UTF-8. So "?" matches "é" (two bytes) and also the lone byte 0xff. This is
// where fsmirror differs from git, whose matcher counts bytes and where "?"
// does not match "é".
//
// The matcher is this package's own. go-git's plumbing/format/gitignore,
// the obvious candidate, gets several of the rules above wrong: "[!a]" is
// read as the set {!, a}, "foo/**" matches foo itself, "a/**/b/c" does not
// backtrack, POSIX classes never match, and a malformed pattern silently
// matches nothing instead of being reported.
//
// A Filter never changes after New, so one value may be used by any number of
// goroutines. The nil *Filter excludes nothing.
package filter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadPattern is wrapped by every error that New or ReadPatterns returns
// for a malformed pattern, so that a caller can tell a usage mistake from an
// I/O failure.
var ErrBadPattern = errors.New("bad pattern")

// Filter decides which paths of a tree are excluded. The zero value and the
// nil *Filter exclude nothing. A Filter is read-only after New and safe for
// concurrent use.
type Filter struct {
	patterns []string // as given to New, for display
	rules    []rule   // compiled, in order; comments and no-op rules dropped
}

// New compiles patterns written in gitignore syntax, one pattern per string,
// later patterns taking precedence over earlier ones. Blank strings and
// strings starting with '#' are ignored, as are trailing unescaped spaces.
// A malformed pattern, such as "[a-" with an unclosed class, is an error that
// names the pattern and wraps ErrBadPattern.
func New(patterns []string) (*Filter, error) {
	f := &Filter{patterns: slices.Clone(patterns)}
	for _, p := range patterns {
		r, ok, err := parseRule(p)
		if err != nil {
			return nil, fmt.Errorf("parse pattern %q: %w", p, err)
		}
		if !ok {
			continue
		}
		if r.negate && len(f.rules) == 0 {
			// Nothing is excluded yet, so there is nothing to re-include:
			// dropping the rule keeps Empty and the hot path honest.
			continue
		}
		f.rules = append(f.rules, r)
	}
	return f, nil
}

// Excluded reports whether path is excluded. The path is relative to the
// tree's root, '/'-separated, without a leading '/' (as fsmirror paths are),
// and its names may hold any byte but '/' and NUL. isDir tells whether the
// path is a directory; its ancestors are directories by definition.
//
// A path is excluded when it, or any of its ancestor directories, is
// excluded by the patterns. The root "" is never excluded. Excluded checks
// every ancestor; a tree walker that does not descend into excluded
// directories should call the cheaper ExcludedName instead.
func (f *Filter) Excluded(path string, isDir bool) bool {
	if f == nil || len(f.rules) == 0 || path == "" {
		return false
	}
	start := 0 // start of the current component
	for {
		i := strings.IndexByte(path[start:], '/')
		if i < 0 {
			break
		}
		if f.ExcludedName(parentOf(path, start), path[start:start+i], true) {
			return true
		}
		start += i + 1
	}
	return f.ExcludedName(parentOf(path, start), path[start:], isDir)
}

// parentOf returns the directory part of path when its last considered
// component starts at start.
func parentOf(path string, start int) string {
	if start == 0 {
		return ""
	}
	return path[:start-1]
}

// ExcludedName reports whether the entry name of directory dir is excluded,
// where dir is a path as Excluded takes it ("" for the root) and isDir tells
// whether the entry is a directory. It assumes that dir and its ancestors are
// not excluded, as is the case for a walker that skips excluded directories,
// and so matches the patterns against dir/name only. It does not allocate.
func (f *Filter) ExcludedName(dir, name string, isDir bool) bool {
	if f == nil || len(f.rules) == 0 || name == "" {
		return false
	}
	for i := len(f.rules) - 1; i >= 0; i-- {
		r := &f.rules[i]
		if r.dirOnly && !isDir {
			continue
		}
		if r.match(dir, name) {
			return !r.negate
		}
	}
	return false
}

// Empty reports whether the filter excludes nothing: it is nil, or it has no
// pattern other than comments, blanks and re-includes.
func (f *Filter) Empty() bool {
	return f == nil || len(f.rules) == 0
}

// Patterns returns a copy of the patterns given to New, comments included,
// for display.
func (f *Filter) Patterns() []string {
	if f == nil {
		return nil
	}
	return slices.Clone(f.patterns)
}
