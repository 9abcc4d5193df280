package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseReady(t *testing.T) {
	for _, tt := range []struct {
		line          string
		how           string
		took          time.Duration
		written, errs int
		ok            bool
	}{
		{"fsmirror: watching /s (3 directories), mirroring to /d; initial sync from the index took 12ms, 0 files written, 0 errors",
			fromIndex, 12 * time.Millisecond, 0, 0, true},
		{"fsmirror: watching /a b; c (2500 directories), mirroring to /d e; initial sync by comparing the destination took 1.5s, 100 files written, 2 errors",
			byCompare, 1500 * time.Millisecond, 100, 2, true},
		{"fsmirror: watching /s (3 directories), mirroring to /d; initial sync from the index took 0s, 0 files written, 0 errors",
			fromIndex, 0, 0, 0, true},
		{"fsmirror: watching /s (3 directories), mirroring to /d; initial sync took 12ms", "", 0, 0, 0, false},
		{"fsmirror: the last run on /d did not stop cleanly; comparing the whole destination", "", 0, 0, 0, false},
	} {
		how, took, written, errs, ok := parseReady(tt.line)
		if how != tt.how || took != tt.took || written != tt.written || errs != tt.errs || ok != tt.ok {
			t.Errorf("parseReady(%q) = %q, %v, %d, %d, %v; want %q, %v, %d, %d, %v",
				tt.line, how, took, written, errs, ok, tt.how, tt.took, tt.written, tt.errs, tt.ok)
		}
	}
}

func TestPick(t *testing.T) {
	from := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	got := pick(rand.New(rand.NewPCG(1, 2)), from, 5)
	if len(got) != 5 {
		t.Fatalf("pick 5 gave %d: %q", len(got), got)
	}
	seen := map[string]bool{}
	for _, s := range got {
		if seen[s] || !slices.Contains(from, s) {
			t.Errorf("pick gave %q: repeated or not in the list (%q)", s, got)
		}
		seen[s] = true
	}
	if again := pick(rand.New(rand.NewPCG(1, 2)), from, 5); !slices.Equal(again, got) {
		t.Errorf("pick with the same seed gave %q, then %q", got, again)
	}
	if all := pick(rand.New(rand.NewPCG(1, 2)), from, 20); len(all) != len(from) {
		t.Errorf("pick of more than there are gave %d, want %d", len(all), len(from))
	}
}

func TestRewrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_600_000_000, 0)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(p, rand.New(rand.NewPCG(3, 4))); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(data, []byte("old content")) || len(data) <= len("old content") {
		t.Errorf("content not rewritten with a new size: %q", data)
	}
	if st.Mode&0o777 != 0o444 {
		t.Errorf("mode %o, want 444 kept", st.Mode&0o777)
	}
	if st.Mtim.Sec == old.Unix() {
		t.Error("mtime not changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("rewrite left %d entries in the directory, want 1", len(ents))
	}
}

func fakeFsmirror(t *testing.T, copyCmd string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fsmirror")
	script := `#!/bin/sh
state=$3 src=$4 dst=$5
mkdir -p "$state" "$dst"
how="by comparing the destination"
[ -e "$state/clean" ] && how="from the index"
rm -f "$state/clean"
` + copyCmd + ` || exit 1
trap 'touch "$state/clean"; exit 0' TERM
echo "fsmirror: watching $src (1 directories), mirroring to $dst; initial sync $how took 1ms, 0 files written, 0 errors" >&2
while :; do sleep 0.05; done
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// exactCopy makes DST an exact copy of SRC. (rsync -a does not: after it
// updates a file in a directory, it leaves the directory's mtime as the
// update made it.)
const exactCopy = `rm -rf "$dst" && mkdir "$dst" && cp -a "$src/." "$dst/"`

func benchRun(t *testing.T, fsmirror string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("no rsync")
	}
	var out strings.Builder
	err := run(context.Background(), &out, config{
		fsmirror: fsmirror, dir: t.TempDir(), files: 200, dirs: 10, runs: 2, changes: 10,
		seed: 1, timeout: time.Minute,
	})
	return out.String(), err
}

func wantReport(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"machine:", "dir:", "tree:", "setup:", "run 1/2", "run 2/2", "median of 2 runs",
		"(i)   clean stop, no change", "(ii)  clean stop, 10 changed", "(iii) after kill -9",
		"rsync -a SRC/ DST/, no change", "ratio to rsync's no-change run", "of which initial sync",
		"(i) restart, no change ≤ 0.3× rsync no-change", "exact mirror",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "PASS") && !strings.Contains(out, "MISS") {
		t.Errorf("no verdict:\n%s", out)
	}
}

func TestRun_fake(t *testing.T) {
	out, err := benchRun(t, fakeFsmirror(t, exactCopy))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	wantReport(t, out)
}

func TestRun_wrongMirror(t *testing.T) {
	// cp -r keeps neither modes nor times: fast, and wrong.
	out, err := benchRun(t, fakeFsmirror(t, `cp -r "$src/." "$dst/"`))
	if err == nil || !strings.Contains(err.Error(), "WRONG RESULT") {
		t.Fatalf("run with a wrong fsmirror: err = %v, want WRONG RESULT\n%s", err, out)
	}
	if strings.Contains(out, "PASS") || strings.Contains(out, "MISS") {
		t.Errorf("timings reported for a wrong mirror:\n%s", out)
	}
}

func TestRun_untrustedIndex(t *testing.T) {
	// A stand-in that always compares: restart (i) does not measure what
	// it claims.
	fake := fakeFsmirror(t, exactCopy)
	b, err := os.ReadFile(fake)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`[ -e "$state/clean" ] && how="from the index"`), []byte(":"), 1)
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := benchRun(t, fake)
	if err == nil || !strings.Contains(err.Error(), "not from the index") {
		t.Fatalf("run with an fsmirror that never trusts its index: err = %v, want a complaint\n%s", err, out)
	}
}

func TestRun_real(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fsmirror")
	}
	bin := filepath.Join(t.TempDir(), "fsmirror")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/fsmirror/fsmirror/cmd/fsmirror")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fsmirror: %v\n%s", err, out)
	}
	out, err := benchRun(t, bin)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	wantReport(t, out)
	t.Logf("\n%s", out)
}
