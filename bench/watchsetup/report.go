package main

import (
	"fmt"
	"io"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
)

// report prints the medians of every tool and the ratios of fanotify to
// inotify and to lsyncd.
func report(w io.Writer, cfg config, tools []*tool, samples [][]sample) {
	med := make([]sample, len(tools))
	for i := range tools {
		med[i] = median(samples[i])
	}
	fmt.Fprintf(w, "median of %d run(s); times from the exec of the tool:\n", cfg.runs)
	tw := benchutil.NewTable(w)
	fmt.Fprintln(tw, "tool\twatches in place\twatches\tits own figure\tready\tCPU to ready\tRSS at ready\tpeak RSS\tfirst change\tCPU idle "+cfg.idle.String()+"\t")
	for i, t := range tools {
		m := med[i]
		own := "-"
		if m.setup != "" {
			own = m.setup
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.name, cellDur(m.watches, ""), m.nwatches, own,
			cellDur(m.ready, m.status), cellDur(m.cpu, m.status), kb(m.rss), kb(m.hwm), fmtProbe(m.probe), cellDur(m.idleCPU, ""))
	}
	tw.Flush()
	for i, m := range med {
		if m.status != "" {
			fmt.Fprintf(w, "note: %s: %s\n", tools[i].name, m.status)
		}
	}

	fan, ino, lsy := -1, -1, -1
	for i, t := range tools {
		switch t.name {
		case "fsmirror fanotify":
			fan = i
		case "fsmirror inotify":
			ino = i
		case "lsyncd":
			lsy = i
		}
	}
	if fan < 0 {
		return
	}
	fmt.Fprintln(w)
	tw = benchutil.NewTable(w)
	fmt.Fprintln(tw, "ratio\twatches in place\tready\tCPU to ready\tRSS at ready\tpeak RSS\t")
	for _, o := range []int{ino, lsy} {
		if o < 0 {
			continue
		}
		a, b := med[fan], med[o]
		fmt.Fprintf(tw, "fsmirror fanotify / %s\t%s\t%s\t%s\t%s\t%s\t\n", tools[o].name,
			benchutil.Ratio(a.watches, b.watches), benchutil.Ratio(a.ready, b.ready), benchutil.Ratio(a.cpu, b.cpu),
			kbRatio(a.rss, b.rss), kbRatio(a.hwm, b.hwm))
	}
	if ino >= 0 && lsy >= 0 {
		a, b := med[ino], med[lsy]
		fmt.Fprintf(tw, "fsmirror inotify / lsyncd\t%s\t%s\t%s\t%s\t%s\t\n",
			benchutil.Ratio(a.watches, b.watches), benchutil.Ratio(a.ready, b.ready), benchutil.Ratio(a.cpu, b.cpu),
			kbRatio(a.rss, b.rss), kbRatio(a.hwm, b.hwm))
	}
	tw.Flush()
	fmt.Fprint(w, "\nwatches in place: the tool's line saying so (fsmirror -v \"set up in\", lsyncd \"recursive startup rsync\"),\n"+
		"with /proc/PID/fdinfo read as it arrives to count the watches (inotify) or marks (fanotify); \"its own figure\"\n"+
		"is fsmirror's time for watch.New. ready: the tool's line that its initial sync is done (DST was an exact\n"+
		"copy, so it copies nothing; fsmirror has no index and compares the whole DST, lsyncd runs rsync over it).\n"+
		"RSS is the tool's own process (not lsyncd's rsync children, nor the kernel memory of inotify watches).\n"+
		"CPU idle: what the tool used while nothing changed in its tree; fanotify hears every change of the\n"+
		"file system, which other programs keep changing on a shared machine.\n")
}

// median returns the sample made of the median of each measurement; a
// status of any sample is kept.
func median(ss []sample) sample {
	pick := func(f func(sample) time.Duration) time.Duration {
		var d []time.Duration
		for _, s := range ss {
			if v := f(s); v > 0 {
				d = append(d, v)
			}
		}
		return benchutil.MedianOf(d)
	}
	pickKB := func(f func(sample) int64) int64 {
		var d []time.Duration
		for _, s := range ss {
			if v := f(s); v > 0 {
				d = append(d, time.Duration(v))
			}
		}
		return int64(benchutil.MedianOf(d))
	}
	m := sample{
		watches: pick(func(s sample) time.Duration { return s.watches }),
		ready:   pick(func(s sample) time.Duration { return s.ready }),
		cpu:     pick(func(s sample) time.Duration { return s.cpu }),
		probe:   pick(func(s sample) time.Duration { return s.probe }),
		idleCPU: pick(func(s sample) time.Duration { return s.idleCPU }),
		rss:     pickKB(func(s sample) int64 { return s.rss }),
		hwm:     pickKB(func(s sample) int64 { return s.hwm }),
	}
	for _, s := range ss {
		m.nwatches = max(m.nwatches, s.nwatches)
		if m.setup == "" {
			m.setup = s.setup
		}
		if s.status != "" && m.status == "" {
			m.status = s.status
		}
	}
	return m
}

// cellDur prints d, or "-" when it was not measured.
func cellDur(d time.Duration, status string) string {
	if d == 0 && status != "" {
		return "-"
	}
	if d < time.Second {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return benchutil.Secs(d)
}

func fmtProbe(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return cellDur(d, "")
}

func statusNote(status string) string {
	if status == "" {
		return ""
	}
	return " (" + status + ")"
}

// kb prints a size in kB as MiB.
func kb(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/1024)
}

func kbRatio(a, b int64) string {
	return benchutil.Ratio(time.Duration(a), time.Duration(b))
}
