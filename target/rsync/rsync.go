// Package rsync mirrors to hosts that have rsync but no fsmirror: a module
// of an rsync daemon (rsync://[user@]host[:port]/module/path), or a
// directory on a host reached with ssh ([user@]host:path), with the
// system's rsync program.
//
// A Target is a fsmirror.PathSyncer: rsync reads the source itself, so it is
// told which paths changed, in batches, and each batch is one rsync run that
// reads the list from its standard input (--files-from=- --from0: any byte
// but NUL may be in a name, newlines included). Never one process per file,
// never a whole-tree rsync per change:
//
//   - paths: rsync -d, each path copied, updated, or deleted when the source
//     no longer has it (--delete-missing-args); a directory's own metadata
//     only;
//   - trees (a new or renamed directory, a rescan): rsync -r, each subtree
//     mirrored with --delete below it; a batch with both trees and
//     directories that only changed their metadata is two runs;
//   - the root directory's own metadata: its own small run, since "." in a
//     file list means the root's contents;
//   - SyncAll: rsync -r --delete of the whole tree.
//
// Every run keeps permissions, times to the nanosecond (--modify-window=-1,
// which needs rsync 3.1.3 on the receiving side), symlinks, hard links
// within the run, devices and specials, owners and groups by number (they
// take effect when the receiver runs as root), and the directory times of
// the parents of the paths it lists. rsync writes each file to a temporary
// in the same directory and renames it into place, so a reader never sees
// half a file. rsync cannot rename on the destination: a rename in the
// source is a delete of the old path and a copy of the new one.
//
// The filter's excludes are given to rsync as filter rules (see
// filter.RsyncRules): what is excluded is neither sent nor deleted.
//
// The exit status of each run decides what happens next (see Codes and
// ExitError): done, retried for a while, retried until the destination is
// back, or fatal.
package rsync

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
)

// Options tune a Target. The zero value is ready to use.
type Options struct {
	// Binary is the local rsync program; empty means "rsync" in PATH.
	Binary string
	// SSH is the remote shell command for a host:path destination, as
	// rsync -e takes it ("ssh -p 2222 -i key"); empty means DefaultSSH.
	SSH string
	// PasswordFile holds the daemon password (--password-file).
	PasswordFile string
	// RsyncPath is the rsync program on the far side of ssh
	// (--rsync-path); empty means rsync in the remote PATH.
	RsyncPath string
	// Bwlimit limits the bandwidth of each run (--bwlimit, such as "1m").
	Bwlimit string
	// Args are passed to every run after fsmirror's own options, so they
	// may override them.
	Args []string
	// Filter leaves paths out; they are neither sent nor deleted.
	Filter *filter.Filter
	// NoDelete keeps what the destination has and the source does not.
	NoDelete bool
	// Checksum skips files by content, not by size and mtime (rsync -c).
	Checksum bool
	// DryRun changes nothing: rsync -n, which still reports what it
	// would change.
	DryRun bool
	// Timeout ends a run that sees no data for that long (--timeout);
	// zero means DefaultTimeout, negative no timeout.
	Timeout time.Duration
	// Report, if set, is told of every change a run makes, as rsync lists
	// them (--itemize-changes). Calls may come from several goroutines at
	// once when several runs go on.
	Report func(Change)
}

// DefaultSSH is the remote shell of host:path destinations: BatchMode, so
// that a missing key is an error instead of a password prompt that nobody
// answers.
const DefaultSSH = "ssh -o BatchMode=yes -o ConnectTimeout=30"

// DefaultTimeout is the I/O timeout of a run.
const DefaultTimeout = 2 * time.Minute

// connectTimeout bounds the connection to a daemon (--contimeout).
const connectTimeout = 30 * time.Second

// Change is one change an rsync run made on the destination.
type Change struct {
	Kind fsmirror.OpKind // OpWrite, OpMkdir, OpSymlink, OpLink, OpMknod, OpDelete or OpSetMeta
	Path string
	Dir  bool // Path is a directory
}

// ErrNoRsync is wrapped by the error of New when the rsync program cannot
// be found.
var ErrNoRsync = errors.New("rsync not found")

// Target mirrors a source directory to an rsync destination. It is safe for
// concurrent use: each call runs its own rsync.
type Target struct {
	src   string // absolute
	dest  Dest
	opt   Options
	bin   string
	rules []string // the filter as rsync rules
}

