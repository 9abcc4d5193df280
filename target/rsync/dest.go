package rsync

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Dest is where an rsync destination is: a directory in a module of an
// rsync daemon, or a directory on a host reached with a remote shell.
type Dest struct {
	Daemon bool   // an rsync daemon (rsync://); else a remote shell
	User   string // may be empty
	Host   string // a name, or an IP address (IPv6 without brackets)
	Port   int    // the daemon's TCP port; 0 means rsync's default (873)
	Module string // the daemon's module
	// Path is the directory, in the module for a daemon (may be empty: the
	// module's root), else on the host (relative to the login directory
	// unless it starts with '/'; may be empty: the login directory).
	Path string
}

// ParseURL parses an rsync daemon destination:
// rsync://[user@]host[:port]/module[/path]. The host may be an IPv6
// address in brackets.
func ParseURL(s string) (Dest, error) {
	rest, ok := strings.CutPrefix(s, "rsync://")
	if !ok {
		return Dest{}, fmt.Errorf("destination %q: not an rsync:// URL", s)
	}
	d := Dest{Daemon: true}
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		d.User, authority = authority[:i], authority[i+1:]
		if d.User == "" {
			return Dest{}, fmt.Errorf("destination %q: empty user name before '@'", s)
		}
	}
	host, port := authority, ""
	if h, p, err := net.SplitHostPort(authority); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(authority, "[") && strings.HasSuffix(authority, "]") {
		host = authority[1 : len(authority)-1]
	}
	if host == "" || strings.ContainsAny(host, "[]/") {
		return Dest{}, fmt.Errorf("destination %q: no host (want rsync://[user@]host[:port]/module/path)", s)
	}
	d.Host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return Dest{}, fmt.Errorf("destination %q: bad port %q", s, port)
		}
		d.Port = n
	}
	d.Module, d.Path, _ = strings.Cut(path, "/")
	if d.Module == "" {
		return Dest{}, fmt.Errorf("destination %q: no module (want rsync://[user@]host[:port]/module/path; `rsync %s` lists the modules)", s, "rsync://"+authority+"/")
	}
	d.Path = strings.Trim(d.Path, "/")
	if err := checkPath(d.Path); err != nil {
		return Dest{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return d, nil
}

// ParseHostPath parses a remote-shell destination: [user@]host:path.
func ParseHostPath(s string) (Dest, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.Contains(s[:i], "/") {
		return Dest{}, fmt.Errorf("destination %q: want [user@]host:path", s)
	}
	d := Dest{Host: s[:i], Path: s[i+1:]}
	if j := strings.LastIndexByte(d.Host, '@'); j >= 0 {
		d.User, d.Host = d.Host[:j], d.Host[j+1:]
		if d.User == "" {
			return Dest{}, fmt.Errorf("destination %q: empty user name before '@'", s)
		}
	}
	if d.Host == "" {
		return Dest{}, fmt.Errorf("destination %q: no host", s)
	}
	if len(d.Path) > 1 {
		d.Path = strings.TrimRight(d.Path, "/")
		if d.Path == "" {
			d.Path = "/"
		}
	}
	if err := checkPath(strings.TrimPrefix(d.Path, "/")); err != nil {
		return Dest{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return d, nil
}

// checkPath refuses ".." components, which would leave the module or make
// the destination's identity ambiguous.
func checkPath(p string) error {
	for c := range strings.SplitSeq(p, "/") {
		if c == ".." {
			return fmt.Errorf("path with a \"..\" component")
		}
	}
	return nil
}

func (d Dest) userHost() string {
	h := d.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if d.User != "" {
		h = d.User + "@" + h
	}
	return h
}

// String returns the destination as a person would type it.
func (d Dest) String() string {
	if !d.Daemon {
		return d.userHost() + ":" + d.Path
	}
	s := "rsync://" + d.userHost()
	if d.Port != 0 {
		s += ":" + strconv.Itoa(d.Port)
	}
	s += "/" + d.Module
	if d.Path != "" {
		s += "/" + d.Path
	}
	return s
}

// Arg returns the destination as an rsync argument naming the directory
// itself (a trailing slash, so that "SRC/ DEST/" copies contents into it).
func (d Dest) Arg() string {
	s := d.String()
	if !d.Daemon && d.Path == "" {
		return s // "host:" is the login directory; "host:/" would be the root
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

// Sub returns the destination of the directory name (a relative path)
// below d.
func (d Dest) Sub(name string) Dest {
	name = strings.Trim(name, "/")
	switch {
	case name == "":
	case d.Path == "" || d.Path == "/":
		d.Path += name
	default:
		d.Path += "/" + name
	}
	return d
}
