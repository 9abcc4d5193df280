package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
)

// percentile returns the nearest-rank p-th percentile of d (p in (0, 100]):
// the smallest value that at least p% of the samples do not exceed. A
// sample of timedOut counts as longer than any other, so a percentile that
// falls on one is timedOut. No samples give timedOut too.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return timedOut
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

func countTimeouts(d []time.Duration) int {
	n := 0
	for _, v := range d {
		if v == timedOut {
			n++
		}
	}
	return n
}

// fmtDur prints d with a unit and precision that suit its size.
func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.3fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}

func fmtLat(d time.Duration) string {
	if d == timedOut {
		return "TIMEOUT"
	}
	return fmtDur(d)
}

func fmtCell(c cell) string {
	if !c.ok() {
		return c.status
	}
	return fmtDur(c.d)
}

func fmtCPU(c cell) string {
	if !c.ok() {
		return c.status
	}
	return fmt.Sprintf("%.2fs", c.d.Seconds())
}

// ratio is a/b, or "-" when either is missing or b is zero.
func ratio(a, b cell) string {
	if !a.ok() || !b.ok() || b.d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3g×", float64(a.d)/float64(b.d))
}

func latCell(r *result, p float64) cell {
	if r.latStatus != "" {
		return cell{status: r.latStatus}
	}
	if len(r.lat) == 0 {
		return cell{status: "-"}
	}
	d := percentile(r.lat, p)
	if d == timedOut {
		return cell{status: "TIMEOUT"}
	}
	return cell{d: d}
}

// A goal is a target of the issue, met or missed by fsmirror alone.
type goal struct {
	what     string
	measured string
	met      bool
	wrong    bool // the measurement's DST was not a mirror
}

