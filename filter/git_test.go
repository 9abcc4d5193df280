package filter

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilter_ExcludedAgainstGit asks git itself, through git check-ignore,
// every question of excludeGroups, on a real tree. Each case lives in its own
// directory with the group's patterns in that directory's .gitignore, which
// git applies relative to the directory, as fsmirror does to the tree root.
// The cases marked gitDiffers must get the other answer from git.
func TestFilter_ExcludedAgainstGit(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	root := t.TempDir()
	git := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(),
			"HOME="+root, "XDG_CONFIG_HOME="+root, "GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null")
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		// check-ignore exits 1 when no path is ignored.
		if exitErr, ok := err.(*exec.ExitError); err != nil && !(ok && exitErr.ExitCode() == 1) {
			t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	git(nil, "init", "-q", ".")

	type question struct {
		group string
		excludeCase
	}
	var questions []question
	var stdin bytes.Buffer
	for gi, g := range excludeGroups {
		if g.noGit != "" {
			continue
		}
		for ci, c := range g.cases {
			if c.path == "" {
				continue
			}
			dir := fmt.Sprintf("c%d.%d", gi, ci)
			ignore := strings.Join(g.patterns, "\n") + "\n"
			mustWrite(t, filepath.Join(root, dir, ".gitignore"), ignore)
			full := filepath.Join(root, dir, c.path)
			if c.isDir {
				if err := os.MkdirAll(full, 0o755); err != nil {
					t.Fatal(err)
				}
			} else {
				mustWrite(t, full, "")
			}
			questions = append(questions, question{g.name, c})
			stdin.WriteString(dir + "/" + c.path + "\x00")
		}
	}

	// With -v -n, each path gets four fields: source, line, pattern, path;
	// source is empty when no pattern matched.
	fields := strings.Split(string(git(stdin.Bytes(), "check-ignore", "--no-index", "-z", "--stdin", "-v", "-n")), "\x00")
	if len(fields) != 4*len(questions)+1 {
		t.Fatalf("git answered %d fields for %d paths", len(fields), len(questions))
	}
	for i, q := range questions {
		source, pattern := fields[4*i], fields[4*i+2]
		ignored := source != "" && !strings.HasPrefix(pattern, "!")
		switch {
		case q.gitDiffers && ignored == q.want:
			t.Errorf("%s: %q is marked as a difference from git, but git agrees: excluded=%v", q.group, q.path, ignored)
		case !q.gitDiffers && ignored != q.want:
			t.Errorf("%s: git says %q (isDir=%v) excluded=%v (by %q), the table says %v", q.group, q.path, q.isDir, ignored, pattern, q.want)
		}
	}
	if len(questions) < 50 {
		t.Errorf("only %d questions for git", len(questions))
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