var _ fsmirror.PathSyncer = (*Target)(nil)

// New returns a Target that mirrors the directory src to dest. It fails if
// the rsync program is missing or the filter cannot be given to rsync; it
// does not connect.
func New(src string, dest Dest, opt Options) (*Target, error) {
	name := opt.Binary
	if name == "" {
		name = "rsync"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: rsync destinations need the rsync program, and %q was not found (PATH=%s): install rsync (apt install rsync, dnf install rsync)",
			ErrNoRsync, name, os.Getenv("PATH"))
	}
	rules, err := opt.Filter.RsyncRules()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	if opt.SSH == "" {
		opt.SSH = DefaultSSH
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	return &Target{src: abs, dest: dest, opt: opt, bin: bin, rules: rules}, nil
}

// Dest returns the destination.
func (t *Target) Dest() Dest { return t.dest }

// Close does nothing: each run ends with its call.
func (t *Target) Close() error { return nil }

// SyncAll mirrors the whole source with one recursive rsync. rsync makes
// the destination directory but not its parents: when they are missing,
// SyncAll makes them first (with the far side's default modes).
func (t *Target) SyncAll(ctx context.Context) error {
	args := []string{"-r"}
	if !t.opt.NoDelete {
		args = append(args, "--delete")
	}
	err := t.run(ctx, args, nil, true)
	var ee *ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Stderr, "mkdir ") && strings.Contains(ee.Stderr, "No such file or directory") && !t.opt.DryRun {
		if perr := t.makeParents(ctx); perr != nil {
			return fmt.Errorf("%w (and making its parent directories failed: %v)", err, perr)
		}
		err = t.run(ctx, args, nil, true)
	}
	return err
}

// makeParents makes the missing directories on the way to the destination
// with an rsync -r, without times, modes or owners, of an empty tree of
// them, into the module's root or the remote login directory (or "/" for an
// absolute path): directories that exist are left as they are.
func (t *Target) makeParents(ctx context.Context) error {
	d := t.dest
	path := strings.TrimPrefix(d.Path, "/")
	if path == "" {
		return nil
	}
	tmp, err := os.MkdirTemp("", "fsmirror-rsync-parents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, filepath.FromSlash(path)), 0o755); err != nil {
		return err
	}
	if strings.HasPrefix(d.Path, "/") {
		d.Path = "/"
	} else {
		d.Path = ""
	}
	top := &Target{src: tmp, dest: d, opt: t.opt, bin: t.bin}
	top.opt.Args, top.opt.Report, top.opt.Checksum = nil, nil, false
	return top.runArgs(ctx, []string{top.bin, "-r", "--timeout=" + strconv.Itoa(max(1, int(t.opt.Timeout/time.Second)))},
		t.connArgs(), []string{tmp + "/", d.Arg()})
}

// SyncPaths brings paths and trees up to date; see fsmirror.PathSyncer.
func (t *Target) SyncPaths(ctx context.Context, paths, trees []string) error {
	for _, p := range append(paths[:len(paths):len(paths)], trees...) {
		if !fsmirror.IsValidPath(p) {
			return fmt.Errorf("rsync: invalid path %s", fsmirror.QuotePath(p))
		}
	}
	var rootMeta bool
	var plain, dirs []string
	for _, p := range paths {
		if p == "" {
			rootMeta = true
			continue
		}
		switch t.kind(p) {
		case underFile:
		case isDir:
			if len(trees) > 0 {
				dirs = append(dirs, p) // a recursive run would copy its contents
				continue
			}
			fallthrough
		default:
			plain = append(plain, p)
		}
	}
	var subtrees []string
	for _, tr := range trees {
		if tr == "" {
			return errors.New("rsync: the root is not a tree of SyncPaths: use SyncAll")
		}
		if t.kind(tr) != underFile {
			subtrees = append(subtrees, tr)
		}
	}
	trees = subtrees
	var partial error
	step := func(err error) bool {
		if errors.Is(err, fsmirror.ErrPartial) {
			partial = err
			return true
		}
		return err == nil
	}
	if len(trees) > 0 {
		if err := t.runList(ctx, "-r", append(trees[:len(trees):len(trees)], plain...)); !step(err) {
			return err
		}
		plain = dirs
	}
	if len(plain) > 0 {
		if err := t.runList(ctx, "-d", plain); !step(err) {
			return err
		}
	}
	if rootMeta {
		// "." in a file list stands for the root's contents: the root's
		// own metadata is a run that excludes everything in it.
		if err := t.run(ctx, []string{"-d", "--exclude=/*"}, nil, false); !step(err) {
			return err
		}
	}
	return partial
}

