package filter

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// randomPattern returns a random pattern over a small alphabet and the
// regular expression that, by git's documentation, matches the same paths:
// an independent, obviously-correct implementation to compare with.
func randomPattern(rng *rand.Rand) (pattern, re string) {
	type tok struct{ pat, re string }
	toks := []tok{
		{"a", "a"}, {"b", "b"}, {"*", "[^/]*"}, {"?", "[^/]"},
		{"[ab]", "[ab]"}, {"[!a]", "[^/a]"}, {`\*`, `\*`}, {"**", "[^/]*"},
	}
	nseg := 1 + rng.IntN(4)
	anchored := nseg > 1 || rng.IntN(3) == 0
	var pat, rx strings.Builder
	if anchored && (nseg == 1 || rng.IntN(2) == 0) {
		pat.WriteString("/")
	}
	for i := range nseg {
		last := i == nseg-1
		if i > 0 {
			pat.WriteString("/")
		}
		var seg, segRe strings.Builder
		for range 1 + rng.IntN(4) {
			t := toks[rng.IntN(len(toks))]
			seg.WriteString(t.pat)
			segRe.WriteString(t.re)
		}
		if anchored && (rng.IntN(4) == 0 || seg.String() == "**") {
			// A whole component "**" crosses directories.
			pat.WriteString("**")
			if last {
				rx.WriteString("[^/]+(?:/[^/]+)*")
			} else {
				rx.WriteString("(?:[^/]+/)*")
			}
			continue
		}
		pat.WriteString(seg.String())
		rx.WriteString(segRe.String())
		if !last {
			rx.WriteString("/")
		}
	}
	return pat.String(), "^" + rx.String() + "$"
}

func randomPath(rng *rand.Rand) string {
	names := []string{"a", "b", "ab", "ba", "aab", "bb", "*", "a*", "x"}
	parts := make([]string, 1+rng.IntN(4))
	for i := range parts {
		parts[i] = names[rng.IntN(len(names))]
	}
	return strings.Join(parts, "/")
}

func TestFilter_ExcludedNameAgainstRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	matched, total := 0, 0
	for range 3000 {
		pat, rx := randomPattern(rng)
		f, err := New([]string{pat})
		if err != nil {
			t.Fatalf("New(%q): %v", pat, err)
		}
		re := regexp.MustCompile(rx)
		for range 30 {
			path := randomPath(rng)
			dir, name := split(path)
			subject := path
			if !strings.Contains(strings.TrimSuffix(pat, "/"), "/") {
				subject = name // no slash: the pattern matches the name
			}
			if got, want := f.ExcludedName(dir, name, false), re.MatchString(subject); got != want {
				t.Fatalf("pattern %q, path %q: ExcludedName = %v, regexp %s says %v", pat, path, got, rx, want)
			} else if got {
				matched++
			}
			total++
		}
	}
	if matched < total/20 || matched > total-total/20 {
		t.Errorf("only %d of %d paths matched: the generator is too one-sided to test much", matched, total)
	}
	t.Logf("%d of %d paths matched", matched, total)
}
