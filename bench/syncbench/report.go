package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
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
	tw := benchutil.NewTable(w)
	fmt.Fprintln(tw, "tool\tfirst copy\tCPU\tsecond run\tCPU\twhat the second run does")
	med := map[string]map[string]sample{}
	for _, r := range results {
		first, second := median(r.first), median(r.second)
		med[r.tool.name] = map[string]sample{"first copy": first, "no-change": second}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.tool.name,
			benchutil.Secs(first.wall), benchutil.Secs(first.cpu), benchutil.Secs(second.wall), benchutil.Secs(second.cpu), r.tool.second)
	}
	tw.Flush()

	fs, ok := med["fsmirror"]
	if !ok {
		return
	}
	fmt.Fprintln(w)
	tw = benchutil.NewTable(w)
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
			benchutil.Ratio(fs["first copy"].wall, o["first copy"].wall), benchutil.Ratio(fs["no-change"].wall, o["no-change"].wall),
			benchutil.Ratio(fs["first copy"].cpu, o["first copy"].cpu), benchutil.Ratio(fs["no-change"].cpu, o["no-change"].cpu), note)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = benchutil.NewTable(w)
	fmt.Fprintln(tw, "target (wall clock)\tmeasured\tresult")
	for _, t := range targets {
		o, ok := med[t.versus]
		if !ok {
			fmt.Fprintf(tw, "%s ≤ %.1f× %s\t-\tnot measured\n", t.phase, t.ratio, t.versus)
			continue
		}
		r := float64(fs[t.phase].wall) / float64(o[t.phase].wall)
		fmt.Fprintf(tw, "%s ≤ %.1f× %s\t%.2f×\t%s\n", t.phase, t.ratio, t.versus, r, benchutil.Verdict(r <= t.ratio))
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
	return sample{wall: benchutil.MedianOf(walls), cpu: benchutil.MedianOf(cpus)}
}

// printMachine prints what the numbers depend on: CPUs, kernel, the
// filesystem under dir, and the versions of the tools.
func printMachine(w io.Writer, dir string) {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s\n", runtime.NumCPU(), benchutil.CPUModel(), benchutil.Kernel(), runtime.Version())
	fmt.Fprintf(w, "dir:     %s on %s\n", dir, benchutil.FSType(dir))
	for _, t := range []string{"rsync", "cp"} {
		if out, err := exec.Command(t, "--version").Output(); err == nil {
			fmt.Fprintf(w, "%-8s %s\n", t+":", benchutil.FirstLine(out))
		}
	}
}