type pathKind uint8

const (
	other     pathKind = iota // anything else, missing included
	isDir                     // a directory
	underFile                 // cannot exist: a directory on its way is a file
)

// kind says what the source has at p. A path below something that is no
// directory any more is left out of runs: rsync would fail on it (ENOTDIR is
// not "missing" to --delete-missing-args), and the event of the directory
// that became a file replaces all of it on the destination.
func (t *Target) kind(p string) pathKind {
	fi, err := os.Lstat(filepath.Join(t.src, p))
	switch {
	case err == nil && fi.IsDir():
		return isDir
	case errors.Is(err, syscall.ENOTDIR):
		return underFile
	}
	return other
}

// runList runs rsync with recurse ("-r" or "-d") on the listed paths.
func (t *Target) runList(ctx context.Context, recurse string, paths []string) error {
	var list bytes.Buffer
	for _, p := range paths {
		list.WriteString(p)
		list.WriteByte(0)
	}
	args := []string{recurse, "--files-from=-", "--from0"}
	if t.opt.NoDelete {
		args = append(args, "--ignore-missing-args")
	} else {
		// --delete: for the subtrees of -r, and so that a missing path
		// that is a non-empty directory on the destination can go.
		args = append(args, "--delete", "--delete-missing-args")
	}
	return t.run(ctx, args, &list, true)
}

// Command returns the rsync command line a run with the given mode options
// would use, for messages and tests.
func (t *Target) Command(mode ...string) []string {
	return t.args(mode, true)
}

func (t *Target) args(mode []string, withFilter bool) []string {
	args := []string{t.bin,
		// -a without -r, which each run chooses (-r, -d), and which
		// --files-from would not imply anyway.
		"-lptgoD", "-H", "--numeric-ids",
		"--modify-window=-1", // nanoseconds
		"--out-format=%i %n",
	}
	if t.opt.Timeout > 0 {
		args = append(args, "--timeout="+strconv.Itoa(max(1, int(t.opt.Timeout/time.Second))))
	}
	args = append(args, t.connArgs()...)
	if t.opt.Bwlimit != "" {
		args = append(args, "--bwlimit="+t.opt.Bwlimit)
	}
	if t.opt.Checksum {
		args = append(args, "--checksum")
	}
	if t.opt.DryRun {
		args = append(args, "--dry-run")
	}
	args = append(args, mode...)
	if withFilter {
		for _, r := range t.rules {
			args = append(args, "--filter="+r)
		}
	}
	args = append(args, t.opt.Args...)
	return append(args, t.src+"/", t.dest.Arg())
}

// connArgs are the options that reach the far side: the daemon's
// password, or the remote shell and the remote rsync.
func (t *Target) connArgs() []string {
	if t.dest.Daemon {
		args := []string{"--contimeout=" + strconv.Itoa(int(connectTimeout/time.Second))}
		if t.opt.PasswordFile != "" {
			args = append(args, "--password-file="+t.opt.PasswordFile)
		}
		return args
	}
	args := []string{"-e", t.opt.SSH}
	if t.opt.RsyncPath != "" {
		args = append(args, "--rsync-path="+t.opt.RsyncPath)
	}
	return args
}

// stopGrace is how long a run that must stop (its context ended) gets to
// clean up its temporaries after SIGTERM before it is killed.
const stopGrace = 10 * time.Second

// run runs rsync once with mode options and the file list on stdin.
func (t *Target) run(ctx context.Context, mode []string, stdin io.Reader, withFilter bool) error {
	return t.exec(ctx, t.args(mode, withFilter), stdin)
}

// runArgs runs rsync with the concatenated argument lists and no input.
func (t *Target) runArgs(ctx context.Context, lists ...[]string) error {
	var args []string
	for _, l := range lists {
		args = append(args, l...)
	}
	return t.exec(ctx, args, nil)
}

