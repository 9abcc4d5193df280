package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/engine"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/fsys"
	"github.com/fsmirror/fsmirror/target/all"
)

// excludeFlags are the exclude options shared by sync and verify.
type excludeFlags struct {
	patterns []string
	files    []string
}

func (x *excludeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&x.patterns, "exclude", nil, "exclude paths matching `PATTERN` (gitignore syntax; repeatable)")
	cmd.Flags().StringArrayVar(&x.files, "exclude-from", nil, "read exclude patterns from `FILE` (gitignore syntax; repeatable)")
}

func (x *excludeFlags) filter() (*filter.Filter, error) {
	patterns := append([]string(nil), x.patterns...)
	for _, file := range x.files {
		p, err := filter.ReadPatterns(file)
		if err != nil {
			return nil, setupErr("--exclude-from: %v", err)
		}
		patterns = append(patterns, p...)
	}
	f, err := filter.New(patterns)
	if err != nil {
		return nil, setupErr("--exclude: %v", err)
	}
	return f, nil
}

// destFlags are the settings of remote destinations.
type destFlags struct {
	ssh            string
	remoteFsmirror string
	installAgent   bool
	compress       bool
	tokenFile      string
	fingerprint    string
	rsync          rsyncFlags
}

func (d *destFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&d.ssh, "ssh", "ssh", "for [user@]host:path and ssh:// destinations: the ssh `COMMAND` and its options, e.g. \"ssh -p 2222 -i key\"")
	fl.StringVar(&d.remoteFsmirror, "remote-fsmirror", "fsmirror", "the fsmirror binary on the remote host (`PATH`)")
	fl.BoolVar(&d.installAgent, "install-agent", false, "copy this fsmirror binary to the remote host's cache directory (once per build) and run that")
	fl.BoolVarP(&d.compress, "compress", "z", false, "compress file content sent to remote destinations")
	fl.StringVar(&d.tokenFile, "token-file", "", "for fsmirror:// destinations: the `FILE` holding the token the receiver knows this client by")
	fl.StringVar(&d.fingerprint, "fingerprint", "", "for fsmirror:// destinations: the receiver's key fingerprint (`HEX`, printed by fsmirror serve init)")
	d.rsync.register(cmd)
}

func (d *destFlags) options() all.Options {
	o := all.Options{SSH: d.ssh, RemoteFsmirror: d.remoteFsmirror, InstallAgent: d.installAgent, Compress: d.compress,
		TokenFile: d.tokenFile, Fingerprint: d.fingerprint}
	d.rsync.apply(&o)
	return o
}

type syncFlags struct {
	dest       destFlags
	to         []string // more destinations
	excludes   excludeFlags
	workers    int
	noDelete   bool
	checksum   bool
	dryRun     bool
	verbose    bool
	relative   bool
	noProgress bool
	stateDir   string
	workersSet bool // --workers was given
	minSize    string
	maxSize    string
	size       filter.Size // from minSize and maxSize, by parseSizes
}

// parseSizes sets size from --min-size and --max-size.
func (f *syncFlags) parseSizes() error {
	for _, s := range []struct {
		flag, v string
		to      *int64
	}{{"--min-size", f.minSize, &f.size.Min}, {"--max-size", f.maxSize, &f.size.Max}} {
		if s.v == "" {
			continue
		}
		n, err := filter.ParseSize(s.v)
		if err != nil {
			return setupErr("%s: %v", s.flag, err)
		}
		*s.to = n
	}
	if f.size.Max > 0 && f.size.Min > f.size.Max {
		return setupErr("--min-size is larger than --max-size: nothing would be mirrored")
	}
	return nil
}

// remoteWorkers is the default number of workers for a remote destination:
// they mostly wait for answers, and more of them keep more requests in
// flight on the connection.
const remoteWorkers = 32

