// Package benchutil holds what the benchmark programs under bench/ share:
// building the fsmirror binary, their work directories, the machine
// description at the head of a report, and the small statistics and
// formatting helpers of their tables.
package benchutil

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// WorkDirs makes the benchmark's work directory under dir and, apart from
// it (dir may be mounted noexec), a directory for binaries, both named after
// prefix. cleanup removes the binary directory, then removes the work
// directory or, when keep is set, prints that it is kept; it returns the
// error of removing the work directory. When WorkDirs fails, it has cleaned
// up already.
func WorkDirs(w io.Writer, dir, prefix string, keep bool) (work, binDir string, cleanup func() error, err error) {
	work, err = os.MkdirTemp(dir, prefix+"-")
	if err != nil {
		return "", "", nil, err
	}
	removeWork := func() error {
		if keep {
			fmt.Fprintf(w, "work directory %s is kept\n", work)
			return nil
		}
		return os.RemoveAll(work)
	}
	binDir, err = os.MkdirTemp("", prefix+"-bin-")
	if err != nil {
		removeWork()
		return "", "", nil, err
	}
	return work, binDir, func() error {
		os.RemoveAll(binDir)
		return removeWork()
	}, nil
}

// FsmirrorBinary returns bin as an absolute path, or builds ./cmd/fsmirror
// into tmp when bin is empty; hint ends the error of a failed build.
func FsmirrorBinary(ctx context.Context, w io.Writer, bin, tmp, hint string) (string, error) {
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("-fsmirror: %w", err)
		}
		return abs, nil
	}
	out := filepath.Join(tmp, "fsmirror")
	fmt.Fprintln(w, "building fsmirror from ./cmd/fsmirror ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/fsmirror/fsmirror/cmd/fsmirror")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build fsmirror: %w\n%s\n%s", err, strings.TrimSpace(stderr.String()), hint)
	}
	return out, nil
}

// Kernel names the running kernel and its release, or "?".
func Kernel() string {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return "?"
	}
	return unix.ByteSliceToString(uts.Sysname[:]) + " " + unix.ByteSliceToString(uts.Release[:])
}

// CPUModel returns the model name of the CPU from /proc/cpuinfo, or
// "unknown CPU".
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// FSType names the filesystem holding dir from its statfs magic number.
func FSType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown filesystem (" + err.Error() + ")"
	}
	names := map[int64]string{
		unix.TMPFS_MAGIC:           "tmpfs",
		unix.EXT4_SUPER_MAGIC:      "ext2/3/4",
		unix.XFS_SUPER_MAGIC:       "xfs",
		unix.BTRFS_SUPER_MAGIC:     "btrfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.F2FS_SUPER_MAGIC:      "f2fs",
		unix.NFS_SUPER_MAGIC:       "nfs",
		unix.FUSE_SUPER_MAGIC:      "fuse",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("filesystem type %#x", st.Type)
}

// FirstLine returns the first line of out, trimmed, as a tool prints its
// version.
func FirstLine(out []byte) string {
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// MedianOf returns the median of d, the mean of the two middle values for
// an even count, or 0 for none. d is not reordered.
func MedianOf(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

// Secs prints d in seconds with millisecond precision.
func Secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// Ratio prints a/b with two decimals, or "-" when b is zero.
func Ratio(a, b time.Duration) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// NewTable returns the tabwriter the reports print their tables with.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// Verdict is the result column of a target: "PASS" when met, else "MISS".
func Verdict(met bool) string {
	if met {
		return "PASS"
	}
	return "MISS"
}

// maxDiffs is how many differences FormatDiffs lists.
const maxDiffs = 20

// FormatDiffs lists the first differences found by testutil.Diff, one per
// line and each after a tab, and how many more there are.
func FormatDiffs(diffs []string) string {
	s := strings.Join(diffs[:min(len(diffs), maxDiffs)], "\n\t")
	if len(diffs) > maxDiffs {
		s += fmt.Sprintf("\n\t... and %d more", len(diffs)-maxDiffs)
	}
	return s
}

// CheckedAttrs lists what testutil.Diff compares, as the reports say it:
// the owner too when running as root.
func CheckedAttrs() string {
	s := "type, size, content, mode, mtime to the ns, symlink targets, hard links"
	if os.Geteuid() == 0 {
		s += ", owner"
	}
	return s
}

// LsyncdConfig is lsyncd's configuration for mirroring src to dst with
// default.rsync and no delay, as the benchmarks run it; inotifyMode is its
// settings.inotifyMode ("CloseWrite", "Modify" or "CloseWrite or Modify").
func LsyncdConfig(src, dst, inotifyMode string) string {
	return fmt.Sprintf(`settings { nodaemon = true, insist = true, inotifyMode = %s } `+
		`sync { default.rsync, source = %s, target = %s, delay = 0 }`,
		LuaQuote(inotifyMode), LuaQuote(src), LuaQuote(dst))
}

// LuaQuote makes s a Lua string literal; bytes other than the quote, the
// backslash and control characters stand for themselves.
func LuaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
