// Command syncbench measures fsmirror's one-shot sync against rsync and cp
// on a tree of many small files, side by side in the same run.
//
// For every run and every tool it times a first copy into an empty
// destination and then a second run over the finished copy (a no-change run
// for fsmirror and rsync; cp has none, so its second run copies everything
// again and is labelled so). Tools are interleaved and their order rotates
// from run to run, so machine noise falls on all of them alike. Every
// fsmirror result is checked with testutil.Diff: a fast wrong copy is not a
// result, and the program fails loudly instead of printing it.
//
// Usage:
//
//	go run ./bench/syncbench [-fsmirror PATH] [-dir /dev/shm] [-files 50000] [-dirs 2500] [-runs 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

// A tool is one copier under test.
type tool struct {
	name string
	// second says what the second run over a finished copy does.
	second string
	// argv is the command that copies src's contents into dst.
	argv func(src, dst string) []string
	// strict tools must produce an exact mirror or the benchmark fails;
	// the others are references, checked once as a sanity test of Diff.
	strict bool
}

// sample is one timed command.
type sample struct{ wall, cpu time.Duration }

// result holds every run of one tool.
type result struct {
	tool          tool
	first, second []sample
}

func main() {
	var (
		fsmirrorBin = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir         = flag.String("dir", "/dev/shm", "directory to hold the source and destination trees")
		files       = flag.Int("files", 50_000, "number of files in the source tree")
		dirs        = flag.Int("dirs", 2_500, "number of directories in the source tree")
		runs        = flag.Int("runs", 3, "runs per tool; the median is reported")
		seed        = flag.Int64("seed", 1, "seed of the source tree")
		tools       = flag.String("tools", "fsmirror,rsync,cp", "comma-separated `LIST` of tools to measure")
		keep        = flag.Bool("keep", false, "keep the work directory")
	)
	benchutil.ParseFlags("syncbench",
		"Times fsmirror sync, rsync -a and cp -a copying a tree of many small files,\n"+
			"first into an empty destination, then again over the finished copy.",
		func() bool { return *runs >= 1 && *files >= 0 && *dirs >= 0 })
	cfg := config{
		fsmirror: *fsmirrorBin, dir: *dir, files: *files, dirs: *dirs,
		runs: *runs, seed: *seed, tools: strings.Split(*tools, ","), keep: *keep,
	}
	benchutil.Main("syncbench", func(ctx context.Context) error { return run(ctx, os.Stdout, cfg) })
}

type config struct {
	fsmirror    string
	dir         string
	files, dirs int
	runs        int
	seed        int64
	tools       []string
	keep        bool
}

