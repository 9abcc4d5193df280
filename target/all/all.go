// Package all knows every kind of destination fsmirror can mirror to. It
// parses a DEST argument into a Location and opens Targets there; it is the
// only package besides cmd that imports the target packages.
//
// A destination is one of:
//
//	/local/path                          local directory (target/local)
//	[user@]host:path                     SSH, fsmirror agent on the far side (target/remote)
//	ssh://[user@]host[:port]/path        the same, with a port
//	fsmirror://host:port/path            the receiver of fsmirror serve, over TLS (target/remote)
//	rsync://[user@]host[:port]/module/path  a module of an rsync daemon (target/rsync)
//	[user@]host:path with Options.Rsync  rsync over ssh, no fsmirror on the far side (target/rsync)
//
// The rsync destinations are Syncers: they read the source themselves and
// open as a fsmirror.PathSyncer, not as a Target.
//
// Each scheme is registered once, in registry.go.
package all

import (
	"context"
	"fmt"
	"strings"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
)

// Location is where a destination tree lives. It is cheap to build and
// touches nothing until Open.
type Location interface {
	// String names the location for people, as they would type it.
	String() string
	// Key identifies the location for the index: two Locations with one
	// Key are the same destination tree.
	Key() string
	// Sub returns the location of the directory name (a relative path)
	// below this one.
	Sub(name string) Location
	// Open connects to the destination and returns its Target. With
	// o.Create a missing destination directory is created (with its
	// parents) owner-only; the sync gives it its source's mode.
	Open(ctx context.Context, o OpenOptions) (fsmirror.Target, error)
}

// Local is implemented by locations on this machine's filesystem.
type Local interface {
	Location
	// Path is the absolute path of the destination directory.
	Path() string
}

// OpenOptions say how a Location is opened.
type OpenOptions struct {
	// Source is the absolute path of the source tree. Destinations that
	// read the source themselves (rsync) need it.
	Source string
	// Create creates the destination directory if it is missing.
	Create bool
	// The sync's settings, for destinations that read the source
	// themselves (rsync): excluded paths are neither sent nor deleted;
	// NoDelete keeps what the source does not have; Checksum compares
	// content; DryRun changes nothing but reports what would change.
	Filter   *filter.Filter
	NoDelete bool
	Checksum bool
	DryRun   bool
	// OnChange, if set, is told of each change such a destination reports
	// having made (Op without data; Entry.Type is TypeDir for a
	// directory). It may be called from several goroutines at once.
	OnChange func(fsmirror.Op)
}

// Options are the settings of destinations given on the command line or in
// a config file. Each kind of destination uses the fields that concern it.
type Options struct {
	// SSH is the command that runs ssh, split on spaces ("ssh -p 2222 -i
	// key"); empty means "ssh".
	SSH string
	// RemoteFsmirror is the path of fsmirror on the far side of an SSH
	// destination; empty means "fsmirror" looked up in the remote PATH.
	RemoteFsmirror string
	// InstallAgent copies this binary to the far side when it has no
	// fsmirror, and uses that copy.
	InstallAgent bool
	// Compress compresses file content on the wire.
	Compress bool
	// Fingerprint pins the key of the receiver of fsmirror:// destinations
	// (as `fsmirror serve init` prints it); the URL's ?fingerprint= wins.
	Fingerprint string
	// TokenFile holds the token that a receiver knows this client by; the
	// URL's ?token-file= wins.
	TokenFile string
	// Rsync sends to [user@]host:path with rsync over ssh instead of the
	// fsmirror agent.
	Rsync bool
	// PasswordFile holds the password of an rsync daemon (rsync://).
	PasswordFile string
	// RsyncPath is the rsync program on the far side of rsync over ssh;
	// empty means rsync in the remote PATH.
	RsyncPath string
	// RsyncArgs are passed to every rsync run, after fsmirror's own
	// options.
	RsyncArgs []string
	// Bwlimit limits the bandwidth of each rsync run (rsync's --bwlimit).
	Bwlimit string
	// RsyncProcesses is how many rsync runs go on at once; 0 means 1.
	RsyncProcesses int
}

// Parse returns the Location that dest names. A relative local path is
// made absolute.
func Parse(dest string, o Options) (Location, error) {
	if dest == "" {
		return nil, fmt.Errorf("empty destination")
	}
	if i := strings.Index(dest, "://"); i > 0 {
		scheme := dest[:i]
		parse, ok := schemes[scheme]
		if !ok {
			return nil, fmt.Errorf("destination %q: unknown scheme %q (known: %s)", dest, scheme, knownSchemes())
		}
		return parse(dest, o)
	}
	if isHostPath(dest) {
		return schemes[hostPathScheme(o)](dest, o)
	}
	return parseLocal(dest)
}

// isHostPath reports whether dest has the scp-like form [user@]host:path:
// a ':' with no '/' before it. A local path with such a colon can be given
// as ./name:x.
func isHostPath(dest string) bool {
	i := strings.IndexByte(dest, ':')
	return i > 0 && !strings.Contains(dest[:i], "/")
}
