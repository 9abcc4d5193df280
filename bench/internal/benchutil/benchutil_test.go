package benchutil

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedianOf(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 100 * s}, 3 * s},
	} {
		in := slices.Clone(tt.in)
		if got := MedianOf(tt.in); got != tt.want {
			t.Errorf("MedianOf(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("MedianOf reordered its argument: %v, was %v", tt.in, in)
		}
	}
}

func TestFormat(t *testing.T) {
	if got := Secs(1234567 * time.Microsecond); got != "1.235s" {
		t.Errorf("Secs = %q", got)
	}
	if got := Ratio(time.Second, 4*time.Second); got != "0.25×" {
		t.Errorf("Ratio = %q", got)
	}
	if got := Ratio(time.Second, 0); got != "-" {
		t.Errorf("Ratio(_, 0) = %q", got)
	}
	if Verdict(true) != "PASS" || Verdict(false) != "MISS" {
		t.Errorf("Verdict(true), Verdict(false) = %q, %q", Verdict(true), Verdict(false))
	}
	if got := FirstLine([]byte("rsync  version 3.2.7\nmore\n")); got != "rsync  version 3.2.7" {
		t.Errorf("FirstLine = %q", got)
	}
	if got := FirstLine("\n  TIMEOUT: not ready \nits output"); got != "TIMEOUT: not ready" {
		t.Errorf("FirstLine after a blank line = %q", got)
	}
}

func TestFormatDiffs(t *testing.T) {
	if got := FormatDiffs([]string{"a", "b"}); got != "a\n\tb" {
		t.Errorf("FormatDiffs(2) = %q", got)
	}
	var many []string
	for range 23 {
		many = append(many, "x")
	}
	got := FormatDiffs(many)
	if want := strings.Repeat("x\n\t", 20) + "... and 3 more"; got != want {
		t.Errorf("FormatDiffs(23) = %q, want %q", got, want)
	}
}

func TestMachine(t *testing.T) {
	if Kernel() == "" || CPUModel() == "" {
		t.Errorf("Kernel() = %q, CPUModel() = %q", Kernel(), CPUModel())
	}
	if got := FSType(filepath.Join(t.TempDir(), "missing")); !strings.HasPrefix(got, "unknown filesystem (") {
		t.Errorf("FSType(missing) = %q", got)
	}
}

func TestWorkDirs(t *testing.T) {
	for _, keep := range []bool{false, true} {
		var out strings.Builder
		work, binDir, cleanup, err := WorkDirs(&out, t.TempDir(), "benchutiltest", keep)
		if err != nil {
			t.Fatal(err)
		}
		if err := cleanup(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(binDir); !os.IsNotExist(err) {
			t.Errorf("keep=%v: binary directory %s left: %v", keep, binDir, err)
		}
		_, err = os.Stat(work)
		if kept := err == nil; kept != keep {
			t.Errorf("keep=%v: work directory kept = %v", keep, kept)
		}
		if said := strings.Contains(out.String(), "work directory "+work+" is kept"); said != keep {
			t.Errorf("keep=%v: output %q", keep, out.String())
		}
	}
}

func TestFsmirrorBinary_given(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fsmirror")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := FsmirrorBinary(context.Background(), io.Discard, bin, t.TempDir(), "hint")
	if err != nil || got != bin {
		t.Errorf("FsmirrorBinary(%s) = %q, %v", bin, got, err)
	}
	if _, err := FsmirrorBinary(context.Background(), io.Discard, bin+"-missing", t.TempDir(), "hint"); err == nil {
		t.Error("FsmirrorBinary of a missing file: no error")
	}
}

func TestTimeCmd(t *testing.T) {
	wall, _, err := TimeCmd(context.Background(), []string{"sh", "-c", "sleep 0.05"})
	if err != nil || wall < 50*time.Millisecond {
		t.Errorf("TimeCmd(sleep 0.05) = %v, %v", wall, err)
	}
	_, _, err = TimeCmd(context.Background(), []string{"sh", "-c", "echo cannot do it >&2; exit 1"})
	if err == nil || !strings.Contains(err.Error(), "cannot do it") {
		t.Errorf("TimeCmd of a failing command: %v, want its output", err)
	}
}

func TestLastLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 2, "(no output)"},
		{"\n", 2, "(no output)"},
		{"a\nb\n", 2, "a\nb"},
		{"a\nb\nc\n", 2, "...\nb\nc"},
	} {
		if got := LastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestLsyncdConfig(t *testing.T) {
	if got := LsyncdConfig("/s", "/d", "CloseWrite"); got != `settings { nodaemon = true, insist = true, inotifyMode = "CloseWrite" } sync { default.rsync, source = "/s", target = "/d", delay = 0 }` {
		t.Errorf("LsyncdConfig = %s", got)
	}
}
