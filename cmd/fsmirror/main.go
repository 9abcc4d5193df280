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
	"log/slog"
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

// app is what the commands share: where they write, and the logger of
// their messages, made from the root's flags before a command runs.
type app struct {
	stdout, stderr io.Writer
	logf           logFlags
	log            *slog.Logger
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if a.log == nil { // the flags did not parse
		a.log = newLogger(stderr, "text", false)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			a.log.Error(ee.err.Error())
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		a.log.Error("interrupted")
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
	a.log.Error(msg)
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

func newRootCmd(a *app) *cobra.Command {
	stdout, stderr := a.stdout, a.stderr
	root := &cobra.Command{
		Use:   "fsmirror",
		Short: "Keep destination trees equal to source trees",
		Long: `fsmirror keeps one or more destination trees equal to a source tree.

  fsmirror sync   SRC... DEST   make DEST a mirror of SRC, then exit
  fsmirror watch  SRC... DEST   mirror, then keep mirroring every change until stopped
  fsmirror verify SRC DEST      compare two trees; exit 0 equal, 1 different, 2 error
  fsmirror run    -c FILE       every sync a config file describes, in the foreground
  fsmirror check  -c FILE       check a config file and say what it would do
  fsmirror start  -c FILE       run a config file in the background (stop, status, reload)
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
	root.PersistentFlags().StringVar(&a.logf.format, "log-format", "text", "write messages as `FORMAT`: text (one line each, \"fsmirror: ...\") or json (one object a line)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := a.logf.check(); err != nil {
			return err
		}
		a.log = newLogger(stderr, a.logf.format, false)
		return nil
	}
	root.CompletionOptions.DisableDescriptions = false
	root.AddCommand(newSyncCmd(a), newWatchCmd(a), newVerifyCmd(a), newAgentCmd(os.Stdin, a), newServeCmd(stdout, stderr),
		newRunCmd(a), newCheckCmd(a), newExamplesCmd(a),
		newStartCmd(a), newStopCmd(a), newStatusCmd(a), newReloadCmd(a))
	return root
}
