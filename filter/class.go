package filter

import "strings"

// A class is a bracket expression: "[abc]", "[a-z]", "[!a]", "[^a]",
// "[[:digit:]]". It matches one character (see charAt).
type class struct {
	negate bool
	ascii  [2]uint64  // members below utf8.RuneSelf, as a bit set
	ranges []runeSpan // the other members
}

type runeSpan struct{ lo, hi rune }

// posixClasses are the named classes git's wildmatch knows, with the
// meaning they have in the C locale: ASCII only.
var posixClasses = map[string]func(c rune) bool{
	"alnum":  func(c rune) bool { return isAlpha(c) || isDigit(c) },
	"alpha":  isAlpha,
	"blank":  func(c rune) bool { return c == ' ' || c == '\t' },
	"cntrl":  func(c rune) bool { return c < ' ' || c == 0x7f },
	"digit":  isDigit,
	"graph":  func(c rune) bool { return c > ' ' && c < 0x7f },
	"lower":  func(c rune) bool { return c >= 'a' && c <= 'z' },
	"print":  func(c rune) bool { return c >= ' ' && c < 0x7f },
	"punct":  func(c rune) bool { return c > ' ' && c < 0x7f && !isAlpha(c) && !isDigit(c) },
	"space":  func(c rune) bool { return c == ' ' || (c >= '\t' && c <= '\r') },
	"upper":  func(c rune) bool { return c >= 'A' && c <= 'Z' },
	"xdigit": func(c rune) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') },
}

func isAlpha(c rune) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c rune) bool { return c >= '0' && c <= '9' }

// parseClass parses the bracket expression that starts at p[i] == '[' and
// returns it with the offset just past its closing ']'. As in git, a ']'
// right after "[" or "[!" is a member, a '-' first or last is a member, and
// a backslash makes the next character a member.
func parseClass(p string, i int) (*class, int, error) {
	cl := &class{}
	j := i + 1
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		cl.negate = true
		j++
	}
	first := true
	for {
		if j >= len(p) {
			return nil, 0, badPattern("unclosed '['")
		}
		if p[j] == ']' && !first {
			return cl, j + 1, nil
		}
		first = false
		if strings.HasPrefix(p[j:], "[:") {
			if k := strings.Index(p[j+2:], ":]"); k >= 0 {
				name := p[j+2 : j+2+k]
				is, ok := posixClasses[name]
				if !ok {
					return nil, 0, badPattern("unknown character class [:" + name + ":]")
				}
				for c := rune(0); c < 0x80; c++ {
					if is(c) {
						cl.addASCII(c)
					}
				}
				j += 2 + k + 2
				continue
			}
		}
		start := j
		lo, next, err := classChar(p, j)
		if err != nil {
			return nil, 0, err
		}
		j = next
		hi := lo
		if j+1 < len(p) && p[j] == '-' && p[j+1] != ']' {
			hi, j, err = classChar(p, j+1)
			if err != nil {
				return nil, 0, err
			}
			if hi < lo {
				return nil, 0, badPattern("invalid range " + p[start:j] + " (end before start)")
			}
		}
		cl.add(lo, hi)
	}
}

// classChar reads one member character at p[j], which may be escaped.
func classChar(p string, j int) (rune, int, error) {
	if p[j] == '\\' {
		j++
		if j >= len(p) {
			return 0, 0, badPattern("unclosed '['")
		}
	}
	c, w := charAt(p[j:])
	return c, j + w, nil
}

func (cl *class) addASCII(c rune) { cl.ascii[c>>6] |= 1 << (c & 63) }

// add adds the characters lo to hi.
func (cl *class) add(lo, hi rune) {
	for ; lo <= hi && lo < 0x80; lo++ {
		cl.addASCII(lo)
	}
	if lo <= hi {
		cl.ranges = append(cl.ranges, runeSpan{lo, hi})
	}
}

// match reports whether the character c is in the class.
func (cl *class) match(c rune) bool {
	in := false
	if c < 0x80 {
		in = cl.ascii[c>>6]&(1<<(c&63)) != 0
	} else {
		for _, r := range cl.ranges {
			if c >= r.lo && c <= r.hi {
				in = true
				break
			}
		}
	}
	return in != cl.negate
}