// exec runs the command line args (rsync first) and classifies its end.
func (t *Target) exec(ctx context.Context, args []string, stdin io.Reader) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = stdin // nil: /dev/null, so that rsync never waits for a password
	// A session of its own: no terminal to ask a password on, and a
	// process group that ends with it (the ssh it starts).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error {
		// SIGTERM lets rsync remove its temporaries; the group takes
		// ssh along.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = stopGrace
	var stderr tailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run rsync: %w", err)
	}
	t.readChanges(stdout)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run rsync: %w", err)
	}
	status := ee.ExitCode() // -1 when killed by a signal
	class, hint := classify(status, stderr.String())
	if class == OK {
		return nil
	}
	return &ExitError{Status: status, Class: class, Stderr: stderr.String(), Hint: hint}
}

// readChanges reads rsync's itemized output ("%i %n") until EOF and
// reports each change.
func (t *Target) readChanges(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if t.opt.Report == nil {
			continue
		}
		if c, ok := parseItem(sc.Text()); ok {
			t.opt.Report(c)
		}
	}
	io.Copy(io.Discard, r) // a line too long: drain, or rsync would block
}

// parseItem parses one line of --out-format="%i %n": eleven flag characters
// YXcstpoguax, or "*deleting", a space and the name, escaped by rsync.
func parseItem(line string) (Change, bool) {
	if len(line) < 13 || line[11] != ' ' {
		return Change{}, false
	}
	flags, name := line[:11], unescape(line[12:])
	var c Change
	c.Path, c.Dir = strings.CutSuffix(name, "/")
	if c.Path == "." {
		c.Path = ""
	}
	if !fsmirror.IsValidPath(c.Path) {
		return Change{}, false
	}
	if strings.HasPrefix(flags, "*deleting") {
		c.Kind = fsmirror.OpDelete
		return c, true
	}
	y, x := flags[0], flags[1]
	switch {
	case y == 'h':
		c.Kind = fsmirror.OpLink
	case x == 'd' && y == 'c':
		c.Kind = fsmirror.OpMkdir
	case x == 'L' && (y == 'c' || y == '<' || y == '>'):
		c.Kind = fsmirror.OpSymlink
	case (x == 'D' || x == 'S') && (y == 'c' || y == '<' || y == '>'):
		c.Kind = fsmirror.OpMknod
	case y == '<' || y == '>':
		c.Kind = fsmirror.OpWrite
	case y == '.' || y == 'c':
		if strings.Trim(flags[2:], ". ") == "" {
			return Change{}, false // listed, nothing changed
		}
		c.Kind = fsmirror.OpSetMeta
	default:
		return Change{}, false
	}
	return c, true
}

// unescape undoes rsync's escaping of names in its output: "\#ooo" is the
// byte with octal value ooo (rsync writes newlines, other control
// characters, bytes of invalid UTF-8, and a backslash before '#' so).
func unescape(s string) string {
	if !strings.Contains(s, `\#`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 < len(s) && s[i+1] == '#' && isOctal(s[i+2]) && isOctal(s[i+3]) && isOctal(s[i+4]) {
			b.WriteByte((s[i+2]-'0')<<6 | (s[i+3]-'0')<<3 | (s[i+4] - '0'))
			i += 4
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// tailBuffer keeps the first and the last lines written to it, so that a
// run that complains about every file of a large batch uses bounded memory.
type tailBuffer struct {
	head  []byte
	tail  []byte
	total int
}

const (
	tailHead = 4 << 10
	tailKeep = 16 << 10
)

func (b *tailBuffer) Write(p []byte) (int, error) {
	n0 := len(p)
	b.total += n0
	if n := min(len(p), tailHead-len(b.head)); n > 0 {
		b.head = append(b.head, p[:n]...)
		p = p[n:]
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > 2*tailKeep {
		b.tail = append(b.tail[:0], b.tail[len(b.tail)-tailKeep:]...)
	}
	return n0, nil
}

func (b *tailBuffer) String() string {
	if b.total <= len(b.head)+len(b.tail) {
		return string(b.head) + string(b.tail)
	}
	tail := b.tail[len(b.tail)-min(len(b.tail), tailKeep):]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return string(b.head) + "\n[...]\n" + string(tail)
}
