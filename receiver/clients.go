package receiver

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsmirror/fsmirror"
)

// Client is one client a receiver knows: the token it presents, and the one
// subtree of the receiver's root it may read and write.
type Client struct {
	Name string
	// Subdir is the client's subtree, a clean path relative to the root;
	// "" is the whole root (then there can be no other client).
	Subdir string
	// TokenFile is where the token was read from, for messages.
	TokenFile string
	token     [sha256.Size]byte // SHA-256 of the token: compared in constant time
}

// MinTokenLen is the shortest token a receiver accepts.
const MinTokenLen = 16

// NewClient returns the client name with token and subtree subdir.
func NewClient(name, token, subdir string) (Client, error) {
	if name == "" || strings.ContainsAny(name, " \t\n=:") {
		return Client{}, fmt.Errorf("bad client name %q: it must be non-empty, without spaces, '=' or ':'", name)
	}
	if len(token) < MinTokenLen {
		return Client{}, fmt.Errorf("client %s: the token is %d characters, fewer than %d; make one with: head -c 32 /dev/urandom | base64", name, len(token), MinTokenLen)
	}
	subdir = strings.Trim(subdir, "/")
	if subdir == "." {
		subdir = ""
	}
	if !fsmirror.IsValidPath(subdir) {
		return Client{}, fmt.Errorf("client %s: subtree %q must be a clean relative path below the root, without . or ..", name, subdir)
	}
	return Client{Name: name, Subdir: subdir, token: sha256.Sum256([]byte(token))}, nil
}

// ParseAllow parses NAME=TOKENFILE:SUBDIR, as `fsmirror serve --allow`
// takes it, and reads the token file: its first line, white space trimmed.
// A relative TOKENFILE is relative to dir.
func ParseAllow(s, dir string) (Client, error) {
	name, rest, ok := strings.Cut(s, "=")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Client{}, fmt.Errorf("bad client %q: want NAME=TOKENFILE:SUBDIR", s)
	}
	file, subdir := rest[:i], rest[i+1:]
	if file == "" {
		return Client{}, fmt.Errorf("bad client %q: no token file", s)
	}
	if !filepath.IsAbs(file) && dir != "" {
		file = filepath.Join(dir, file)
	}
	tok, err := readToken(file)
	if err != nil {
		return Client{}, fmt.Errorf("client %s: %w", name, err)
	}
	c, err := NewClient(name, tok, subdir)
	c.TokenFile = file
	return c, err
}

func readToken(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		if sc.Err() != nil {
			return "", fmt.Errorf("token file %s: %w", file, sc.Err())
		}
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return strings.TrimSpace(sc.Text()), nil
}

// ReadClients reads a file of clients, one NAME=TOKENFILE:SUBDIR a line
// (token files relative to the file's directory); blank lines and lines
// starting with # are skipped.
func ReadClients(file string) ([]Client, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cs []Client
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := ParseAllow(line, filepath.Dir(file))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n+1, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// checkClients refuses two clients with one name or one token, and two
// subtrees of which one holds the other: a client could then plant a
// symlink where the other's subtree starts, or read the other's files.
func checkClients(cs []Client) error {
	if len(cs) == 0 {
		return errors.New("no clients: give at least one --allow NAME=TOKENFILE:SUBDIR")
	}
	for i := range cs {
		for j := range i {
			a, b := &cs[j], &cs[i]
			switch {
			case a.Name == b.Name:
				return fmt.Errorf("two clients are named %s", a.Name)
			case a.token == b.token:
				return fmt.Errorf("clients %s and %s have the same token: each needs its own", a.Name, b.Name)
			case within(a.Subdir, b.Subdir) || within(b.Subdir, a.Subdir):
				return fmt.Errorf("clients %s (%q) and %s (%q) would share a subtree: give each its own, neither inside the other", a.Name, a.Subdir, b.Name, b.Subdir)
			}
		}
	}
	return nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return dir == "" || path == dir || strings.HasPrefix(path, dir+"/")
}

// lookup returns the client whose token is token, or nil. Every client is
// compared, in constant time, so the time taken says nothing about which
// token is close.
func lookup(cs []Client, token string) *Client {
	sum := sha256.Sum256([]byte(token))
	var found *Client
	for i := range cs {
		if subtle.ConstantTimeCompare(sum[:], cs[i].token[:]) == 1 {
			found = &cs[i]
		}
	}
	return found
}
