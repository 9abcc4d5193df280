package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// manDir holds the man pages generated from the command definitions, for
// packagers: `go test ./cmd/fsmirror -run TestManPages -update` rewrites
// them, and this test fails while they are out of date.
var manDir = filepath.Join("..", "..", "dist", "man")

func TestManPages(t *testing.T) {
	out := t.TempDir()
	root := newRootCmd(&app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	root.DisableAutoGenTag = true
	// Defaults that depend on the machine or the environment are written
	// as the help says they are decided.
	var fix func(c *cobra.Command)
	fix = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch f.Name {
			case "workers":
				f.DefValue = "2 per CPU, at least 4"
			case "state-dir":
				if f.DefValue != "" {
					f.DefValue = "$FSMIRROR_STATE_DIR, else /var/lib/fsmirror for root, else ~/.local/state/fsmirror"
				}
			default: // paths in the state directory (serve's key)
				if sd := os.Getenv("FSMIRROR_STATE_DIR"); sd != "" {
					f.DefValue = strings.ReplaceAll(f.DefValue, sd, "STATE_DIR")
				}
			}
		})
		for _, sub := range c.Commands() {
			fix(sub)
		}
	}
	fix(root)
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	header := &doc.GenManHeader{Title: "FSMIRROR", Section: "1", Source: "fsmirror", Manual: "fsmirror manual", Date: &date}
	if err := doc.GenManTree(root, header, out); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(out, "*.1"))
	if len(pages) < 10 {
		t.Fatalf("only %d man pages generated", len(pages))
	}
	if *update {
		os.RemoveAll(manDir)
		if err := os.MkdirAll(manDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pages {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(manDir, filepath.Base(p))
		if *update {
			if err := os.WriteFile(name, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is out of date (%v): run go test ./cmd/fsmirror -run TestManPages -update", name, err)
		}
	}
	if page, err := os.ReadFile(filepath.Join(out, "fsmirror-run.1")); err != nil || !strings.Contains(string(page), "SIGHUP") {
		t.Errorf("fsmirror-run.1 does not describe run: %v", err)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := mustRun(t, 0, "completion", shell)
		if !strings.Contains(r.stdout, "fsmirror") || len(r.stdout) < 1000 {
			t.Errorf("completion %s: %d bytes:\n%s", shell, len(r.stdout), tail(r.stdout, 10))
		}
	}
	r := mustRun(t, 0, "__complete", "st")
	for _, want := range []string{"start", "status", "stop"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completing \"st\" does not offer %s:\n%s", want, r.stdout)
		}
	}
}
