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
//
// Each scheme is registered once, in registry.go.
package all

import (
	"context"
	"fmt"
	"strings"

	"github.com/fsmirror/fsmirror"
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
