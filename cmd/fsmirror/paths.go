package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pair is one source directory and the local directory it is mirrored to.
type pair struct {
	src    string // as given, made absolute
	dst    string
	prefix string // dst relative to DEST, for messages ("" for one SRC)
}

// isRemote reports whether dest names a remote destination rather than a
// local path: "scheme://..." or "[user@]host:path" with no '/' before the ':'.
func isRemote(dest string) bool {
	if strings.Contains(dest, "://") {
		return true
	}
	i := strings.IndexByte(dest, ':')
	return i > 0 && !strings.Contains(dest[:i], "/")
}

// planPairs checks the sources and the destination and decides where each
// source goes: one SRC mirrors to DEST itself, several go to DEST/<basename>,
// and with relative each goes to DEST/<its absolute path>. It writes nothing.
func planPairs(srcs []string, dest string, relative bool) ([]pair, error) {
	if isRemote(dest) {
		return nil, fmt.Errorf("destination %q: remote destinations are not supported yet; give a local directory", dest)
	}
	destAbs, err := filepath.Abs(dest)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	if fi, err := os.Stat(destAbs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("destination %s exists and is not a directory", dest)
	}
	destReal, err := realPath(destAbs)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest, err)
	}
	var pairs []pair
	seen := map[string]string{}
	for _, src := range srcs {
		fi, err := os.Stat(src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("source %s does not exist", src)
			}
			return nil, fmt.Errorf("source %s: %w", src, unwrapPathErr(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("source %s is not a directory (fsmirror mirrors directory trees)", src)
		}
		srcAbs, err := filepath.Abs(src)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		srcReal, err := filepath.EvalSymlinks(srcAbs)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, unwrapPathErr(err))
		}
		if err := checkOverlap(src, srcReal, dest, destReal); err != nil {
			return nil, err
		}
		p := pair{src: srcAbs, dst: destAbs}
		switch {
		case relative:
			p.prefix = strings.TrimPrefix(srcAbs, "/")
		case len(srcs) > 1:
			p.prefix = filepath.Base(srcAbs)
			if p.prefix == "/" {
				return nil, fmt.Errorf("source %s has no name to use under the destination; use --relative", src)
			}
		}
		if p.prefix != "" {
			p.dst = filepath.Join(destAbs, p.prefix)
			if other, dup := seen[p.prefix]; dup {
				return nil, fmt.Errorf("sources %s and %s would both go to %s; use --relative", other, src, p.dst)
			}
			seen[p.prefix] = src
		}
		pairs = append(pairs, p)
	}
	return pairs, nil
}

// checkOverlap refuses a source and destination that are the same or nested:
// a mirror inside its source would copy itself forever, and a source inside
// its mirror would be deleted or overwritten by the mirror.
func checkOverlap(src, srcReal, dest, destReal string) error {
	switch {
	case srcReal == destReal:
		return fmt.Errorf("source %s and destination %s are the same directory", src, dest)
	case within(destReal, srcReal):
		return fmt.Errorf("destination %s is inside source %s: the mirror would copy itself; choose a destination outside the source", dest, src)
	case within(srcReal, destReal):
		return fmt.Errorf("source %s is inside destination %s: mirroring would overwrite or delete the source", src, dest)
	}
	// The same directory under two names (a bind mount).
	if a, err := os.Stat(srcReal); err == nil {
		if b, err := os.Stat(destReal); err == nil && os.SameFile(a, b) {
			return fmt.Errorf("source %s and destination %s are the same directory", src, dest)
		}
	}
	return nil
}

// within reports whether path is strictly below dir.
func within(path, dir string) bool {
	if dir == "/" {
		return path != "/"
	}
	return strings.HasPrefix(path, dir+"/")
}

// realPath resolves the symlinks of path, whose last components may not exist
// yet: the deepest existing ancestor is resolved and the rest appended.
func realPath(path string) (string, error) {
	var rest []string
	p := path
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", unwrapPathErr(err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path, nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
