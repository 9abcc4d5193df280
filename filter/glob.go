package filter

import (
	"strings"
	"unicode/utf8"
)

// A character of a name is a valid UTF-8 sequence, decoded to its rune, or
// one byte that does not belong to such a sequence, encoded as
// invalidBase+byte so that it equals no rune and sorts after all of them.
const invalidBase = utf8.MaxRune + 1

// charAt decodes the character at the start of the non-empty s.
func charAt(s string) (c rune, width int) {
	if s[0] < utf8.RuneSelf {
		return rune(s[0]), 1
	}
	r, w := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && w == 1 {
		return invalidBase + rune(s[0]), 1
	}
	return r, w
}

// A glob matches one path component (a name, never containing '/').
type glob struct {
	kind globKind
	lit  string  // for the literal kinds: the literal part
	toks []token // for globGeneral
}

// globKind picks a matcher; all but globGeneral are shortcuts for the
// shapes most exclude patterns have.
type globKind uint8

const (
	globGeneral  globKind = iota
	globLiteral           // "name"
	globPrefix            // "lit*"
	globSuffix            // "*lit"
	globContains          // "*lit*"
	globAny               // "*"
)

type tokKind uint8

const (
	tokLit   tokKind = iota // a run of literal bytes
	tokOne                  // "?"
	tokStar                 // "*"
	tokClass                // "[...]"
)

type token struct {
	kind tokKind
	lit  string
	// valid is set when lit is valid UTF-8. Byte equality then means
	// character equality; otherwise a literal that ends in an incomplete
	// sequence could match the first bytes of a longer character.
	valid bool
	class *class
}

// compileGlob compiles one component of a pattern.
func compileGlob(p string) (glob, error) {
	var toks []token
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			s := string(lit)
			toks = append(toks, token{kind: tokLit, lit: s, valid: utf8.ValidString(s)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return glob{}, badPattern("trailing backslash")
			}
			i++
			lit = append(lit, p[i])
		case '*':
			flush()
			if n := len(toks); n == 0 || toks[n-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
		case '?':
			flush()
			toks = append(toks, token{kind: tokOne})
		case '[':
			flush()
			cl, end, err := parseClass(p, i)
			if err != nil {
				return glob{}, err
			}
			toks = append(toks, token{kind: tokClass, class: cl})
			i = end - 1
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return simplify(toks), nil
}

// simplify picks a shortcut kind for toks where one fits.
func simplify(toks []token) glob {
	isLit := func(t token) bool { return t.kind == tokLit && t.valid }
	isStar := func(t token) bool { return t.kind == tokStar }
	switch {
	case len(toks) == 1 && isLit(toks[0]):
		return glob{kind: globLiteral, lit: toks[0].lit}
	case len(toks) == 1 && isStar(toks[0]):
		return glob{kind: globAny}
	case len(toks) == 2 && isLit(toks[0]) && isStar(toks[1]):
		return glob{kind: globPrefix, lit: toks[0].lit}
	case len(toks) == 2 && isStar(toks[0]) && isLit(toks[1]):
		return glob{kind: globSuffix, lit: toks[1].lit}
	case len(toks) == 3 && isStar(toks[0]) && isLit(toks[1]) && isStar(toks[2]):
		return glob{kind: globContains, lit: toks[1].lit}
	}
	return glob{kind: globGeneral, toks: toks}
}

// match reports whether the glob matches the name s.
//
// The shortcuts compare bytes. That is also a comparison of characters
// because their literal is valid UTF-8: it starts with a byte that begins a
// character, which no decoding of the bytes before it can swallow, and it
// ends with a complete character.
func (g *glob) match(s string) bool {
	switch g.kind {
	case globLiteral:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	case globContains:
		return strings.Contains(s, g.lit)
	case globAny:
		return true
	}
	return matchTokens(g.toks, s)
}

// matchTokens is the classic wildcard loop: every token but '*' consumes a
// fixed amount of s, so on a mismatch it is enough to let the last '*'
// swallow one more character and retry from there.
func matchTokens(toks []token, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case tokStar:
				if ti == len(toks)-1 {
					return true
				}
				starTi, starSi = ti, si
				ti++
				continue
			case tokLit:
				if n, ok := t.matchLit(s[si:]); ok {
					si += n
					ti++
					continue
				}
			case tokOne:
				if si < len(s) {
					_, w := charAt(s[si:])
					si += w
					ti++
					continue
				}
			case tokClass:
				if si < len(s) {
					c, w := charAt(s[si:])
					if t.class.match(c) {
						si += w
						ti++
						continue
					}
				}
			}
		} else if si == len(s) {
			return true
		}
		if starTi < 0 || starSi == len(s) {
			return false
		}
		_, w := charAt(s[starSi:])
		starSi += w
		si, ti = starSi, starTi+1
	}
}

// matchLit reports whether s starts with the literal t, character for
// character, and how many bytes that is.
func (t *token) matchLit(s string) (int, bool) {
	if !strings.HasPrefix(s, t.lit) {
		return 0, false
	}
	if t.valid {
		return len(t.lit), true
	}
	for i := 0; i < len(t.lit); {
		c1, w1 := charAt(t.lit[i:])
		c2, w2 := charAt(s[i:])
		if c1 != c2 || w1 != w2 {
			return 0, false
		}
		i += w1
	}
	return len(t.lit), true
}
