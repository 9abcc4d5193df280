package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func fakeFsmirror(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fsmirror")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func benchRun(t *testing.T, fsmirror string) (string, error) {
	t.Helper()
	for _, bin := range []string{"rsync", "cp"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip("no " + bin)
		}
	}
	var out strings.Builder
	err := run(context.Background(), &out, config{
		fsmirror: fsmirror, dir: t.TempDir(), files: 100, dirs: 5, runs: 2, seed: 1,
		tools: []string{"fsmirror", "rsync", "cp"},
	})
	return out.String(), err
}

func TestRun(t *testing.T) {
	// rsync -a is an exact mirror of the tree, so it can stand in for a
	// correct fsmirror.
	out, err := benchRun(t, fakeFsmirror(t, `exec rsync -a "$2/" "$3/"`))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"machine:", "dir:", "median of 2 runs", "fsmirror/rsync", "fsmirror/cp",
		"first copy ≤ 0.5× rsync", "first copy ≤ 1.0× cp", "no-change ≤ 0.5× rsync",
		"cp -a again (copies all)", "exact mirror",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warning") {
		t.Errorf("a reference tool's copy was found wrong:\n%s", out)
	}
}

func TestRun_wrongMirror(t *testing.T) {
	// cp -r keeps neither modes nor times: fast, and wrong.
	out, err := benchRun(t, fakeFsmirror(t, `exec cp -r "$2/." "$3/"`))
	if err == nil || !strings.Contains(err.Error(), "WRONG RESULT") {
		t.Fatalf("run with a wrong fsmirror: err = %v, want WRONG RESULT\n%s", err, out)
	}
	if strings.Contains(out, "PASS") || strings.Contains(out, "MISS") {
		t.Errorf("timings reported for a wrong mirror:\n%s", out)
	}
}

func TestRun_failingTool(t *testing.T) {
	out, err := benchRun(t, fakeFsmirror(t, "echo cannot do it >&2; exit 1"))
	if err == nil || !strings.Contains(err.Error(), "cannot do it") {
		t.Fatalf("run with a failing fsmirror: err = %v, want its message\n%s", err, out)
	}
}
