package benchutil

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 120 0 0 0 250 30 7 3 20 0 4 0 1234 0 0\n"
	cpu, err := ParseStatCPU(line)
	if err != nil || cpu != 2900*time.Millisecond {
		t.Errorf("ParseStatCPU = %v, %v; want 2.9s (290 ticks)", cpu, err)
	}
	if pp, ok := ParseStatPPID(line); !ok || pp != 17 {
		t.Errorf("ParseStatPPID = %d, %v; want 17", pp, ok)
	}
	for _, bad := range []string{"", "garbage", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 0 0 0 0"} {
		if _, err := ParseStatCPU(bad); err == nil {
			t.Errorf("ParseStatCPU(%q) succeeded", bad)
		}
	}
	if _, ok := ParseStatPPID("garbage"); ok {
		t.Error("ParseStatPPID(garbage) succeeded")
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if _, err := ParseStatCPU(string(b)); err != nil {
		t.Errorf("ParseStatCPU(/proc/self/stat): %v", err)
	}
	if pp, ok := ParseStatPPID(string(b)); !ok || pp != os.Getppid() {
		t.Errorf("ParseStatPPID(/proc/self/stat) = %d, %v; want %d", pp, ok, os.Getppid())
	}
}

func TestLogWriter(t *testing.T) {
	w := &logWriter{match: func(l string) bool { return strings.HasPrefix(l, "ready") }, ready: make(chan struct{})}
	w.Write([]byte("starting\nrea"))
	select {
	case <-w.ready:
		t.Fatal("ready before the line was complete")
	default:
	}
	w.Write([]byte("dy now\nmore\n"))
	select {
	case <-w.ready:
	default:
		t.Fatal("not ready after the ready line")
	}
	if w.readyLine != "ready now" || w.readyAt.IsZero() {
		t.Errorf("ready line %q at %v", w.readyLine, w.readyAt)
	}
	if got, want := w.tail(2), "\t...\n\tready now\n\tmore"; got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
	if got := (&logWriter{}).tail(2); got != "\t(no output)" {
		t.Errorf("tail of nothing = %q", got)
	}
}

func TestDaemon(t *testing.T) {
	ready := func(l string) bool { return l == "ready" }
	clean := func(err error) bool { return err == nil }
	ctx := context.Background()

	t.Run("stop", func(t *testing.T) {
		d, err := StartDaemon("sh", []string{"sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.01; done"}, ready)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WaitReady(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		line, at := d.ReadyLine()
		if line != "ready" || at.Before(d.Started) {
			t.Errorf("ReadyLine = %q, %v; started %v", line, at, d.Started)
		}
		if _, err := d.CPU(); err != nil {
			t.Errorf("CPU: %v", err)
		}
		if note := d.Stop(10*time.Second, clean); note != "" {
			t.Errorf("Stop: %s", note)
		}
		if d.Alive() {
			t.Error("alive after Stop")
		}
	})
	t.Run("kill", func(t *testing.T) {
		d, err := StartDaemon("sh", []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.01; done"}, ready)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WaitReady(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := d.Kill(); err != nil || d.Alive() {
			t.Errorf("Kill: %v, alive %v", err, d.Alive())
		}
		if err := d.Kill(); err != nil {
			t.Errorf("Kill of an exited daemon: %v", err)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		d, err := StartDaemon("sh", []string{"sh", "-c", "echo starting; exec sleep 60"}, ready)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Kill()
		if err := d.WaitReady(ctx, 50*time.Millisecond); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "starting") {
			t.Errorf("WaitReady = %v, want a TIMEOUT with the output", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := d.WaitReady(cctx, time.Minute); !errors.Is(err, context.Canceled) {
			t.Errorf("WaitReady with a done context = %v", err)
		}
		if note := d.Stop(10*time.Second, clean); !strings.Contains(note, "signal: terminated") {
			t.Errorf("Stop of a daemon killed by SIGTERM: %q", note)
		}
	})
	t.Run("exits", func(t *testing.T) {
		d, err := StartDaemon("sh", []string{"sh", "-c", "echo oops; exit 3"}, ready)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WaitReady(ctx, 10*time.Second); err == nil || !strings.Contains(err.Error(), "oops") {
			t.Errorf("WaitReady = %v, want the exit with the output", err)
		}
	})
}
