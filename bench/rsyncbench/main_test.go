package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke test builds fsmirror and runs a daemon")
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync is not installed: the benchmark needs it for the daemon")
	}
	tools := []string{"fsmirror"}
	if _, err := exec.LookPath("lsyncd"); err == nil {
		tools = append(tools, "lsyncd")
	} else {
		t.Log("lsyncd is not installed: fsmirror only")
	}
	cfg := defaultConfig()
	cfg.dir, cfg.tools, cfg.files, cfg.runs, cfg.timeout = t.TempDir(), tools, 200, 1, 60*time.Second
	var out strings.Builder
	if err := run(context.Background(), &out, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"machine:", "load average before:", "median  fsmirror"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if len(tools) == 2 && !strings.Contains(out.String(), "fsmirror/lsyncd") {
		t.Errorf("no ratio:\n%s", out.String())
	}
	if strings.Contains(out.String(), "WRONG") || strings.Contains(out.String(), "TIMEOUT") {
		t.Errorf("unexpected WRONG or TIMEOUT:\n%s", out.String())
	}
}
