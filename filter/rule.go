package filter

import "strings"

// A rule is one compiled pattern.
type rule struct {
	negate  bool // "!pattern": re-include
	dirOnly bool // "pattern/": directories only
	// anchored rules match the whole path against segs; the others match the
	// last name against base.
	anchored bool
	base     glob
	segs     []seg
	// lead is the first component when the pattern fixes it ("docs" in
	// "docs/**/*.md"): a cheap test that rejects most paths.
	lead string
}

// A seg matches path components: one, by its glob, or, for "**", any number.
type seg struct {
	star bool
	glob glob
}

// badPattern is the reason a pattern is malformed; it wraps ErrBadPattern
// without repeating its text in every message.
type badPattern string

func (e badPattern) Error() string        { return string(e) }
func (e badPattern) Is(target error) bool { return target == ErrBadPattern }

// parseRule compiles one pattern. ok is false for a pattern that says
// nothing: blank, or a comment.
func parseRule(p string) (r rule, ok bool, err error) {
	if p == "" || p[0] == '#' {
		return rule{}, false, nil
	}
	p = trimTrailingSpaces(p)
	if p == "" {
		return rule{}, false, nil
	}
	if strings.IndexByte(p, 0) >= 0 {
		return rule{}, false, badPattern("NUL byte (no name can contain one)")
	}
	if p[0] == '!' {
		r.negate = true
		p = p[1:]
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly = true
		p = p[:len(p)-1]
	}
	if strings.HasPrefix(p, "/") {
		r.anchored = true
		p = p[1:]
	}
	if p == "" {
		return rule{}, false, badPattern("empty pattern")
	}
	parts, err := splitSegments(p)
	if err != nil {
		return rule{}, false, err
	}
	if len(parts) > 1 {
		r.anchored = true
	}
	if !r.anchored {
		r.base, err = compileGlob(parts[0])
		return r, err == nil, err
	}

	for _, part := range parts {
		if part == "" {
			return rule{}, false, badPattern("empty path component (\"//\")")
		}
		if part == "**" {
			if n := len(r.segs); n == 0 || !r.segs[n-1].star {
				r.segs = append(r.segs, seg{star: true})
			}
			continue
		}
		g, err := compileGlob(part)
		if err != nil {
			return rule{}, false, err
		}
		r.segs = append(r.segs, seg{glob: g})
	}
	if n := len(r.segs); r.segs[n-1].star {
		// A trailing "/**" matches what is inside, not the directory
		// itself: at least one more component.
		r.segs = append(r.segs[:n-1], seg{glob: glob{kind: globAny}}, seg{star: true})
	}
	if len(r.segs) == 2 && r.segs[0].star && !r.segs[1].star {
		// "**/name" is "name" at any depth: match the last name only.
		r.anchored, r.base, r.segs = false, r.segs[1].glob, nil
	}
	if r.anchored && r.segs[0].glob.kind == globLiteral {
		r.lead = r.segs[0].glob.lit
	}
	return r, true, nil
}

// trimTrailingSpaces drops the trailing spaces of a pattern that are not
// escaped with a backslash, as git does for each line of a .gitignore.
func trimTrailingSpaces(p string) string {
	end := len(p)
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case ' ':
			if end == len(p) {
				end = i
			}
		case '\\':
			i++
			end = len(p)
		default:
			end = len(p)
		}
	}
	return p[:end]
}

// splitSegments splits a pattern at each '/' that is neither escaped nor
// inside a bracket expression.
func splitSegments(p string) ([]string, error) {
	var parts []string
	start := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			_, end, err := parseClass(p, i)
			if err != nil {
				return nil, err
			}
			i = end - 1
		case '/':
			parts = append(parts, p[start:i])
			start = i + 1
		}
	}
	return append(parts, p[start:]), nil
}

// match reports whether the rule's pattern matches dir/name, ignoring
// negate and dirOnly.
func (r *rule) match(dir, name string) bool {
	if !r.anchored {
		return r.base.match(name)
	}
	if r.lead != "" {
		first := name
		if i := len(r.lead); len(dir) >= i && (len(dir) == i || dir[i] == '/') {
			first = dir[:i]
		} else if dir != "" {
			return false
		}
		if first != r.lead {
			return false
		}
	}
	return matchSegs(r.segs, dir, name)
}

// matchSegs matches the components of the path dir/name, without building
// that string, against segs. A "**" seg is to components what '*' is to
// characters, so this is the classic wildcard loop that remembers only the
// last star: each other seg consumes exactly one component, which makes
// backtracking to the last star enough.
func matchSegs(segs []seg, dir, name string) bool {
	end := len(dir) + 1 + len(name)
	p := 0 // offset of the current component in dir + "/" + name
	if dir == "" {
		p = 1
	}
	si := 0
	starSi, starP := -1, 0
	for {
		if si < len(segs) {
			s := &segs[si]
			if s.star {
				if si == len(segs)-1 {
					return true
				}
				starSi, starP = si, p
				si++
				continue
			}
			if p < end {
				c, next := component(dir, name, p)
				if s.glob.match(c) {
					p, si = next, si+1
					continue
				}
			}
		} else if p >= end {
			return true
		}
		if starSi < 0 || starP >= end {
			return false
		}
		_, starP = component(dir, name, starP)
		p, si = starP, starSi+1
	}
}

// component returns the component of dir + "/" + name at offset p and the
// offset of the next one.
func component(dir, name string, p int) (string, int) {
	if p > len(dir) {
		return name, len(dir) + 1 + len(name)
	}
	if i := strings.IndexByte(dir[p:], '/'); i >= 0 {
		return dir[p : p+i], p + i + 1
	}
	return dir[p:], len(dir) + 1
}
