package filter

import (
	"fmt"
	"strings"
)

// maxRsyncStars bounds the "**" components of one pattern that RsyncRules
// expands into alternatives (2^n rules).
const maxRsyncStars = 4

// RsyncRules returns the filter as rsync filter rules, one per --filter
// argument, in order: given to an rsync that recurses through the tree, they
// leave out of the transfer, and protect from --delete, what the filter
// excludes.
//
// The two syntaxes look alike but differ, and the translation takes care of
// it: in gitignore the last matching pattern decides, in rsync the first
// rule (the rules come in reverse order); a slash inside a pattern anchors
// it in gitignore, while rsync matches such a pattern against the last
// components of a path (a leading slash is added); "**/" matches zero or
// more directories in gitignore and one or more in rsync (both alternatives
// are given); a backslash escapes in every gitignore pattern but only in
// rsync patterns with a wildcard (patterns without one are given
// unescaped); other runs of asterisks are one "*" in gitignore and may cross
// a slash in rsync (they are given as one "*").
//
// One difference remains: rsync's "?" and bracket expressions match one
// byte, the filter's match one UTF-8 character, so on names with non-ASCII
// characters they may decide differently ("?.txt" matches "é.txt" here, not
// in rsync). A bracket expression with a non-ASCII member cannot be written
// for rsync at all and is an error, as is a pattern with more than four
// "**" components other than a trailing one.
func (f *Filter) RsyncRules() ([]string, error) {
	if f == nil {
		return nil, nil
	}
	var rules []string
	for i := len(f.patterns) - 1; i >= 0; i-- {
		rs, err := rsyncRules(f.patterns[i])
		if err != nil {
			return nil, fmt.Errorf("pattern %q cannot be given to rsync: %w", f.patterns[i], err)
		}
		rules = append(rules, rs...)
	}
	return rules, nil
}

// rsyncRules translates one gitignore pattern, which New accepted, into the
// rsync rules that match the same paths.
func rsyncRules(p string) ([]string, error) {
	if p == "" || p[0] == '#' {
		return nil, nil
	}
	p = trimTrailingSpaces(p)
	if p == "" {
		return nil, nil
	}
	prefix := "- "
	if p[0] == '!' {
		prefix = "+ "
		p = p[1:]
	}
	suffix := ""
	if strings.HasSuffix(p, "/") {
		suffix = "/"
		p = p[:len(p)-1]
	}
	anchored := false
	if strings.HasPrefix(p, "/") {
		anchored = true
		p = p[1:]
	}
	if p == "" {
		return nil, nil // New rejects it; nothing to match
	}
	parts, err := splitSegments(p)
	if err != nil {
		return nil, err
	}
	var comps [][]rsyncTok // nil stands for a "**" component
	for _, part := range parts {
		if part == "**" {
			if n := len(comps); n == 0 || comps[n-1] != nil {
				comps = append(comps, nil)
			}
			continue
		}
		toks, err := rsyncGlob(part)
		if err != nil {
			return nil, err
		}
		comps = append(comps, toks)
	}
	if len(comps) == 2 && comps[0] == nil {
		// "**/name" is "name" at any depth, as an unanchored pattern is.
		comps, anchored = comps[1:], false
	} else if len(parts) > 1 {
		anchored = true
	}
	if !anchored {
		if comps[0] == nil { // a lone "**" is a "*"
			comps[0] = []rsyncTok{{wild: true, text: "*"}}
		}
		return []string{prefix + renderRsync(comps) + suffix}, nil
	}
	// Each "**" but a trailing one matches zero or more directories: one
	// alternative without it, one with it.
	var stars []int
	for i, c := range comps {
		if c == nil && i < len(comps)-1 {
			stars = append(stars, i)
		}
	}
	if len(stars) > maxRsyncStars {
		return nil, fmt.Errorf("more than %d \"**\" components", maxRsyncStars)
	}
	var rules []string
	for mask := range 1 << len(stars) {
		var alt [][]rsyncTok
		for i, c := range comps {
			if c == nil && i < len(comps)-1 {
				k := 0
				for stars[k] != i {
					k++
				}
				if mask&(1<<k) == 0 {
					continue // zero directories
				}
			}
			alt = append(alt, c)
		}
		rules = append(rules, prefix+"/"+renderRsync(alt)+suffix)
	}
	return rules, nil
}

// rsyncTok is a piece of one component: a literal or a wildcard, as rsync
// writes it.
type rsyncTok struct {
	wild bool
	text string
}

// rsyncGlob splits one pattern component into literals and wildcards.
func rsyncGlob(p string) ([]rsyncTok, error) {
	var toks []rsyncTok
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			toks = append(toks, rsyncTok{text: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return nil, badPattern("trailing backslash")
			}
			i++
			lit = append(lit, p[i])
		case '*':
			flush()
			if n := len(toks); n == 0 || toks[n-1].text != "*" || !toks[n-1].wild {
				toks = append(toks, rsyncTok{wild: true, text: "*"})
			}
		case '?':
			flush()
			toks = append(toks, rsyncTok{wild: true, text: "?"})
		case '[':
			flush()
			_, end, err := parseClass(p, i)
			if err != nil {
				return nil, err
			}
			text := p[i:end]
			for j := 0; j < len(text); j++ {
				if text[j] >= 0x80 {
					return nil, fmt.Errorf("bracket expression %s has a non-ASCII member, which rsync would match byte by byte", text)
				}
			}
			toks = append(toks, rsyncTok{wild: true, text: text})
			i = end - 1
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return toks, nil
}

// renderRsync writes components as one rsync pattern. rsync reads
// backslashes as escapes only in a pattern that holds a wildcard character
// ('*', '?' or '['), so literals are escaped only then.
func renderRsync(comps [][]rsyncTok) string {
	wild := false
	for _, c := range comps {
		if c == nil {
			wild = true
		}
		for _, t := range c {
			wild = wild || t.wild || strings.ContainsAny(t.text, "*?[")
		}
	}
	var b strings.Builder
	for i, c := range comps {
		if i > 0 {
			b.WriteByte('/')
		}
		if c == nil {
			b.WriteString("**")
			continue
		}
		for _, t := range c {
			if t.wild || !wild {
				b.WriteString(t.text)
				continue
			}
			for j := 0; j < len(t.text); j++ {
				if strings.IndexByte(`*?[\`, t.text[j]) >= 0 {
					b.WriteByte('\\')
				}
				b.WriteByte(t.text[j])
			}
		}
	}
	return b.String()
}
