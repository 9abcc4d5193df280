package all

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/remote"
	"github.com/fsmirror/fsmirror/wire"
)

// sshLocation is a directory on another host, reached by ssh.
type sshLocation struct {
	user, host string
	port       int
	path       string
	o          Options
}

// parseSSH parses [user@]host:path and ssh://[user@]host[:port]/path.
func parseSSH(dest string, o Options) (Location, error) {
	l := sshLocation{o: o}
	if strings.HasPrefix(dest, "ssh://") {
		u, err := url.Parse(dest)
		if err != nil {
			return nil, fmt.Errorf("destination %q: %w", dest, err)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("destination %q: an ssh:// destination takes no query or fragment", dest)
		}
		l.host = u.Hostname()
		if u.User != nil {
			l.user = u.User.Username()
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("destination %q: bad port %q", dest, p)
			}
			l.port = n
		}
		l.path = u.Path
		if strings.HasPrefix(l.path, "/~") {
			l.path = l.path[1:] // ssh://host/~/dir: below the home directory
		}
	} else {
		rest := dest
		if i := strings.IndexByte(rest, '@'); i >= 0 && !strings.ContainsAny(rest[:i], ":/[") {
			l.user, rest = rest[:i], rest[i+1:]
		}
		if strings.HasPrefix(rest, "[") { // an IPv6 address: [::1]:path
			end := strings.Index(rest, "]:")
			if end < 0 {
				return nil, fmt.Errorf("destination %q: unclosed [", dest)
			}
			l.host, l.path = rest[1:end], rest[end+2:]
		} else {
			l.host, l.path, _ = strings.Cut(rest, ":")
		}
	}
	if l.host == "" || strings.HasPrefix(l.host, "-") {
		return nil, fmt.Errorf("destination %q: no host name", dest)
	}
	if strings.ContainsAny(l.path, "\x00\n") {
		return nil, fmt.Errorf("destination %q: the remote path holds a NUL or newline", dest)
	}
	if l.path != "/" {
		l.path = strings.TrimSuffix(l.path, "/")
	}
	return l, nil
}

func (l sshLocation) String() string {
	var b strings.Builder
	b.WriteString("ssh://")
	if l.user != "" {
		b.WriteString(l.user + "@")
	}
	if strings.Contains(l.host, ":") {
		b.WriteString("[" + l.host + "]")
	} else {
		b.WriteString(l.host)
	}
	if l.port != 0 {
		b.WriteString(":" + strconv.Itoa(l.port))
	}
	if !strings.HasPrefix(l.path, "/") {
		b.WriteString("/")
	}
	b.WriteString(l.path)
	return b.String()
}

func (l sshLocation) Key() string { return l.String() }

func (l sshLocation) Sub(name string) Location {
	switch l.path {
	case "":
		l.path = name
	default:
		l.path = path.Join(l.path, name)
	}
	return l
}

func (l sshLocation) Open(ctx context.Context, o OpenOptions) (fsmirror.Target, error) {
	d := &remote.SSH{
		Command:      strings.Fields(l.o.SSH),
		User:         l.user,
		Host:         l.host,
		Port:         l.port,
		Path:         l.path,
		Agent:        l.o.RemoteFsmirror,
		InstallAgent: l.o.InstallAgent,
		Create:       o.Create,
	}
	return remote.New(ctx, d, wire.ClientOptions{Compress: l.o.Compress})
}