// workersFor returns the number of workers for destination loc.
func (f *syncFlags) workersFor(loc all.Location) int {
	if _, local := loc.(all.Local); local || f.workersSet {
		return f.workers
	}
	return max(f.workers, remoteWorkers)
}

// register adds the flags that sync and watch share.
func (f *syncFlags) register(cmd *cobra.Command, checksumUsage string) {
	f.excludes.register(cmd)
	f.dest.register(cmd)
	cmd.Flags().StringArrayVar(&f.to, "to", nil, "mirror to `DEST` too (repeatable): each destination has its own queue, and one that is slow or down holds up no other")
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "workers", engine.DefaultWorkers(), "parallel walkers and copiers")
	fl.BoolVar(&f.noDelete, "no-delete", false, "keep what DEST has and SRC does not")
	fl.BoolVarP(&f.checksum, "checksum", "c", false, checksumUsage)
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "list each change")
	fl.BoolVarP(&f.relative, "relative", "R", false, "put each SRC at DEST/<absolute path of SRC>")
	fl.StringVar(&f.minSize, "min-size", "", "leave out files smaller than `SIZE` (e.g. 1k; what DEST has under their names stays)")
	fl.StringVar(&f.maxSize, "max-size", "", "leave out files larger than `SIZE` (e.g. 100M; what DEST has under their names stays)")
}

func newSyncCmd(a *app) *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "sync [flags] SRC... DEST",
		Short: "Make DEST a mirror of SRC, then exit",
		Long: `Make the local directory DEST an exact mirror of SRC, then exit.

With one SRC, DEST becomes a mirror of SRC's contents. With several, each goes
to DEST/<basename of SRC>; with --relative, each goes to DEST/<absolute path of
SRC> (DEST/home/user/dir/...).

Regular files (content, mode, mtime to the nanosecond, owner and group when run
as root), directories, symlinks (as symlinks, never followed) and hard links
are mirrored; fifos and device nodes only when run as root; sockets never.
What DEST has and SRC does not is deleted, unless --no-delete. A file with the
same size and mtime on both sides is not copied again (with --checksum: the
same content). Every file is written under a temporary name next to its final
name and renamed into place, so no half-written file is ever visible; the
temporaries of an interrupted run are removed.

Excluded paths (gitignore syntax) are neither copied nor deleted on DEST, and
an excluded directory is not descended.

` + rsyncHelp,
		Example: `  fsmirror sync /srv/www /mnt/mirror/www
  fsmirror sync -v --exclude '*.tmp' --exclude cache/ ~/src /backup/src
  fsmirror sync --relative /etc /home/alice /backup     # /backup/etc, /backup/home/alice
  fsmirror sync --dry-run /data /mnt/data               # show what would change
  fsmirror sync --password-file ~/.nas-pw /srv/www rsync://backup@nas/mirror/www`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.workersSet = cmd.Flags().Changed("workers")
			return runSync(cmd.Context(), f, args[:len(args)-1], args[len(args)-1], a)
		},
	}
	f.register(cmd, "skip files by content (SHA-256), not by size and mtime")
	fl := cmd.Flags()
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "print what would change; change nothing")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress bar, even on a terminal")
	fl.StringVar(&f.stateDir, "state-dir", "", "keep an index of what DEST holds in `DIR` and trust it on the next run instead of listing DEST (as watch does)")
	return cmd
}

