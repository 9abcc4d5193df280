package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror/target/all"
	"github.com/fsmirror/fsmirror/target/local"
	"github.com/fsmirror/fsmirror/wire"
)

func newAgentCmd(stdin io.Reader, a *app) *cobra.Command {
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
			return runAgent(cmd.Context(), root, create, stdin, a.stdout, a.stderr)
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
	srv := &wire.Server{Store: store, Version: versionString()}
	if err := srv.Serve(ctx, stdin, stdout); err != nil {
		return &exitError{code: exitPartial, err: fmt.Errorf("agent: %w", err)}
	}
	return nil
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
