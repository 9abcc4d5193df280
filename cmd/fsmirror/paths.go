package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsmirror/fsmirror/target/all"
)

// pair is one source directory and the destination directory it is
// mirrored to.
type pair struct {
	src    string // as given, made absolute
	dst    all.Location
	prefix string // dst relative to DEST, for messages ("" for one SRC)
}

// planPairs checks the sources and the destination and decides where each
// source goes: one SRC mirrors to DEST itself, several go to DEST/<basename>,
// and with relative each goes to DEST/<its absolute path>. It writes nothing.
func planPairs(srcs []string, dest string, relative bool, o all.Options) ([]pair, error) {
	loc, err := all.Parse(dest, o)
	if err != nil {
		return nil, err
	}
	var destAbs, destReal string
	if l, ok := loc.(all.Local); ok {
		destAbs = l.Path()
		if fi, err := os.Stat(destAbs); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("destination %s exists and is not a directory", dest)
		}
		if destReal, err = realPath(destAbs); err != nil {
			return nil, fmt.Errorf("destination %s: %w", dest, err)
		}
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
		if destReal != "" {
			if err := checkOverlap(src, srcReal, dest, destReal); err != nil {
				return nil, err
			}
		}
		p := pair{src: srcAbs, dst: loc}
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
			p.dst = loc.Sub(p.prefix)
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