func runSync(ctx context.Context, f syncFlags, srcs []string, dest string, a *app) error {
	if f.workers < 1 {
		return setupErr("--workers must be at least 1")
	}
	if err := f.parseSizes(); err != nil {
		return err
	}
	flt, err := f.excludes.filter()
	if err != nil {
		return err
	}
	o := f.dest.options()
	o.RsyncArgs = append(o.RsyncArgs, rsyncSizeArgs(f.size)...)
	sources, err := planSources(srcs, append([]string{dest}, f.to...), f.relative, o)
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	var pairs []pair
	for _, s := range sources {
		for _, m := range s.mirrors {
			pairs = append(pairs, m.p)
		}
	}
	asRoot := unix.Geteuid() == 0
	stderr := a.stderr
	rep := &reporter{stdout: a.stdout, log: a.log, verbose: f.verbose || f.dryRun, dryRun: f.dryRun}
	var total engine.Stats
	var sent int64 // bytes sent to remote destinations
	start := time.Now()
	for _, p := range pairs {
		rep.prefix = p.prefix
		opt := engine.Options{
			Workers:  f.workersFor(p.dst),
			NoDelete: f.noDelete,
			Checksum: f.checksum,
			Filter:   flt,
			Size:     f.size,
			AsRoot:   asRoot,
			Report:   rep.report,
		}
		stats := &engine.Stats{}
		stopBar := startProgress(stderr, stats, !f.noProgress && !rep.verbose)
		err := syncPair(ctx, p, &f, opt, stats, &sent, a.log)
		stopBar()
		addStats(&total, stats)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			return &exitError{code: exitSetup, err: err}
		}
	}
	if rep.verbose || isTerminal(stderr) {
		format := "%d entries, %d files written (%s), %d deleted, %d errors, in %s"
		if f.dryRun { // nothing was written: say what would have been
			format = "dry run: %d entries, %d files would be written (%s), %d would be deleted, %d errors, in %s"
		}
		a.log.Info(fmt.Sprintf(format,
			total.Entries.Load(), total.Written.Load(), humanBytes(total.Bytes.Load()),
			total.Deleted.Load(), total.Errors.Load(), time.Since(start).Round(time.Millisecond)))
		if sent > 0 {
			a.log.Info(fmt.Sprintf("%d bytes sent over the network (%s)", sent, humanBytes(sent)))
		}
	}
	if n := total.Errors.Load(); n > 0 {
		return &exitError{code: exitPartial, err: fmt.Errorf("finished, but %d paths failed (see above)", n)}
	}
	return nil
}

// syncPair mirrors one source directory to its destination directory.
func syncPair(ctx context.Context, p pair, f *syncFlags, opt engine.Options, stats *engine.Stats, sent *int64, log *slog.Logger) error {
	if s, ok := p.dst.(all.Syncer); ok {
		return syncRsync(ctx, p, s, f, opt, stats)
	}
	dryRun := f.dryRun
	src, err := fsys.OpenRoot(p.src, false)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	var dst fsmirror.Target
	if dryRun {
		var inner fsmirror.Target
		t, err := p.dst.Open(ctx, all.OpenOptions{Source: p.src})
		switch {
		case err == nil:
			inner = t
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		dst = engine.DryRun(inner) // nil: a destination that does not exist yet
	} else {
		t, err := p.dst.Open(ctx, all.OpenOptions{Source: p.src, Create: true})
		if err != nil {
			return err
		}
		dst = t
		if r, ok := t.(interface{ BytesSent() int64 }); ok {
			defer func() { *sent += r.BytesSent() }()
		}
		if f.stateDir != "" {
			idx, trusted, err := openIndex(f.stateDir, p, false, log)
			if err != nil {
				t.Close()
				return fmt.Errorf("index of %s: %w", p.dst, err)
			}
			defer func() {
				if err := idx.Close(); err != nil {
					log.Error(fmt.Sprintf("close index of %s: %v", p.dst, err))
				}
			}()
			dst = idx.Wrap(t, trusted)
		}
	}
	defer dst.Close()
	return engine.Sync(ctx, src, dst, opt, stats)
}

func addStats(total, s *engine.Stats) {
	total.Entries.Add(s.Entries.Load())
	total.Written.Add(s.Written.Load())
	total.Bytes.Add(s.Bytes.Load())
	total.Changes.Add(s.Changes.Load())
	total.Deleted.Add(s.Deleted.Load())
	total.Skipped.Add(s.Skipped.Load())
	total.Errors.Add(s.Errors.Load())
}
