package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/scan"
	"github.com/fsmirror/fsmirror/target/all"
)

type verifyFlags struct {
	excludes excludeFlags
	checksum bool
	workers  int
}

func newVerifyCmd(stdout, stderr io.Writer) *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify [flags] SRC DEST",
		Short: "Compare two trees; exit 0 equal, 1 different, 2 error",
		Long: `Compare the tree DEST with the tree SRC, as a mirror of it, and list each
difference on standard output, one line per path.

Compared: type, size, permission mode, mtime (to the nanosecond), symlink
target, hard-link structure, owner and group when run as root, and with
--checksum the content of files of equal size. Excluded paths, and special
files that sync does not mirror, are left out.

Exit status: 0 equal, 1 different, 2 error (a tree could not be read fully).`,
		Example: `  fsmirror verify /srv/www /mnt/mirror/www
  fsmirror verify --checksum --exclude '*.log' ~/src /backup/src`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), f, args[0], args[1], stdout, stderr)
		},
	}
	f.excludes.register(cmd)
	cmd.Flags().BoolVarP(&f.checksum, "checksum", "c", false, "also compare the content of files of equal size")
	cmd.Flags().IntVar(&f.workers, "workers", engine.DefaultWorkers(), "parallel walkers")
	return cmd
}

func runVerify(ctx context.Context, f verifyFlags, srcPath, dstPath string, stdout, stderr io.Writer) error {
	flt, err := f.excludes.filter()
	if err != nil {
		return err
	}
	if loc, err := all.Parse(dstPath, all.Options{}); err == nil {
		if _, local := loc.(all.Local); !local {
			return setupErr("verify compares two local trees, and %s is remote: run verify on that host, or on a mount of it", loc)
		}
	}
	for _, p := range []string{srcPath, dstPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return setupErr("%s: %v", p, unwrapPathErr(err))
		}
		if !fi.IsDir() {
			return setupErr("%s is not a directory", p)
		}
	}
	src, err := fsys.OpenRoot(srcPath, false)
	if err != nil {
		return setupErr("%v", err)
	}
	defer src.Close()
	dst, err := fsys.OpenRoot(dstPath, false)
	if err != nil {
		return setupErr("%v", err)
	}
	defer dst.Close()
	asRoot := unix.Geteuid() == 0
	diffs, errs := scan.Compare(ctx, src, dst, scan.CompareOptions{
		Checksum: f.checksum,
		Owner:    asRoot,
		AsRoot:   asRoot,
		Filter:   flt,
		Workers:  f.workers,
	})
	for _, d := range diffs {
		fmt.Fprintln(stdout, d.String())
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "fsmirror: %v\n", err)
	}
	switch {
	case len(errs) > 0:
		return &exitError{code: exitSetup, err: fmt.Errorf("verify incomplete: %d errors, %d differences", len(errs), len(diffs))}
	case len(diffs) > 0:
		return &exitError{code: exitPartial, err: fmt.Errorf("%d differences", len(diffs))}
	}
	return nil
}
