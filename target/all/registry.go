package all

import (
	"slices"
	"strings"
)

// parser parses a destination of one scheme.
type parser func(dest string, o Options) (Location, error)

// schemes maps a URL scheme to its parser. Every kind of destination is
// registered here and nowhere else.
var schemes = map[string]parser{}

func init() {
	register("ssh", parseSSH)
	register("fsmirror", parseReceiver)
	register("rsync", parseRsync)
}

// register adds a scheme; a scheme registered twice is a programming error.
func register(scheme string, p parser) {
	if _, dup := schemes[scheme]; dup {
		panic("all: scheme " + scheme + " registered twice")
	}
	schemes[scheme] = p
}

// hostPathScheme is the scheme that handles [user@]host:path.
func hostPathScheme(o Options) string {
	if o.Rsync {
		return "rsync"
	}
	return "ssh"
}

func knownSchemes() string {
	var names []string
	for s := range schemes {
		names = append(names, s+"://")
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
