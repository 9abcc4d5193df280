package config

import (
	"strconv"
	"strings"
)

// positions finds the line of every key, table and array element of a TOML
// document that the toml package has already parsed: the toml package
// keeps no position for a key that appears once per [[sync]] block, and
// every error of a config file names its line.
//
// Paths are the keys from the root, with the index of each element of an
// array (of tables, or of values) as a decimal string: sync, 1, exclude, 0
// is the first exclude pattern of the second [[sync]] block.
type positions struct {
	lines map[string]int
}

func pathKey(path []string) string { return strings.Join(path, "\x00") }

// line returns the line of path, or of its nearest ancestor that has one,
// or 0.
func (p *positions) line(path []string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := p.lines[pathKey(path[:n])]; ok {
			return l
		}
	}
	return 0
}

// scanPositions scans data, which must be valid TOML. It is lenient: what
// it does not understand costs a line number, never an error.
func scanPositions(data string) *positions {
	s := &scanner{data: data, line: 1, p: &positions{lines: map[string]int{}}, arrays: map[string]int{}}
	s.document()
	return s.p
}

type scanner struct {
	data   string
	i      int
	line   int
	p      *positions
	table  []string       // the current table, with indices
	arrays map[string]int // last index of each array of tables, by its path with indices
}

func (s *scanner) eof() bool { return s.i >= len(s.data) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.i]
}

func (s *scanner) next() byte {
	c := s.data[s.i]
	s.i++
	if c == '\n' {
		s.line++
	}
	return c
}

// skip skips blanks, and with newlines also newlines and comments.
func (s *scanner) skip(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		case c == '\n' && newlines:
			s.next()
		default:
			return
		}
	}
}

func (s *scanner) document() {
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek() == '[' {
			s.next()
			array := s.peek() == '['
			if array {
				s.next()
			}
			key := s.key()
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.next() // "]" or "]]"
			}
			if len(key) == 0 {
				continue
			}
			// The last part names this table; a part before it that is an
			// array of tables means its last element.
			s.table = append(s.resolve(key[:len(key)-1]), key[len(key)-1])
			if array {
				k := pathKey(s.table)
				n, ok := s.arrays[k]
				if ok {
					n++
				}
				s.arrays[k] = n
				s.p.lines[k] = min(line, s.lineOr(k, line))
				s.table = append(s.table, strconv.Itoa(n))
			}
			s.p.lines[pathKey(s.table)] = line
			continue
		}
		before := s.i
		s.keyValue(s.table)
		if s.i == before {
			s.next() // not understood: move on
		}
	}
}

func (s *scanner) lineOr(k string, def int) int {
	if l, ok := s.p.lines[k]; ok {
		return l
	}
	return def
}

// resolve turns a table header's key into a path with indices: a prefix
// that names an array of tables means its last element.
func (s *scanner) resolve(key []string) []string {
	var path []string
	for _, k := range key {
		path = append(path, k)
		if n, ok := s.arrays[pathKey(path)]; ok {
			path = append(path, strconv.Itoa(n))
		}
	}
	return path
}

// keyValue scans key = value below table.
func (s *scanner) keyValue(table []string) {
	line := s.line
	key := s.key()
	if len(key) == 0 {
		return
	}
	path := append(append([]string(nil), table...), key...)
	s.p.lines[pathKey(path)] = line
	s.skip(false)
	if s.peek() == '=' {
		s.next()
	}
	s.skip(false)
	s.value(path)
}

// key scans a dotted key of bare and quoted parts.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skip(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			parts = append(parts, s.str())
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.next()
			}
			parts = append(parts, s.data[start:s.i])
		default:
			return parts
		}
		s.skip(false)
		if s.peek() != '.' {
			return parts
		}
		s.next()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str scans a string of any of the four kinds and returns its content
// (escapes are kept as written: keys with escapes are rare).
func (s *scanner) str() string {
	q := s.next()
	if strings.HasPrefix(s.data[s.i:], string([]byte{q, q})) { // multi-line
		s.next()
		s.next()
		start := s.i
		end := strings.Index(s.data[s.i:], string([]byte{q, q, q}))
		if end < 0 {
			end = len(s.data) - s.i
		}
		for s.i < start+end {
			s.next()
		}
		for n := 0; n < 3 && !s.eof(); n++ {
			s.next()
		}
		for !s.eof() && s.peek() == q { // up to two more quotes belong to the string
			s.next()
		}
		return s.data[start : start+end]
	}
	start := s.i
	for !s.eof() {
		c := s.peek()
		if c == '\n' {
			break
		}
		s.next()
		if c == '\\' && q == '"' && !s.eof() {
			s.next()
			continue
		}
		if c == q {
			return s.data[start : s.i-1]
		}
	}
	return s.data[start:s.i]
}

// value scans a value at path.
func (s *scanner) value(path []string) {
	switch c := s.peek(); c {
	case '"', '\'':
		s.str()
	case '[':
		s.next()
		for n := 0; ; n++ {
			s.skip(true)
			if s.eof() || s.peek() == ']' {
				break
			}
			elem := append(append([]string(nil), path...), strconv.Itoa(n))
			s.p.lines[pathKey(elem)] = s.line
			before := s.i
			s.value(elem)
			s.skip(true)
			if s.peek() == ',' {
				s.next()
			} else if s.i == before {
				break
			}
		}
		if !s.eof() {
			s.next()
		}
	case '{':
		s.next()
		for {
			s.skip(false)
			if s.eof() || s.peek() == '}' || s.peek() == '\n' {
				break
			}
			before := s.i
			s.keyValue(path)
			s.skip(false)
			if s.peek() == ',' {
				s.next()
			} else if s.i == before {
				break
			}
		}
		if s.peek() == '}' {
			s.next()
		}
	default: // number, bool, date
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.next()
		}
	}
}