func run(ctx context.Context, w io.Writer, cfg config) (err error) {
	work, binDir, cleanup, err := benchutil.WorkDirs(w, cfg.dir, "syncbench", cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	tools, err := pickTools(ctx, w, cfg, binDir)
	if err != nil {
		return err
	}
	printMachine(w, cfg.dir)

	src := filepath.Join(work, "src")
	start := time.Now()
	total, err := testutil.SmallFilesTree(src, cfg.files, cfg.dirs, cfg.seed)
	if err != nil {
		return fmt.Errorf("build source tree: %w", err)
	}
	fmt.Fprintf(w, "tree:    %d files in %d dirs, %.1f MB, median size ~5 KiB, seed %d (built in %.1fs)\n\n",
		cfg.files, cfg.dirs, float64(total)/1e6, cfg.seed, time.Since(start).Seconds())

	results := make([]*result, len(tools))
	for i, t := range tools {
		results[i] = &result{tool: t}
	}
	checked := map[string]bool{}
	for r := range cfg.runs {
		for k := range results {
			res := results[(k+r)%len(results)] // rotate the order run by run
			if err := ctx.Err(); err != nil {
				return err
			}
			dst := filepath.Join(work, "dst-"+res.tool.name)
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			first, err := timeCmd(ctx, res.tool.argv(src, dst))
			if err != nil {
				return fmt.Errorf("%s, first copy: %w", res.tool.name, err)
			}
			if err := check(w, res.tool, "first copy", src, dst, checked); err != nil {
				return err
			}
			second, err := timeCmd(ctx, res.tool.argv(src, dst))
			if err != nil {
				return fmt.Errorf("%s, second run: %w", res.tool.name, err)
			}
			if err := check(w, res.tool, "second run", src, dst, checked); err != nil {
				return err
			}
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			res.first = append(res.first, first)
			res.second = append(res.second, second)
			fmt.Fprintf(w, "run %d/%d  %-9s first copy %7.3fs (cpu %7.3fs)   %-26s %7.3fs (cpu %7.3fs)\n",
				r+1, cfg.runs, res.tool.name, first.wall.Seconds(), first.cpu.Seconds(),
				res.tool.second, second.wall.Seconds(), second.cpu.Seconds())
		}
	}
	fmt.Fprintln(w)
	report(w, results, cfg.runs)
	for _, t := range tools {
		if t.strict {
			fmt.Fprintf(w, "\n%s: every result checked with testutil.Diff and found an exact mirror\n"+
				"(%s).\n", t.name, benchutil.CheckedAttrs())
		}
	}
	return nil
}

// pickTools resolves the tools named in cfg, building fsmirror into binDir
// if needed.
func pickTools(ctx context.Context, w io.Writer, cfg config, binDir string) ([]tool, error) {
	names, err := benchutil.ToolNames(cfg.tools)
	if err != nil {
		return nil, err
	}
	var tools []tool
	for _, name := range names {
		switch name {
		case "fsmirror":
			bin, err := benchutil.FsmirrorBinary(ctx, w, cfg.fsmirror, binDir,
				"(give a binary with -fsmirror, or leave fsmirror out with -tools rsync,cp)")
			if err != nil {
				return nil, err
			}
			tools = append(tools, tool{
				name: "fsmirror", second: "no-change run", strict: true,
				argv: func(src, dst string) []string { return []string{bin, "sync", src, dst} },
			})
		case "rsync":
			bin, err := exec.LookPath("rsync")
			if err != nil {
				return nil, fmt.Errorf("rsync: %w (drop it with -tools)", err)
			}
			tools = append(tools, tool{
				name: "rsync", second: "no-change run",
				argv: func(src, dst string) []string { return []string{bin, "-a", src + "/", dst + "/"} },
			})
		case "cp":
			bin, err := exec.LookPath("cp")
			if err != nil {
				return nil, fmt.Errorf("cp: %w (drop it with -tools)", err)
			}
			tools = append(tools, tool{
				name: "cp", second: "cp -a again (copies all)",
				argv: func(src, dst string) []string { return []string{bin, "-a", src + "/.", dst + "/"} },
			})
		default:
			return nil, fmt.Errorf("unknown tool %q in -tools; known: fsmirror, rsync, cp", name)
		}
	}
	return tools, nil
}

// timeCmd times argv with benchutil.TimeCmd.
func timeCmd(ctx context.Context, argv []string) (sample, error) {
	wall, cpu, err := benchutil.TimeCmd(ctx, argv)
	return sample{wall: wall, cpu: cpu}, err
}

// check compares dst with src. A strict tool's every result must be an
// exact mirror; a reference tool is checked after its first copy only, once,
// and a difference there is reported as a warning, since it says more about
// the checker or the machine than about fsmirror.
func check(w io.Writer, t tool, phase, src, dst string, checked map[string]bool) error {
	if !t.strict && (checked[t.name] || phase != "first copy") {
		return nil
	}
	checked[t.name] = true
	diffs, err := testutil.Diff(src, dst, testutil.DiffOptions{Owner: os.Geteuid() == 0})
	if err != nil {
		return fmt.Errorf("check %s's %s: %w", t.name, phase, err)
	}
	if len(diffs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s's %s is not a mirror of the source: %d differences:\n\t%s",
		t.name, phase, len(diffs), benchutil.FormatDiffs(diffs))
	if t.strict {
		return errors.New("WRONG RESULT: " + msg + "\nno timings are reported for a wrong mirror")
	}
	fmt.Fprintln(w, "warning:", msg)
	return nil
}
