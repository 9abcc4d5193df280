package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// target is one goal of the performance issue: fsmirror's median over the
// other tool's median must be at most ratio.
type target struct {
	phase  string // "first copy" or "no-change"
	versus string
	ratio  float64
}

var targets = []target{
	{"first copy", "rsync", 0.5},
	{"first copy", "cp", 1.0},
	{"no-change", "rsync", 0.5},
}

// report prints the medians of every tool, fsmirror's ratios to the others,
// and whether each target is met.
func report(w io.Writer, results []*result, runs int) {
	fmt.Fprintf(w, "median of %d runs (wall clock; CPU = user+sys of the tool and its children)\n\n", runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tool\tfirst copy\tCPU\tsecond run\tCPU\twhat the second run does")
	med := map[string]map[string]sample{}
	for _, r := range results {
		first, second := median(r.first), median(r.second)
		med[r.tool.name] = map[string]sample{"first copy": first, "no-change": second}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.tool.name,
			secs(first.wall), secs(first.cpu), secs(second.wall), secs(second.cpu), r.tool.second)
	}
	tw.Flush()

	fs, ok := med["fsmirror"]
	if !ok {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tfirst copy\tsecond run\tCPU first\tCPU second")
	for _, r := range results {
		if r.tool.name == "fsmirror" {
			continue
		}
		o := med[r.tool.name]
		note := ""
		if r.tool.name == "cp" {
			note = "  (cp's second run copies everything again)"
		}
		fmt.Fprintf(tw, "fsmirror/%s\t%s\t%s\t%s\t%s%s\n", r.tool.name,
			ratio(fs["first copy"].wall, o["first copy"].wall), ratio(fs["no-change"].wall, o["no-change"].wall),
			ratio(fs["first copy"].cpu, o["first copy"].cpu), ratio(fs["no-change"].cpu, o["no-change"].cpu), note)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target (wall clock)\tmeasured\tresult")
	for _, t := range targets {
		o, ok := med[t.versus]
		if !ok {
			fmt.Fprintf(tw, "%s ≤ %.1f× %s\t-\tnot measured\n", t.phase, t.ratio, t.versus)
			continue
		}
		r := float64(fs[t.phase].wall) / float64(o[t.phase].wall)
		verdict := "MISS"
		if r <= t.ratio {
			verdict = "PASS"
		}
		fmt.Fprintf(tw, "%s ≤ %.1f× %s\t%.2f×\t%s\n", t.phase, t.ratio, t.versus, r, verdict)
	}
	tw.Flush()
}

// median returns the median wall and the median CPU time of samples,
// each taken on its own.
func median(samples []sample) sample {
	walls, cpus := make([]time.Duration, len(samples)), make([]time.Duration, len(samples))
	for i, s := range samples {
		walls[i], cpus[i] = s.wall, s.cpu
	}
	return sample{wall: medianOf(walls), cpu: medianOf(cpus)}
}

func medianOf(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// printMachine prints what the numbers depend on: CPUs, kernel, the
// filesystem under dir, and the versions of the tools.
func printMachine(w io.Writer, dir string) {
	var uts unix.Utsname
	kernel := "?"
	if unix.Uname(&uts) == nil {
		kernel = unix.ByteSliceToString(uts.Sysname[:]) + " " + unix.ByteSliceToString(uts.Release[:])
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s\n", runtime.NumCPU(), cpuModel(), kernel, runtime.Version())
	fmt.Fprintf(w, "dir:     %s on %s\n", dir, fsType(dir))
	for _, t := range []string{"rsync", "cp"} {
		if out, err := exec.Command(t, "--version").Output(); err == nil {
			fmt.Fprintf(w, "%-8s %s\n", t+":", strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
		}
	}
}

func cpuModel() string {
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

// fsType names the filesystem holding dir from its statfs magic number.
func fsType(dir string) string {
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
