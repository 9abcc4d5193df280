package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * ms // 100ms down to 1ms
	}
	for _, tt := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, timedOut},
		{[]time.Duration{3 * ms}, 50, 3 * ms},
		{[]time.Duration{3 * ms}, 99, 3 * ms},
		{[]time.Duration{5 * ms, 1 * ms, 3 * ms}, 50, 3 * ms},
		{[]time.Duration{4 * ms, 1 * ms, 2 * ms, 100 * ms}, 50, 2 * ms}, // nearest rank: the lower middle
		{[]time.Duration{4 * ms, 1 * ms, 2 * ms, 100 * ms}, 100, 100 * ms},
		{hundred, 50, 50 * ms},
		{hundred, 99, 99 * ms},
		{hundred, 100, 100 * ms},
		{hundred, 0, 1 * ms},
		{[]time.Duration{timedOut, 1 * ms, 2 * ms}, 50, 2 * ms},
		{[]time.Duration{timedOut, 1 * ms, 2 * ms}, 99, timedOut},
	} {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
	in := []time.Duration{3, 1, 2}
	percentile(in, 50)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("percentile sorted its argument: %v", in)
	}
	if n := countTimeouts([]time.Duration{timedOut, 1, timedOut}); n != 2 {
		t.Errorf("countTimeouts = %d, want 2", n)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{412 * time.Microsecond, "0.412ms"},
		{9999 * time.Microsecond, "9.999ms"},
		{42100 * time.Microsecond, "42.1ms"},
		{1500 * time.Millisecond, "1.500s"},
	} {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := fmtLat(timedOut); got != "TIMEOUT" {
		t.Errorf("fmtLat(timedOut) = %q", got)
	}
	for _, tt := range []struct {
		a, b cell
		want string
	}{
		{cell{d: time.Millisecond}, cell{d: 4 * time.Millisecond}, "0.25×"},
		{cell{d: time.Millisecond}, cell{d: 0}, "-"},
		{cell{status: "TIMEOUT"}, cell{d: time.Second}, "-"},
		{cell{d: time.Second}, cell{status: "TIMEOUT"}, "-"},
	} {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 120 0 0 0 250 30 7 3 20 0 4 0 1234 0 0\n"
	cpu, err := parseStatCPU(line)
	if err != nil || cpu != 2900*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.9s (290 ticks)", cpu, err)
	}
	if pp, ok := parseStatPPID(line); !ok || pp != 17 {
		t.Errorf("parseStatPPID = %d, %v; want 17", pp, ok)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 0 0 0 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if _, err := parseStatCPU(string(b)); err != nil {
		t.Errorf("parseStatCPU(/proc/self/stat): %v", err)
	}
	if pp, ok := parseStatPPID(string(b)); !ok || pp != os.Getppid() {
		t.Errorf("parseStatPPID(/proc/self/stat) = %d, %v; want %d", pp, ok, os.Getppid())
	}
}

func TestDirHas(t *testing.T) {
	dir := t.TempDir()
	want := map[string]int64{"a": 3, "b": 5}
	buf := make([]byte, 64) // small: several getdents calls
	if dirHas(dir, want, buf) {
		t.Fatal("empty directory has the files")
	}
	os.WriteFile(filepath.Join(dir, "a"), []byte("abc"), 0o644)
	os.WriteFile(filepath.Join(dir, ".b.XYZ"), []byte("hello"), 0o644) // rsync's temporary
	if dirHas(dir, want, buf) {
		t.Fatal("a temporary counts as a file")
	}
	os.Rename(filepath.Join(dir, ".b.XYZ"), filepath.Join(dir, "b"))
	if !dirHas(dir, want, buf) {
		t.Fatal("complete directory not recognised")
	}
	os.WriteFile(filepath.Join(dir, "b"), []byte("hell"), 0o644)
	if dirHas(dir, want, buf) {
		t.Fatal("a short file counts")
	}
	for i := range 20 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("extra-%d", i)), nil, 0o644)
	}
	if n, err := countEntries(dir, buf); n != 22 || err != nil {
		t.Errorf("countEntries = %d, %v; want 22", n, err)
	}
	if dirHas(filepath.Join(dir, "missing"), want, buf) {
		t.Fatal("a missing directory has the files")
	}
}

