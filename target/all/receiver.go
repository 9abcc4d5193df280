package all

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/remote"
	"github.com/fsmirror/fsmirror/wire"
)

// receiverLocation is a directory on the receiver of `fsmirror serve`,
// reached over TCP and TLS.
type receiverLocation struct {
	host        string
	port        int
	path        string // below the tree the token grants; "" is that tree
	fingerprint string
	token       string
	o           Options
}

// parseReceiver parses fsmirror://host:port/path?fingerprint=HEX&token-file=FILE.
// The fingerprint and the token file may come from Options instead; the
// query wins. The token file is read now: a missing one is a setup error.
func parseReceiver(dest string, o Options) (Location, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("destination %q: want fsmirror://host:port/path", dest)
	}
	l := receiverLocation{host: u.Hostname(), o: o}
	if l.host == "" {
		return nil, fmt.Errorf("destination %q: no host name", dest)
	}
	port := u.Port()
	if port == "" {
		return nil, fmt.Errorf("destination %q: no port (fsmirror://host:port/path, the port that fsmirror serve --listen was given)", dest)
	}
	if l.port, err = strconv.Atoi(port); err != nil || l.port < 1 || l.port > 65535 {
		return nil, fmt.Errorf("destination %q: bad port %q", dest, port)
	}
	l.path = strings.Trim(u.Path, "/")
	if !fsmirror.IsValidPath(l.path) || strings.ContainsAny(l.path, "\n") {
		return nil, fmt.Errorf("destination %q: the path must be clean, without . or .. (it is a directory inside the tree the receiver grants this client)", dest)
	}
	q := u.Query()
	fp, tokenFile := o.Fingerprint, o.TokenFile
	for k, v := range q {
		switch {
		case len(v) != 1:
			return nil, fmt.Errorf("destination %q: %s given %d times", dest, k, len(v))
		case k == "fingerprint":
			fp = v[0]
		case k == "token-file":
			tokenFile = v[0]
		default:
			return nil, fmt.Errorf("destination %q: unknown parameter %q (known: fingerprint, token-file)", dest, k)
		}
	}
	if fp == "" {
		return nil, fmt.Errorf("destination %q: no fingerprint of the receiver's key: add ?fingerprint=HEX or --fingerprint HEX (fsmirror serve init prints it on the receiver)", dest)
	}
	if l.fingerprint, err = wire.ParseFingerprint(fp); err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	if tokenFile == "" {
		return nil, fmt.Errorf("destination %q: no token: add ?token-file=FILE or --token-file FILE (the receiver knows this client by it)", dest)
	}
	if l.token, err = ReadToken(tokenFile); err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	return l, nil
}

// ReadToken reads a token file: its first line, without surrounding
// white space.
func ReadToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	tok := string(bytes.TrimSpace(line))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}

func (l receiverLocation) addr() string {
	return net.JoinHostPort(l.host, strconv.Itoa(l.port))
}

func (l receiverLocation) String() string {
	return "fsmirror://" + l.addr() + "/" + l.path
}

// Key tells apart the trees of two clients (tokens) that use the same path,
// and a receiver whose key was replaced (probably another machine).
func (l receiverLocation) Key() string {
	tok := sha256.Sum256([]byte(l.token))
	return l.String() + "#client=" + hex.EncodeToString(tok[:8]) + ",key=" + l.fingerprint[:16]
}

func (l receiverLocation) Sub(name string) Location {
	l.path = path.Join(l.path, name)
	return l
}

func (l receiverLocation) Open(ctx context.Context, o OpenOptions) (fsmirror.Target, error) {
	d := &remote.TLS{Addr: l.addr(), Fingerprint: l.fingerprint, Name: l.String()}
	return remote.New(ctx, d, wire.ClientOptions{
		Compress: l.o.Compress,
		Auth:     &wire.Auth{Token: l.token, Path: l.path, Create: o.Create},
	})
}
