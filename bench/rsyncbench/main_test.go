package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLuaQuote(t *testing.T) {
	for in, want := range map[string]string{
		`/srv/www`:      `"/srv/www"`,
		`a"b\c`:         `"a\"b\\c"`,
		"new\nline\x7f": `"new\010line\127"`,
	} {
		if got := luaQuote(in); got != want {
			t.Errorf("luaQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDirHas(t *testing.T) {
	dir := t.TempDir()
	buf := make([]byte, 4096)
	want := map[string]int64{"a": 1, "b": 2}
	if dirHas(filepath.Join(dir, "missing"), want, buf) {
		t.Error("a missing directory has the files")
	}
	os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644)
	if dirHas(dir, want, buf) {
		t.Error("a directory with one of two files has them")
	}
	os.WriteFile(filepath.Join(dir, "b"), []byte("x"), 0o644)
	if dirHas(dir, want, buf) {
		t.Error("a file with the wrong size counts")
	}
	os.WriteFile(filepath.Join(dir, "b"), []byte("xy"), 0o644)
	if !dirHas(dir, want, buf) {
		t.Error("the directory has the files, dirHas says no")
	}
	os.WriteFile(filepath.Join(dir, "c"), nil, 0o644)
	if dirHas(dir, want, buf) {
		t.Error("an extra file counts")
	}
}

// TestRun is a smoke test of the benchmark with tiny sizes, against the
// real fsmirror (built from ./cmd/fsmirror) and lsyncd when it is there.
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
