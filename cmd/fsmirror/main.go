// Command fsmirror keeps destination trees equal to source trees.
//
// This package is the only one that prints: it turns flags into options for
// the library packages, reports what they tell it, and maps the outcome to
// the exit code (0 done, 1 some paths failed or trees differ, 2 usage or
// setup error).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitPartial = 1 // some paths failed, or verify found differences
	exitSetup   = 2 // usage or setup error: nothing was done
)

// exitError carries an exit code with the message printed for it. A nil err
// exits quietly with code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// setupErr is a usage or setup error: exit 2.
func setupErr(format string, args ...any) error {
	return &exitError{code: exitSetup, err: fmt.Errorf(format, args...)}
}

func main() {
	// fsmirror's garbage is small and short-lived (listings, paths): trading
	// some memory for fewer collections is a clear win on big trees.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "fsmirror: "+ee.err.Error())
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "fsmirror: interrupted")
		return exitPartial
	}
	// Cobra's own errors, such as an unknown command: one line, like ours.
	msg := err.Error()
	if head, suggestions, ok := strings.Cut(msg, "\n\nDid you mean this?\n"); ok {
		msg = head + "; did you mean " + strings.Join(strings.Fields(suggestions), " or ") + "?"
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if !strings.Contains(msg, "--help") {
		msg += " (see 'fsmirror --help')"
	}
	fmt.Fprintln(stderr, "fsmirror: "+msg)
	return exitSetup
}

// usageArgs makes the error of an argument count check a usage error that
// shows the command's usage line, on the one line every error gets.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return setupErr("%v; usage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "fsmirror",
		Short: "Keep destination trees equal to source trees",
		Long: `fsmirror keeps one or more destination trees equal to a source tree.

  fsmirror sync   SRC... DEST   make DEST a mirror of SRC, then exit
  fsmirror watch  SRC... DEST   mirror, then keep mirroring every change until stopped
  fsmirror verify SRC DEST      compare two trees; exit 0 equal, 1 different, 2 error
  fsmirror agent --root DIR     the far end of an SSH destination (started by fsmirror)
  fsmirror serve --listen ADDR  a receiver for fsmirror:// destinations (TCP, TLS 1.3)

DEST is a local directory, [user@]host:path, ssh://[user@]host[:port]/path or
fsmirror://host:port/path (a receiver; see 'fsmirror serve --help').

Exit codes: 0 done, 1 finished but some paths failed (each is reported),
2 usage or setup error (nothing was written).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return setupErr("%v (see 'fsmirror %s --help')", err, c.Name())
	})
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(newSyncCmd(stdout, stderr), newWatchCmd(stdout, stderr), newVerifyCmd(stdout, stderr),
		newAgentCmd(os.Stdin, stdout, stderr), newServeCmd(stdout, stderr))
	return root
}