func report(w io.Writer, results []*result, cfg config) {
	var fs, ls *result
	for _, r := range results {
		switch r.tool.name {
		case "fsmirror":
			fs = r
		case "lsyncd":
			ls = r
		}
	}
	newTab := func() *tabwriter.Writer { return benchutil.NewTable(w) }
	ratioRow := func(tw *tabwriter.Writer, cells func(r *result) []cell) {
		if fs == nil || ls == nil {
			return
		}
		a, b := cells(fs), cells(ls)
		row := []string{"fsmirror/lsyncd"}
		for i := range a {
			row = append(row, ratio(a[i], b[i]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}

	// (a)
	fmt.Fprintf(w, "(a) latency: close() of a new 100-byte file (clock started just before it) → its full content in DST\n"+
		"    %d files one at a time, %s apart; DST stat-polled every %s (nanosleep, ~2× that in practice)\n",
		cfg.latFiles, cfg.latGap, cfg.pollEvery)
	tw := newTab()
	fmt.Fprintln(tw, "tool\tmedian\tp99\tmax\ttimeouts\twrong content\tCPU (tool+children)")
	latCells := func(r *result) []cell { return []cell{latCell(r, 50), latCell(r, 99), latCell(r, 100)} }
	for _, r := range results {
		c := latCells(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.tool.name, fmtCell(c[0]), fmtCell(c[1]), fmtCell(c[2]),
			countTimeouts(r.lat), r.latWrong, fmtCPU(r.latCPU))
	}
	ratioRow(tw, func(r *result) []cell { return append(latCells(r), cell{status: "-"}, cell{status: "-"}, r.latCPU) })
	tw.Flush()

	// (b)
	fmt.Fprintf(w, "\n(b) burst: %d files (100 B–4 KiB) written as fast as possible into a new directory;\n"+
		"    times from the last close; \"names+sizes\" polls DST every %s, \"exact\" is the end of the\n"+
		"    first testutil.Diff that finds DST equal (polled every 20ms after that)\n", cfg.burstFiles, cfg.burstPoll)
	tw = newTab()
	fmt.Fprintln(tw, "tool\twriting took\tDST names+sizes\tDST exact\tCPU (tool+children)")
	burstCells := func(r *result) []cell { return []cell{r.burstWrite, r.burst, r.burstExact, r.burstCPU} }
	for _, r := range results {
		c := burstCells(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.tool.name, fmtCell(c[0]), fmtCell(c[1]), fmtCell(c[2]), fmtCPU(c[3]))
	}
	ratioRow(tw, burstCells)
	tw.Flush()

	// (c)
	fmt.Fprintf(w, "\n(c) rename of a %d MiB file already in DST: rename() → DST has the new name and not the old\n", cfg.bigMiB)
	tw = newTab()
	fmt.Fprintln(tw, "tool\tvisible after\tDST inode")
	for _, r := range results {
		inode := map[string]string{"kept": "kept (renamed)", "new": "new (copied again)", "": "-"}[r.inode]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.tool.name, fmtCell(r.rename), inode)
	}
	ratioRow(tw, func(r *result) []cell { return []cell{r.rename} })
	tw.Flush()

	// (d)
	fmt.Fprintf(w, "\n(d) CPU while idle for %s, after (b) settled (utime+stime+cutime+cstime of /proc/PID/stat, 10ms ticks)\n", cfg.idle)
	tw = newTab()
	fmt.Fprintln(tw, "tool\tCPU\tof one CPU")
	for _, r := range results {
		pct := "-"
		if r.idle.ok() && cfg.idle > 0 {
			pct = fmt.Sprintf("%.2f%%", 100*float64(r.idle.d)/float64(cfg.idle))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.tool.name, fmtCPU(r.idle), pct)
	}
	ratioRow(tw, func(r *result) []cell { return []cell{r.idle} })
	tw.Flush()

	if fs != nil {
		fmt.Fprintln(w)
		reportGoals(w, fs, cfg)
	}

	for _, r := range results {
		if len(r.notes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nnotes on %s:\n", r.tool.name)
		for _, n := range r.notes {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(n, "\n", "\n  "))
		}
	}
	if fs != nil && len(fs.wrong) == 0 {
		fmt.Fprintf(w, "\nfsmirror: every DST checked with testutil.Diff and found an exact mirror\n"+
			"(%s).\n", benchutil.CheckedAttrs())
	}
}

// reportGoals prints the targets for fsmirror with PASS or MISS.
func reportGoals(w io.Writer, fs *result, cfg config) {
	wrong := func(scen string) bool { return slices.Contains(fs.wrong, scen) }
	var goals []goal
	med := latCell(fs, 50)
	goals = append(goals, goal{"(a) latency median ≤ 2ms", fmtCell(med), med.ok() && med.d <= 2*time.Millisecond, wrong("a")})
	goals = append(goals, goal{fmt.Sprintf("(b) %d files in DST < 0.5s after the last close", cfg.burstFiles),
		fmtCell(fs.burst), fs.burst.ok() && fs.burst.d < 500*time.Millisecond, wrong("b")})
	goals = append(goals, goal{fmt.Sprintf("(c) %d MiB rename in DST < 10ms", cfg.bigMiB),
		fmtCell(fs.rename), fs.rename.ok() && fs.rename.d < 10*time.Millisecond, wrong("c")})
	goals = append(goals, goal{"(c) DST inode kept by the rename", orDash(fs.inode), fs.inode == "kept", wrong("c")})

	tw := benchutil.NewTable(w)
	fmt.Fprintln(tw, "target (fsmirror)\tmeasured\tresult")
	for _, g := range goals {
		verdict := benchutil.Verdict(g.met)
		if g.wrong {
			verdict = "MISS (WRONG RESULT)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", g.what, g.measured, verdict)
	}
	tw.Flush()
	d := defaultConfig()
	if cfg.latFiles != d.latFiles || cfg.burstFiles != d.burstFiles || cfg.bigMiB != d.bigMiB || cfg.latGap != d.latGap {
		fmt.Fprintln(w, "(sizes differ from the defaults: the targets are set for 200 files, 5,000 files and 200 MiB)")
	}
}

// printMachine prints what the numbers depend on: CPUs, kernel, the
// filesystem under dir, and the tools.
func printMachine(w io.Writer, cfg config, versions []string) {
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(w, "machine:  %d CPUs (%s), %s, %s, load %s\n", runtime.NumCPU(), benchutil.CPUModel(), benchutil.Kernel(), runtime.Version(), load)
	fmt.Fprintf(w, "dir:      %s on %s\n", cfg.dir, benchutil.FSType(cfg.dir))
	for _, v := range versions {
		fmt.Fprintln(w, v)
	}
	fmt.Fprintln(w)
}
