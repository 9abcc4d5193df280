package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/target/all"
	"github.com/fsmirror/fsmirror/target/local"
	"github.com/fsmirror/fsmirror/wire"
)

func newAgentCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var root string
	var create bool
	cmd := &cobra.Command{
		Use:   "agent --root DIR",
		Short: "The far end of an SSH destination: apply ops under DIR, speaking on stdin/stdout",
		Long: `Serve fsmirror's agent protocol on standard input and output, applying the ops
it receives below DIR. fsmirror starts it through ssh for a destination
[user@]host:path; there is no need to run it by hand.

Every path it receives must be clean and relative and is resolved below DIR
without following symlinks; a peer that sends anything else, or a frame that
does not decode, is refused and the connection closed. Nothing is written
outside DIR. Messages go to standard error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), root, create, stdin, stdout, stderr)
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "the destination directory (required)")
	cmd.Flags().BoolVar(&create, "create", false, "create DIR (and its parents) if it is missing")
	return cmd
}

func runAgent(ctx context.Context, root string, create bool, stdin io.Reader, stdout, stderr io.Writer) error {
	if root == "" {
		return setupErr("agent: --root is required")
	}
	if create {
		if err := all.CreateDir(root); err != nil {
			return setupErr("agent: %v", err)
		}
	}
	store, err := local.New(root)
	if err != nil {
		return setupErr("agent: %v", err)
	}
	defer store.Close()
	unlock, err := lockRoot(ctx, root, stderr)
	if err != nil {
		return setupErr("agent: %v", err)
	}
	defer unlock()
	srv := &wire.Server{Store: store, Version: versionString()}
	if err := srv.Serve(ctx, stdin, stdout); err != nil {
		return &exitError{code: exitPartial, err: fmt.Errorf("agent: %w", err)}
	}
	return nil
}

// lockWait bounds how long an agent waits for another one on the same
// directory to finish.
var lockWait = 30 * time.Second

// lockRoot takes an exclusive lock on the destination directory (flock on
// the directory itself: nothing is written into it), so that one agent at a
// time writes there. After a dropped connection, the agent of the old one
// may still be applying requests it had already received; the new agent
// waits for it, so that nothing old is applied after something new.
func lockRoot(ctx context.Context, root string, stderr io.Writer) (unlock func(), err error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	deadline := time.Now().Add(lockWait)
	said := false
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", root, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("another fsmirror agent is still writing to %s after %v", root, lockWait)
		}
		if !said && time.Until(deadline) < lockWait-time.Second {
			fmt.Fprintf(stderr, "fsmirror agent: waiting for another agent writing to %s to finish\n", root)
			said = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// versionString names this build: "fsmirror <module version> (<vcs revision>)".
func versionString() string {
	v := "fsmirror (devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = "fsmirror " + bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
