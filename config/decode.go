package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/target/all"
)

// decoder turns the decoded TOML into a Config, collecting mistakes.
type decoder struct {
	file string
	dir  string // the absolute directory of file
	pos  *positions
	env  func(string) (string, bool)
	errs Errors
}

// errorf records a mistake at path; key names it for people.
func (d *decoder) errorf(path []string, key, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: d.pos.line(path), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// field is one key of a table: its setter gets the value and the path for
// errors.
type field[T any] struct {
	doc string
	set func(d *decoder, t *T, v any, at loc)
}

// loc is where a value is, for errors.
type loc struct {
	path []string
	key  string // for people: "exclude", or "sync #2: exclude"
}

func (l loc) elem(i int) loc {
	return loc{path: append(slices.Clone(l.path), strconv.Itoa(i)), key: l.key}
}

var topFields = map[string]field[Config]{
	"state-dir": {"where the indexes of the destinations are kept", func(d *decoder, c *Config, v any, at loc) {
		c.StateDir = d.path(v, at)
	}},
}

var syncFields = map[string]field[Sync]{
	"name":        {"the sync's name in logs, status and metrics", func(d *decoder, s *Sync, v any, at loc) { s.Name = d.str(v, at) }},
	"source":      {"a directory to mirror, or a list of them", func(d *decoder, s *Sync, v any, at loc) { s.Sources = d.paths(v, at) }},
	"destination": {"where to mirror to, or a list of places", func(d *decoder, s *Sync, v any, at loc) { s.Destinations = d.strs(v, at) }},
	"relative":    {"put each source at DEST/<its absolute path>", func(d *decoder, s *Sync, v any, at loc) { s.Relative = d.bool(v, at) }},
	"exclude":     {"gitignore patterns to leave out", func(d *decoder, s *Sync, v any, at loc) { s.Exclude = append(d.patterns(v, at), s.Exclude...) }},
	"exclude-from": {"files of gitignore patterns", func(d *decoder, s *Sync, v any, at loc) {
		s.ExcludeFrom = d.paths(v, at)
		for i, f := range s.ExcludeFrom {
			p, err := filter.ReadPatterns(f)
			if err != nil {
				d.errorf(at.elem(i).path, at.key, "%v", err)
				continue
			}
			s.Exclude = append(s.Exclude, p...)
		}
	}},
	"delay":           {"how long a path must be quiet before it is mirrored", func(d *decoder, s *Sync, v any, at loc) { s.Delay = d.duration(v, at) }},
	"max-delay":       {"copy a file still open for writing after this long anyway", func(d *decoder, s *Sync, v any, at loc) { s.MaxDelay = d.duration(v, at) }},
	"min-size":        {"leave out smaller files", func(d *decoder, s *Sync, v any, at loc) { s.Size.Min = d.size(v, at) }},
	"max-size":        {"leave out larger files", func(d *decoder, s *Sync, v any, at loc) { s.Size.Max = d.size(v, at) }},
	"delete":          {"delete on the destination what the source does not have", func(d *decoder, s *Sync, v any, at loc) { s.Delete = d.bool(v, at) }},
	"checksum":        {"initial sync: compare content, not size and mtime", func(d *decoder, s *Sync, v any, at loc) { s.Checksum = d.bool(v, at) }},
	"workers":         {"parallel walkers and copiers", func(d *decoder, s *Sync, v any, at loc) { s.Workers = d.int(v, at, 1) }},
	"verify-on-start": {"compare the whole destination at start", func(d *decoder, s *Sync, v any, at loc) { s.VerifyOnStart = d.bool(v, at) }},
	"rescan-interval": {"compare the whole destination this often", func(d *decoder, s *Sync, v any, at loc) { s.RescanInterval = d.duration(v, at) }},
	"ssh":             {"the ssh command and its options", func(d *decoder, s *Sync, v any, at loc) { s.Dest.SSH = d.str(v, at) }},
	"remote-fsmirror": {"the fsmirror binary on the remote host", func(d *decoder, s *Sync, v any, at loc) { s.Dest.RemoteFsmirror = d.str(v, at) }},
	"install-agent":   {"copy this fsmirror to the remote host", func(d *decoder, s *Sync, v any, at loc) { s.Dest.InstallAgent = d.bool(v, at) }},
	"compress":        {"compress file content sent to remote destinations", func(d *decoder, s *Sync, v any, at loc) { s.Dest.Compress = d.bool(v, at) }},
	"rsync":           {"send to host:path with rsync over ssh", func(d *decoder, s *Sync, v any, at loc) { s.Dest.Rsync = d.bool(v, at) }},
	"password-file":   {"the rsync daemon's password file", func(d *decoder, s *Sync, v any, at loc) { s.Dest.PasswordFile = d.path(v, at) }},
	"rsync-path":      {"the rsync program on the remote host", func(d *decoder, s *Sync, v any, at loc) { s.Dest.RsyncPath = d.str(v, at) }},
	"rsync-args":      {"more arguments for every rsync run", func(d *decoder, s *Sync, v any, at loc) { s.Dest.RsyncArgs = d.strs(v, at) }},
	"bwlimit":         {"rsync's --bwlimit", func(d *decoder, s *Sync, v any, at loc) { s.Dest.Bwlimit = d.strOrInt(v, at) }},
	"fingerprint":     {"the key fingerprint of a fsmirror:// receiver", func(d *decoder, s *Sync, v any, at loc) { s.Dest.Fingerprint = d.str(v, at) }},
	"token-file":      {"the token file for a fsmirror:// receiver", func(d *decoder, s *Sync, v any, at loc) { s.Dest.TokenFile = d.path(v, at) }},
	"watcher": {"how changes are seen: auto, inotify or fanotify", func(d *decoder, s *Sync, v any, at loc) {
		s.Watcher = d.str(v, at)
		if s.Watcher != "auto" && s.Watcher != "inotify" && s.Watcher != "fanotify" {
			d.errorf(at.path, at.key, "%q: want auto, inotify or fanotify", s.Watcher)
		}
	}},
	"rsync-processes": {"at most this many rsync runs at once", func(d *decoder, s *Sync, v any, at loc) { s.Dest.RsyncProcesses = d.int(v, at, 1) }},
}

// Keys returns the keys a [[sync]] block takes, sorted, each with a
// short description.
func Keys() [][2]string {
	var out [][2]string
	for k, f := range syncFields {
		out = append(out, [2]string{k, f.doc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// decodeTable sets t from the keys of table, in the order of the file,
// reporting unknown ones.
func decodeTable[T any](d *decoder, t *T, table map[string]any, fields map[string]field[T], at loc, prefix string) {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	// In the order of the file, so that errors are too.
	sort.SliceStable(keys, func(i, j int) bool {
		return d.pos.line(append(slices.Clone(at.path), keys[i])) < d.pos.line(append(slices.Clone(at.path), keys[j]))
	})
	for _, k := range keys {
		path := append(slices.Clone(at.path), k)
		f, ok := fields[k]
		if !ok {
			d.errorf(path, prefix+k, "unknown key%s", suggest(k, fields))
			continue
		}
		f.set(d, t, table[k], loc{path: path, key: prefix + k})
	}
}

// suggest returns " (did you mean X?)" for the known key closest to k, if
// it is close.
func suggest[T any](k string, fields map[string]field[T]) string {
	best, bestDist := "", 3
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if dist := editDistance(k, name); dist < bestDist || strings.TrimSuffix(k, "s") == name && dist <= 2 {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return " (see 'fsmirror examples' for the keys a config takes)"
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) config(raw map[string]any) *Config {
	c := &Config{File: d.file, pos: d.pos}
	syncs, hasSyncs := raw["sync"]
	delete(raw, "sync")
	decodeTable(d, c, raw, topFields, loc{}, "")
	if !hasSyncs {
		d.errs = append(d.errs, &Error{File: d.file, Msg: "no [[sync]] block: nothing to do (see 'fsmirror examples')"})
		return c
	}
	blocks, ok := syncs.([]map[string]any)
	if !ok {
		d.errorf([]string{"sync"}, "sync", "must be [[sync]] blocks, not %s", typeName(syncs))
		return c
	}
	names := map[string]*Sync{}
	for i, block := range blocks {
		path := []string{"sync", strconv.Itoa(i)}
		s := &Sync{Delete: true, MaxDelay: DefaultMaxDelay, Watcher: "inotify", file: d.file, line: d.pos.line(path), keys: map[string]int{}}
		for k := range block {
			s.keys[k] = d.pos.line(append(slices.Clone(path), k))
		}
		prefix := fmt.Sprintf("sync #%d: ", i+1)
		if n, ok := block["name"].(string); ok && n != "" {
			prefix = fmt.Sprintf("sync %q: ", n)
		}
		decodeTable(d, s, block, syncFields, loc{path: path}, prefix)
		d.check(s, path, prefix)
		if s.Name != "" {
			if other, dup := names[s.Name]; dup {
				d.errorf(path, prefix+"name", "two syncs are named %q (the other at line %d): give each its own name", s.Name, other.line)
			}
			names[s.Name] = s
		}
		c.Syncs = append(c.Syncs, s)
	}
	return c
}

// check checks a sync whose keys were all read, and names it.
func (d *decoder) check(s *Sync, path []string, prefix string) {
	at := func(k string) []string { return append(slices.Clone(path), k) }
	if _, given := s.keys["source"]; !given {
		d.errorf(path, prefix+"source", "missing: give the directory to mirror")
	}
	if _, given := s.keys["destination"]; !given {
		d.errorf(path, prefix+"destination", "missing: give where to mirror to")
	}
	if _, named := s.keys["name"]; named {
		if !ValidName(s.Name) {
			d.errorf(at("name"), prefix+"name", "%q is not a valid name: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'", s.Name)
		}
	} else if len(s.Sources) > 0 {
		s.Name = filepath.Base(s.Sources[0])
		if !ValidName(s.Name) {
			d.errorf(path, prefix+"name", "cannot name the sync after its source %s: give it a name", s.Sources[0])
		}
	}
	if s.MaxDelay <= 0 {
		d.errorf(at("max-delay"), prefix+"max-delay", "must be positive")
	}
	if s.Size.Max > 0 && s.Size.Min > s.Size.Max {
		d.errorf(at("min-size"), prefix+"min-size", "%d is larger than max-size %d: nothing would be mirrored", s.Size.Min, s.Size.Max)
	}
	for i, dest := range s.Destinations {
		loc, err := all.Parse(dest, s.Dest)
		if err != nil {
			d.errorf(append(at("destination"), strconv.Itoa(i)), prefix+"destination", "%v", err)
			continue
		}
		if _, local := loc.(all.Local); local {
			s.Destinations[i] = d.abs(dest)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "a list of tables"
	}
	return fmt.Sprintf("a %T", v)
}

// expand replaces $VAR and ${VAR} in s; $$ is a literal $.
func (d *decoder) expand(s string, at loc) string {
	var missing []string
	out := os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := d.env(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		d.errorf(at.path, at.key, "environment variable %s is not set (write $$ for a literal $)", strings.Join(missing, ", "))
	}
	return out
}

func (d *decoder) str(v any, at loc) string {
	s, ok := v.(string)
	if !ok {
		d.errorf(at.path, at.key, "want a string, not %s", typeName(v))
		return ""
	}
	return d.expand(s, at)
}

func (d *decoder) strOrInt(v any, at loc) string {
	if n, ok := v.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	return d.str(v, at)
}

// strs takes a string or a list of strings.
func (d *decoder) strs(v any, at loc) []string {
	if s, ok := v.(string); ok {
		return []string{d.expand(s, at)}
	}
	list, ok := v.([]any)
	if !ok {
		d.errorf(at.path, at.key, "want a string or a list of strings, not %s", typeName(v))
		return nil
	}
	var out []string
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			d.errorf(at.elem(i).path, at.key, "want a string, not %s", typeName(e))
			continue
		}
		out = append(out, d.expand(s, at.elem(i)))
	}
	return out
}

// patterns takes gitignore patterns: a string or a list of strings, kept
// as written ($ is no variable there: "$RECYCLE.BIN/" is a pattern).
func (d *decoder) patterns(v any, at loc) []string {
	var list []any
	switch v := v.(type) {
	case string:
		list = []any{v}
	case []any:
		list = v
	default:
		d.errorf(at.path, at.key, "want a pattern or a list of patterns, not %s", typeName(v))
		return nil
	}
	var out []string
	for i, e := range list {
		p, ok := e.(string)
		if !ok {
			d.errorf(at.elem(i).path, at.key, "want a string, not %s", typeName(e))
			continue
		}
		if _, err := filter.New([]string{p}); err != nil {
			d.errorf(at.elem(i).path, at.key, "%v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// path takes a local path; a relative one is relative to the config
// file's directory, not to wherever fsmirror was started.
func (d *decoder) path(v any, at loc) string {
	s := d.str(v, at)
	if s == "" {
		d.errorf(at.path, at.key, "must not be empty")
	}
	return d.abs(s)
}

func (d *decoder) paths(v any, at loc) []string {
	ps := d.strs(v, at)
	for i, p := range ps {
		if p == "" {
			d.errorf(at.elem(i).path, at.key, "must not be empty")
		}
		ps[i] = d.abs(p)
	}
	return ps
}

func (d *decoder) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) bool(v any, at loc) bool {
	b, ok := v.(bool)
	if !ok {
		d.errorf(at.path, at.key, "want true or false, not %s", typeName(v))
	}
	return b
}

func (d *decoder) int(v any, at loc, least int64) int {
	n, ok := v.(int64)
	if !ok {
		d.errorf(at.path, at.key, "want an integer, not %s", typeName(v))
		return 0
	}
	if n < least || n > 1<<20 {
		d.errorf(at.path, at.key, "%d is out of range (at least %d)", n, least)
	}
	return int(n)
}

func (d *decoder) duration(v any, at loc) time.Duration {
	s, ok := v.(string)
	if !ok {
		d.errorf(at.path, at.key, "want a duration such as \"200ms\" or \"5s\", not %s", typeName(v))
		return 0
	}
	t, err := time.ParseDuration(d.expand(s, at))
	if err != nil {
		d.errorf(at.path, at.key, "want a duration such as \"200ms\" or \"5s\", not %q", s)
		return 0
	}
	if t < 0 {
		d.errorf(at.path, at.key, "must not be negative")
	}
	return t
}

func (d *decoder) size(v any, at loc) int64 {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			d.errorf(at.path, at.key, "must not be negative")
		}
		return v
	case string:
		n, err := filter.ParseSize(d.expand(v, at))
		if err != nil {
			d.errorf(at.path, at.key, "%v", err)
		}
		return n
	}
	d.errorf(at.path, at.key, "want a size such as \"100k\" or 1048576, not %s", typeName(v))
	return 0
}
