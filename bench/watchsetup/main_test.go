package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/watch"
)

func TestMakeTree(t *testing.T) {
	root := filepath.Join(t.TempDir(), "src")
	last, files, err := makeTree(root, 250, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	dirs, regular := 0, 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			t.Error(err)
		case p == root:
		case d.IsDir():
			dirs++
		case d.Type().IsRegular():
			regular++
		}
		return nil
	})
	if dirs != 250 || regular != 2 || files != 2 {
		t.Errorf("%d directories and %d files (said %d), want 250 and 2", dirs, regular, files)
	}
	// 10 + 100 + 140: the last one made is on the third level.
	if rel, _ := filepath.Rel(root, last); strings.Count(rel, "/") != 2 {
		t.Errorf("last directory %s is not on the third level", rel)
	}
}

func TestCountLines(t *testing.T) {
	inotify := "pos:\t0\nflags:\t04000\nmnt_id:\t26\ninotify wd:2 ino:1 sdev:fe00000 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:01\ninotify wd:1 ino:2 sdev:fe00000 mask:fce ignored_mask:0\n"
	if n, err := countLines(strings.NewReader(inotify), "inotify wd:", false); err != nil || n != 2 {
		t.Errorf("inotify: %d, %v; want 2", n, err)
	}
	fanotify := "pos:\t0\nflags:\t04002\nmnt_id:\t16\nfanotify flags:c03 event-flags:88000\nfanotify sdev:fe00000 mflags:0 mask:5800030e ignored_mask:0\n"
	if n, err := countLines(strings.NewReader(fanotify), "fanotify ", true); err != nil || n != 1 {
		t.Errorf("fanotify: %d, %v; want 1", n, err)
	}
}

func TestCountWatches(t *testing.T) {
	dir := t.TempDir()
	w, err := watch.New(dir, watch.Options{Backend: watch.Inotify})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n, err := countWatches(os.Getpid(), "inotify"); err != nil || n < 1 {
		t.Errorf("countWatches(self, inotify) = %d, %v; want at least 1", n, err)
	}
}

func TestProcFiles(t *testing.T) {
	status := "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n"
	if got := parseStatusKB(status, "VmRSS:"); got != 6789 {
		t.Errorf("VmRSS = %d", got)
	}
	if got := parseStatusKB(status, "VmSwap:"); got != 0 {
		t.Errorf("VmSwap = %d, want 0 (absent)", got)
	}
	if rss, hwm, err := procMem(os.Getpid()); err != nil || rss <= 0 || hwm < rss {
		t.Errorf("procMem(self) = %d, %d, %v", rss, hwm, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
	if got := setupFigure("fsmirror: /s: 3 directories, inotify, set up in 1.5ms"); got != "1.5ms" {
		t.Errorf("setupFigure = %q", got)
	}
	if got := setupFigure("12:00:00 Normal: recursive startup rsync: /s/ -> /d/"); got != "" {
		t.Errorf("setupFigure of lsyncd's line = %q, want empty", got)
	}
}

// TestRun runs the benchmark on a small tree with the real fsmirror (and
// lsyncd when installed), and checks that the report has every tool's
// figures.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fsmirror and runs the tools")
	}
	bin := filepath.Join(t.TempDir(), "fsmirror")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/fsmirror/fsmirror/cmd/fsmirror").CombinedOutput(); err != nil {
		t.Fatalf("build fsmirror: %v\n%s", err, out)
	}
	cfg := defaultConfig()
	cfg.fsmirror, cfg.dir, cfg.dirs, cfg.idle, cfg.timeout = bin, t.TempDir(), 300, 0, time.Minute
	cfg.tools = []string{"inotify"}
	if os.Geteuid() == 0 {
		cfg.tools = append(cfg.tools, "fanotify")
	}
	if _, err := exec.LookPath("lsyncd"); err == nil {
		cfg.tools = append(cfg.tools, "lsyncd")
	}
	var out bytes.Buffer
	if err := run(context.Background(), &out, cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	report := out.String()
	t.Log(report)
	for _, tool := range cfg.tools {
		name := tool
		if tool != "lsyncd" {
			name = "fsmirror " + tool
		}
		var row string
		for _, l := range strings.Split(report[strings.Index(report, "median of"):], "\n") {
			if strings.HasPrefix(l, name+" ") {
				row = l
				break
			}
		}
		if row == "" || strings.Count(row, " - ") > 1 {
			t.Errorf("no full row for %s in the report", name)
		}
	}
	if strings.Contains(report, "note: ") {
		t.Errorf("the report has notes: a tool did not do what it should")
	}
}
