package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun is a smoke test of the benchmark with tiny sizes, against the
// real fsmirror (built from ./cmd/fsmirror): four receivers, one stopped
// for a second, both ways of stopping it.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke test builds fsmirror and runs five daemons")
	}
	for _, mode := range []string{"term", "pause"} {
		t.Run(mode, func(t *testing.T) {
			c := defaultConfig()
			c.dir, c.rate, c.duration, c.stopFor, c.stopMode, c.burst, c.timeout = t.TempDir(), 100, 3*time.Second, time.Second, mode, 300, 60*time.Second
			var out strings.Builder
			if err := run(context.Background(), &out, c); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			for _, want := range []string{"machine:", "1. steady", "r4 (stopped)", "slowest receiver that stayed up", "2. burst", "exact mirror"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
