package main

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/wire"
)

// procConn is an agent process's standard input and output.
type procConn struct {
	io.Reader
	io.WriteCloser
	cmd *exec.Cmd
}

func (p *procConn) Close() error {
	p.WriteCloser.Close()
	return p.cmd.Wait()
}

func startAgent(t *testing.T, root string, stderr io.Writer) *procConn {
	t.Helper()
	cmd := fsmirrorCmd(t, context.Background(), "agent", "--root", root)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return &procConn{Reader: out, WriteCloser: in, cmd: cmd}
}

// TestAgent_OneAtATime checks that a second agent on the same directory
// waits until the first has finished: after a dropped connection, the old
// agent may still apply requests it had received, and nothing old may be
// applied after something new.
func TestAgent_OneAtATime(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := wire.NewClient(ctx, startAgent(t, root, io.Discard), wire.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	second := make(chan error, 1)
	go func() {
		c, err := wire.NewClient(ctx, startAgent(t, root, &stderr), wire.ClientOptions{})
		if err == nil {
			defer c.Close()
		}
		second <- err
	}()
	// The second agent says it waits (after a second); it must not have
	// answered by then, nor until the first ends.
	for !strings.Contains(stderr.String(), "waiting for another agent") {
		select {
		case err := <-second:
			t.Fatalf("a second agent answered while the first still ran (err %v)", err)
		case <-ctx.Done():
			t.Fatalf("the second agent neither answered nor said it waits: %q", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case err := <-second:
		t.Fatalf("a second agent answered while the first still ran (err %v)", err)
	default:
	}
	first.Close()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("the second agent, once the first ended: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the second agent never started after the first ended")
	}
}
