package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// update rewrites the files that scripts compare output with (cmp stdout
// FILE) from what the commands print now.
var update = flag.Bool("update", false, "update the expected output in testdata/script from the actual output")

// TestMain makes this test binary double as the fsmirror command: testscript
// puts a copy named "fsmirror" on the scripts' PATH, and the unprivileged
// tests exec a copy of it as user nobody. Both run main, that is run(...).
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){"fsmirror": main, "fsmirror-userns-limit": mainWithNSLimit})
}

// cleanupM removes the copy of the binary made for user nobody once every
// test has run (testscript.Main exits without returning).
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	// Indexes of the watch tests go to a directory of their own, not to
	// /var/lib/fsmirror; subprocesses inherit it.
	state, err := os.MkdirTemp("", "fsmirror-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("FSMIRROR_STATE_DIR", state)
	code := c.m.Run()
	if nobodyBin.dir != "" {
		os.RemoveAll(nobodyBin.dir)
	}
	return code
}

// TestScript runs the command-line scripts in testdata/script.
func TestScript(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup:               setupInstances,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfor":   cmdWaitfor,
			"exits":     cmdExits,
			"mtime":     cmdMtime,
			"mkfifo":    cmdMkfifo,
			"link":      cmdLink,
			"treestate": cmdTreestate,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// setupInstances gives each script its own runtime directory (control
// sockets, pid files) and state directory, and kills, when the script
// ends, any instance it started and left running (a failed script).
func setupInstances(env *testscript.Env) error {
	run := filepath.Join(env.WorkDir, "run")
	env.Setenv("FSMIRROR_RUNTIME_DIR", run)
	env.Setenv("FSMIRROR_STATE_DIR", filepath.Join(env.WorkDir, "state"))
	// Under -race a process sleeps 1s before it exits, unless told not to.
	env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=50"))
	env.Defer(func() { killInstances(run) })
	return nil
}

// killInstances kills the processes of the pid files in dir.
func killInstances(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cmdWaitfor waits, at most 30s, until a file exists (with the content,
// if given), or with ! until it is gone:
//
//	waitfor dst/file 'content\n'
//	! waitfor dst/old
func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: [!] waitfor path [content]")
	}
	path := ts.MkAbs(args[0])
	var want *string
	if len(args) == 2 {
		w := strings.ReplaceAll(args[1], `\n`, "\n")
		want = &w
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(path)
		there := err == nil && (want == nil || string(data) == *want)
		if neg && errors.Is(err, os.ErrNotExist) || !neg && there {
			return
		}
		if time.Now().After(deadline) {
			if neg {
				ts.Fatalf("%s is still there after 30s", args[0])
			}
			ts.Fatalf("%s: after 30s: %q, %v", args[0], data, err)
		}
		time.Sleep(pollInterval)
	}
}

// cmdExits runs a program like exec and checks its exit status:
//
//	exits 2 fsmirror sync nosuch dst
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits STATUS program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// cmdMtime sets the modification time of paths, not following symlinks:
//
//	mtime 2001-02-03T04:05:06.123456789Z path...
func cmdMtime(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mtime RFC3339NANO path...")
	}
	tm, err := time.Parse(time.RFC3339Nano, args[0])
	ts.Check(err)
	for _, p := range args[1:] {
		ts.Check(setMtime(ts.MkAbs(p), tm.UnixNano()))
	}
}

// cmdMkfifo makes named pipes: mkfifo path...
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: mkfifo path...")
	}
	for _, p := range args {
		ts.Check(unix.Mkfifo(ts.MkAbs(p), 0o644))
	}
}

// cmdLink makes a hard link: link existing new
func cmdLink(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: link existing new")
	}
	ts.Check(os.Link(ts.MkAbs(args[0]), ts.MkAbs(args[1])))
}

// cmdTreestate prints one line per node below a directory, the directory
// included, with everything a write would change: type and mode, size,
// mtime, inode, symlink target and content. Comparing two outputs shows
// whether anything at all was written:
//
//	treestate dst
//	cp stdout before
//	...
//	treestate dst
//	cmp stdout before
func cmdTreestate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: treestate dir")
	}
	state, err := treeState(ts.MkAbs(args[0]))
	ts.Check(err)
	fmt.Fprint(ts.Stdout(), state)
}

// treeState describes every node below root, root included (see
// cmdTreestate).
func treeState(root string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(&b, "%q mode=%o size=%d mtime=%d ino=%d", rel, st.Mode, st.Size, st.Mtim.Nano(), st.Ino)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " target=%q", target)
		case unix.S_IFREG:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " data=%q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String(), err
}

func setMtime(path string, ns int64) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(ns)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// result is what one fsmirror command did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runInProcess runs the command line args in this process.
func runInProcess(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("fsmirror %q: %v", args, r)
	return r
}

// mustRun runs the command line args in this process and fails the test
// unless it exits with want.
func mustRun(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := runInProcess(t, args...)
	if r.code != want {
		t.Fatalf("fsmirror %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// nobody is the unprivileged user the permission tests run fsmirror as.
const nobody = 65534

// nobodyBin is a copy of this test binary, named fsmirror, in a directory
// that user nobody can reach (see TestMain).
var nobodyBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// requireRoot skips a test that must switch to another user, which only
// root can do.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run fsmirror as user nobody")
	}
}

// nobodyDir returns a new directory owned by nobody that nobody can reach:
// t.TempDir's parents may be closed to other users.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "fsmirror-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAsNobody runs the fsmirror command line args as user and group nobody
// in directory dir.
func runAsNobody(t *testing.T, dir string, args ...string) result {
	t.Helper()
	requireRoot(t)
	nobodyBin.once.Do(func() {
		nobodyBin.dir, nobodyBin.err = os.MkdirTemp("/tmp", "fsmirror-bin-")
		if nobodyBin.err != nil {
			return
		}
		nobodyBin.path = filepath.Join(nobodyBin.dir, "fsmirror")
		nobodyBin.err = copyExecutable(nobodyBin.path)
		if nobodyBin.err == nil {
			nobodyBin.err = os.Chmod(nobodyBin.dir, 0o755)
		}
	})
	if nobodyBin.err != nil {
		t.Fatalf("copy test binary for user nobody: %v", nobodyBin.err)
	}
	cmd := exec.Command(nobodyBin.path, args...)
	cmd.Args[0] = "fsmirror" // makes the test binary run main (see TestMain)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LC_ALL=C"}
	if gorace, ok := os.LookupEnv("GORACE"); ok {
		cmd.Env = append(cmd.Env, "GORACE="+gorace)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run fsmirror as nobody: %v", err)
	}
	t.Logf("fsmirror %q as nobody: %v", args, r)
	return r
}

func copyExecutable(to string) error {
	from, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// chownTree gives everything below root, root included, to uid and gid,
// without following symlinks.
func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// lstat returns the stat of path, failing the test if it cannot.
func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// inode returns the inode number of path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	return lstat(t, path).Ino
}

// tempNames returns the paths below root whose last name is one of
// fsmirror's temporaries.
func tempNames(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".fsmirror-tmp-") {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// hasLine reports whether output has the line want.
func hasLine(output, want string) bool {
	return slices.Contains(lines(output), want)
}

// controlChars returns the control characters in output other than
// newlines: a progress bar's carriage returns and escape sequences.
func controlChars(output string) string {
	var b strings.Builder
	for _, r := range output {
		if r != '\n' && (r < 0x20 || r == 0x7f) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
