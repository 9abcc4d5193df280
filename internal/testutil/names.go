package testutil

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// quote shows a relative path to a person: unchanged when it is printable
// UTF-8 without leading or trailing spaces, else Go-quoted, so that a name
// holding a newline or invalid UTF-8 stays on one line and is unambiguous.
// The root is ".".
func quote(rel string) string {
	if rel == "" {
		return "."
	}
	if !utf8.ValidString(rel) || rel[0] == ' ' || rel[len(rel)-1] == ' ' || rel[0] == '"' {
		return strconv.Quote(rel)
	}
	for _, r := range rel {
		if !unicode.IsPrint(r) {
			return strconv.Quote(rel)
		}
	}
	return rel
}

// NastyNames returns file names that trip up naive tools: control
// characters, leading and trailing spaces, invalid UTF-8, shell and glob
// metacharacters, option-like and dot names, and names of exactly 255 bytes
// (NAME_MAX), in ASCII and in two-byte UTF-8. None contains '/' or NUL, and
// no two are equal.
func NastyNames() []string {
	return []string{
		"new\nline",
		"carriage\rreturn",
		"tab\there",
		"esc\x1b[31mred",
		" leading space",
		"trailing space ",
		"   ",
		"\xff\xfe",
		"bad \xc3\x28 utf8",
		"ünïcödé ☃ 日本",
		"-dash-first",
		"--help",
		"~tilde",
		`quote"s 'and' back\slash`,
		"*?[glob]{a,b}",
		"$(echo x) `y` $HOME;&|<>",
		"%s%n%x",
		".hidden",
		"..dots",
		"...",
		"Case",
		"case",
		strings.Repeat("n", 255),
		strings.Repeat("é", 127) + "x",
	}
}

// builderMtime is the mtime NastyTree and DeepTree give everything they
// make, so that two calls make trees Diff finds equal. Its nanosecond part
// catches a mirror that truncates times.
const builderMtime = int64(1_234_567_890_987_654_321)

// NastyTree builds below root, for every name of NastyNames, a file
// files/NAME holding the name, a directory dirs/NAME holding a file NAME,
// and a symlink links/NAME pointing to ../files/NAME. Every node it makes
// has the same mtime, so two calls make equal trees.
func NastyTree(t testing.TB, root string) {
	t.Helper()
	nodes := []Node{
		Dir("files", 0o755).Mtime(builderMtime),
		Dir("dirs", 0o755).Mtime(builderMtime),
		Dir("links", 0o755).Mtime(builderMtime),
	}
	for _, n := range NastyNames() {
		nodes = append(nodes,
			File("files/"+n, n, 0o644).Mtime(builderMtime),
			Dir("dirs/"+n, 0o700).Mtime(builderMtime),
			File("dirs/"+n+"/"+n, n, 0o600).Mtime(builderMtime),
			Symlink("links/"+n, "../files/"+n).Mtime(builderMtime),
		)
	}
	Build(t, root, nodes...)
}

// DeepTree builds below root a chain of 30 directories with 200-byte names,
// about 6,000 bytes in all, well past PATH_MAX (4096), with a file "bottom"
// at the end, and returns the file's path relative to root. No path-based
// system call can reach it: tools must walk with openat or chdir. Every
// node it makes has the same mtime, so two calls make equal trees.
func DeepTree(t testing.TB, root string) (deepestRelPath string) {
	t.Helper()
	var nodes []Node
	rel := ""
	for i := range 30 {
		prefix := fmt.Sprintf("%02d-", i)
		rel = join(rel, prefix+strings.Repeat("d", 200-len(prefix)))
		nodes = append(nodes, Dir(rel, 0o755).Mtime(builderMtime))
	}
	rel += "/bottom"
	nodes = append(nodes, File(rel, "at the bottom\n", 0o644).Mtime(builderMtime))
	Build(t, root, nodes...)
	return rel
}