func TestLogWriter(t *testing.T) {
	w := newLogWriter(func(l string) bool { return strings.HasPrefix(l, "ready") })
	w.Write([]byte("starting\nrea"))
	select {
	case <-w.ready:
		t.Fatal("ready before the line")
	default:
	}
	w.Write([]byte("dy now\nmore\n"))
	select {
	case <-w.ready:
	default:
		t.Fatal("not ready after the line")
	}
	if got, want := w.tail(2), "\t...\n\tready now\n\tmore"; got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
}

// fakeFsmirror writes an executable script standing in for fsmirror, run as
// "fsmirror watch SRC DEST".
func fakeFsmirror(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fsmirror")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// tiny is a configuration small enough for a test.
func tiny(t *testing.T, fsmirror string, tools ...string) config {
	cfg := defaultConfig()
	cfg.fsmirror, cfg.dir, cfg.tools = fsmirror, t.TempDir(), tools
	cfg.latFiles, cfg.burstFiles, cfg.bigMiB = 5, 50, 1
	cfg.idle, cfg.settle, cfg.timeout = 100*time.Millisecond, 50*time.Millisecond, 5*time.Second
	return cfg
}

// pollingMirror is a fake fsmirror watch: rsync in a loop. It is an exact
// mirror (--modify-window=-1: mtimes compared to the ns, so directory
// times are fixed too), just a slow one that copies renamed files again.
const pollingMirror = `sync() { rsync -a --delete --modify-window=-1 "$2/" "$3/"; }
sync "$@" || exit 1
echo "fsmirror: watching $2" >&2
trap 'exit 0' TERM
while :; do sync "$@"; sleep 0.02; done`

func needRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("no rsync for the fake fsmirror")
	}
}

func TestRun_fake(t *testing.T) {
	needRsync(t)
	var out strings.Builder
	err := run(context.Background(), &out, tiny(t, fakeFsmirror(t, pollingMirror), "fsmirror"))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"machine:", "dir:", "(a) latency", "(b) burst", "(c) rename", "(d) CPU while idle",
		"target (fsmirror)", "(a) latency median ≤ 2ms", "new (copied again)", "exact mirror",
		"sizes differ from the defaults",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "WRONG") || strings.Contains(out.String(), "TIMEOUT") {
		t.Errorf("unexpected WRONG or TIMEOUT:\n%s", out.String())
	}
}

func TestRun_wrongMirror(t *testing.T) {
	needRsync(t)
	// cp -r keeps no mtimes and deletes nothing: a wrong mirror.
	fake := fakeFsmirror(t, `cp -r "$2/." "$3/"; echo "fsmirror: watching" >&2
trap 'exit 0' TERM
while :; do cp -r "$2/." "$3/"; sleep 0.02; done`)
	cfg := tiny(t, fake, "fsmirror")
	cfg.timeout, cfg.converge = time.Second, 200*time.Millisecond
	var out strings.Builder
	err := run(context.Background(), &out, cfg)
	if err == nil || !strings.Contains(err.Error(), "WRONG RESULT") {
		t.Fatalf("run with a wrong fsmirror: err = %v, want WRONG RESULT\n%s", err, out.String())
	}
	for _, want := range []string{"WRONG RESULT: (a)", "MISS (WRONG RESULT)", "TIMEOUT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRun_notReady(t *testing.T) {
	cfg := tiny(t, fakeFsmirror(t, "exec sleep 60"), "fsmirror")
	cfg.timeout = 300 * time.Millisecond
	var out strings.Builder
	if err := run(context.Background(), &out, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"TIMEOUT", "MISS", "was not ready", "signal: terminated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "PASS") {
		t.Errorf("a target passed without a measurement:\n%s", out.String())
	}
}

// TestRun_fsmirror is a smoke test of the real fsmirror, built from
// ./cmd/fsmirror, with tiny sizes.
func TestRun_fsmirror(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fsmirror")
	}
	var out strings.Builder
	if err := run(context.Background(), &out, tiny(t, "", "fsmirror")); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "exact mirror") {
		t.Errorf("output lacks the verdict of testutil.Diff:\n%s", out.String())
	}
}

// TestRun_lsyncd is a smoke test of the lsyncd side with tiny sizes.
func TestRun_lsyncd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs lsyncd")
	}
	for _, bin := range []string{"lsyncd", "rsync"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install lsyncd rsync)", bin)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), &out, tiny(t, "", "lsyncd")); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"lsyncd:", "Version", "(a) lsyncd", "(c) lsyncd"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TIMEOUT") || strings.Contains(out.String(), "notes on lsyncd") {
		t.Errorf("lsyncd did not run cleanly:\n%s", out.String())
	}
}
