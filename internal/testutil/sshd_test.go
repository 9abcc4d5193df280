package testutil

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSSHD_Run(t *testing.T) {
	s := StartSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Run(ctx, "echo hello-$((20+22))")
	if err != nil {
		t.Fatalf("ssh: %v: %s\nsshd log: %s", err, out, s.Log())
	}
	if got := strings.TrimSpace(string(out)); got != "hello-42" {
		t.Fatalf("ssh ran the command and printed %q, want hello-42", got)
	}
	s.Stop()
	if out, err := s.Run(ctx, "true"); err == nil {
		t.Fatalf("ssh to a stopped sshd succeeded: %s", out)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := s.Run(ctx, "true"); err != nil {
		t.Fatalf("ssh after restart: %v: %s", err, out)
	}
}
