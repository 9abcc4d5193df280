// Package config reads fsmirror's config file: TOML with any number of
// [[sync]] blocks, each one sync of sources to destinations with its own
// settings, the settings of `fsmirror watch` written down.
//
//	state-dir = "/var/lib/fsmirror"   # optional; the default depends on the user
//
//	[[sync]]
//	name        = "www"                       # optional; default: the first source's base name
//	source      = "/srv/www"                  # a path, or a list of paths
//	destination = ["/mnt/mirror/www", "web2:/srv/www"]
//	exclude     = ["*.swp", "cache/"]
//	delay       = "200ms"
//	max-size    = "100M"
//	delete      = true
//
// Every error names the file, the line and the key: an unknown key (a typo
// is never ignored), a value of the wrong type, a bad duration, size,
// pattern or destination. $VAR and ${VAR} in string values are replaced by
// the environment variable's value ($$ is a literal $); a variable that is
// not set is an error.
//
// The package checks what can be checked without touching the filesystem
// or the network, except that exclude-from files are read: whether sources
// exist and destinations answer is up to the caller.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/target/all"
)

// Config is a config file, read and checked.
type Config struct {
	// File is the path the config was read from.
	File string
	// StateDir is where the indexes of the destinations are kept; empty
	// means the caller's default.
	StateDir string
	// Syncs are the [[sync]] blocks, in the order of the file.
	Syncs []*Sync

	pos *positions
}

// Sync is one [[sync]] block: sources mirrored to destinations, with the
// settings of `fsmirror watch`.
type Sync struct {
	// Name names the sync in logs, status and metrics; unique in a file.
	Name string
	// Sources are the directories to mirror, made absolute later.
	Sources []string
	// Destinations are the DEST arguments of watch: each source is
	// mirrored to every destination.
	Destinations []string
	// Relative puts each source at DEST/<its absolute path>.
	Relative bool
	// Exclude holds gitignore patterns: those of the exclude key, then
	// those read from the exclude-from files.
	Exclude []string
	// ExcludeFrom are the files the patterns after the exclude key's come
	// from, kept to tell which files to read again on reload.
	ExcludeFrom []string
	// Delay is how long a path must be quiet before it is mirrored.
	Delay time.Duration
	// MaxDelay bounds the wait for a file still open for writing.
	MaxDelay time.Duration
	// Size leaves out files outside a range (min-size, max-size).
	Size filter.Size
	// Delete deletes on the destinations what the sources do not have
	// (the default); false keeps it.
	Delete bool
	// Checksum compares content, not size and mtime, in initial syncs.
	Checksum bool
	// Workers is the number of parallel workers; 0 means the default.
	Workers int
	// VerifyOnStart compares the whole destination at start.
	VerifyOnStart bool
	// RescanInterval, if not zero, compares the whole destination this
	// often.
	RescanInterval time.Duration
	// Watcher is how changes are seen: inotify (the default), fanotify
	// or auto (fanotify when it can), as watch's --watcher.
	Watcher string
	// Dest holds the options of remote destinations (ssh, rsync).
	Dest all.Options

	file string
	line int            // of the [[sync]] header
	keys map[string]int // line of each key given
}

// Defaults of a sync, as those of `fsmirror watch`.
const (
	DefaultMaxDelay = 5 * time.Second
)

// Where returns "FILE:LINE" of key in the sync's block ("" for the
// block's header), for messages about the sync that the caller finds
// later, such as a source that does not exist.
func (s *Sync) Where(key string) string {
	line := s.line
	if l, ok := s.keys[key]; ok {
		line = l
	}
	return fmt.Sprintf("%s:%d", s.file, line)
}

// Errorf returns an Error at key of the sync ("" for its header).
func (s *Sync) Errorf(key, format string, args ...any) *Error {
	line := s.line
	if l, ok := s.keys[key]; ok {
		line = l
	}
	return &Error{File: s.file, Line: line, Key: s.keyName(key), Msg: fmt.Sprintf(format, args...)}
}

func (s *Sync) keyName(key string) string {
	if key == "" {
		return fmt.Sprintf("[[sync]] %q", s.Name)
	}
	return fmt.Sprintf("sync %q: %s", s.Name, key)
}

// Same reports whether two syncs are set up alike, wherever they are in
// their files: a sync that is the same after a reload keeps running.
func (s *Sync) Same(o *Sync) bool {
	a, b := *s, *o
	a.file, a.line, a.keys = "", 0, nil
	b.file, b.line, b.keys = "", 0, nil
	return reflect.DeepEqual(a, b)
}

// Error is one mistake in a config file.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // the key, with its [[sync]] block if in one
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the mistakes found in a config file, in the order of the
// file. Its Error is one line per mistake.
type Errors []*Error

func (e Errors) Error() string {
	var lines []string
	for _, err := range e {
		lines = append(lines, err.Error())
	}
	return strings.Join(lines, "\n")
}

// maxErrors bounds the mistakes reported for one file.
const maxErrors = 20

// Load reads and checks the config file at path. A file that cannot be
// read is an error that wraps the fs error; a file with mistakes is an
// Errors, each of which names the line and the key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse reads and checks a config file whose content is data; file names
// it in errors and relative exclude-from paths are read from its
// directory. lookupEnv resolves $VAR.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}}
		}
		return nil, Errors{{File: file, Msg: err.Error()}}
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file, dir: dir, pos: scanPositions(string(data)), env: lookupEnv}
	c := d.config(raw)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, d.errs
	}
	return c, nil
}

// nameRE is what a sync's name may be: it goes into metrics labels and
// file names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether name may name a sync or an instance: a
// letter or digit, then up to 63 letters, digits, '.', '_' or '-'.
func ValidName(name string) bool { return nameRE.MatchString(name) }
