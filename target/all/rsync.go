package all

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/rsync"
)

// Syncer is implemented by locations whose destination reads the source
// itself, such as rsync: they open as a fsmirror.PathSyncer, which the
// engine's Batcher feeds with paths, instead of as a Target.
type Syncer interface {
	Location
	// OpenSyncer returns the destination's PathSyncer for the source
	// o.Source. It checks what can be checked without connecting (the
	// rsync program is installed); the first sync connects.
	OpenSyncer(ctx context.Context, o OpenOptions) (fsmirror.PathSyncer, error)
}

// ErrNotTarget is wrapped by the error of Open on a Syncer location.
var ErrNotTarget = errors.New("this destination reads the source itself: open it with OpenSyncer")

// rsyncLocation is a directory reached with the rsync program: in a module
// of an rsync daemon, or on a host reached with ssh.
type rsyncLocation struct {
	dest rsync.Dest
	o    Options
}

// parseRsync parses rsync://[user@]host[:port]/module/path, or, with
// Options.Rsync, [user@]host:path.
func parseRsync(dest string, o Options) (Location, error) {
	var d rsync.Dest
	var err error
	if strings.HasPrefix(dest, "rsync://") {
		d, err = rsync.ParseURL(dest)
	} else {
		d, err = rsync.ParseHostPath(dest)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case d.Daemon && o.RsyncPath != "":
		return nil, fmt.Errorf("destination %q: --rsync-path is for [user@]host:path destinations; an rsync daemon runs its own rsync", dest)
	case !d.Daemon && o.PasswordFile != "":
		return nil, fmt.Errorf("destination %q: --password-file is for rsync:// destinations; over ssh, ssh authenticates", dest)
	case o.RsyncProcesses < 0:
		return nil, fmt.Errorf("--rsync-processes must be at least 1")
	}
	return rsyncLocation{dest: d, o: o}, nil
}

func (l rsyncLocation) String() string { return l.dest.String() }

func (l rsyncLocation) Key() string {
	if l.dest.Daemon {
		return l.dest.String()
	}
	return "rsync+ssh:" + l.dest.String()
}

func (l rsyncLocation) Sub(name string) Location {
	return rsyncLocation{dest: l.dest.Sub(name), o: l.o}
}

func (l rsyncLocation) Open(context.Context, OpenOptions) (fsmirror.Target, error) {
	return nil, fmt.Errorf("destination %s: %w", l, ErrNotTarget)
}

// OpenSyncer returns an rsync.Target. The destination directory is created
// by the first sync if its parent exists (rsync makes one level).
func (l rsyncLocation) OpenSyncer(_ context.Context, o OpenOptions) (fsmirror.PathSyncer, error) {
	if o.Source == "" {
		return nil, fmt.Errorf("destination %s: no source given", l)
	}
	opt := rsync.Options{
		SSH:          l.o.SSH,
		PasswordFile: l.o.PasswordFile,
		RsyncPath:    l.o.RsyncPath,
		Bwlimit:      l.o.Bwlimit,
		Args:         l.o.RsyncArgs,
		Filter:       o.Filter,
		NoDelete:     o.NoDelete,
		Checksum:     o.Checksum,
		DryRun:       o.DryRun,
	}
	if opt.SSH == "ssh" {
		opt.SSH = "" // rsync.DefaultSSH: ssh with BatchMode
	}
	if o.OnChange != nil {
		opt.Report = func(c rsync.Change) {
			op := fsmirror.Op{Kind: c.Kind, Path: c.Path}
			switch {
			case c.Dir:
				op.Entry.Type = fsmirror.TypeDir
			case c.Kind == fsmirror.OpSymlink:
				// rsync's list names the link only; its target as the
				// source has it now, for the report.
				op.Entry.Type = fsmirror.TypeSymlink
				op.Entry.Target, _ = os.Readlink(filepath.Join(o.Source, filepath.FromSlash(c.Path)))
			}
			o.OnChange(op)
		}
	}
	t, err := rsync.New(o.Source, l.dest, opt)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", l, err)
	}
	return t, nil
}
