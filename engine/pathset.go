package engine

// pathSet is a multiset of paths that answers "does anything in the set
// touch this path" (the path itself, an ancestor or a descendant) in
// O(depth) map lookups, so that the dispatcher can check each queued item
// against every busy and blocked one without comparing them pairwise.
type pathSet struct {
	exact map[string]int // the paths
	below map[string]int // the strict ancestors of the paths, "" included
}

func newPathSet() *pathSet {
	return &pathSet{exact: map[string]int{}, below: map[string]int{}}
}

func (s *pathSet) reset() {
	clear(s.exact)
	clear(s.below)
}

// add adds the paths an item touches.
func (s *pathSet) add(it *item) {
	s.addPath(it.path, 1)
	if it.kind == itemRename {
		s.addPath(it.from, 1)
	}
}

// remove removes what add added for it; it must not have changed since.
func (s *pathSet) remove(it *item) {
	s.addPath(it.path, -1)
	if it.kind == itemRename {
		s.addPath(it.from, -1)
	}
}

func (s *pathSet) addPath(p string, n int) {
	bump(s.exact, p, n)
	for p != "" {
		p = parentOf(p)
		bump(s.below, p, n)
	}
}

func bump(m map[string]int, k string, n int) {
	if m[k]+n == 0 {
		delete(m, k)
	} else {
		m[k] += n
	}
}

// overlaps reports whether a path of it is a path of the set, or above or
// below one: what a pairwise check against every item of the set would say.
func (s *pathSet) overlaps(it *item) bool {
	return s.touches(it.path) || it.kind == itemRename && s.touches(it.from)
}

func (s *pathSet) touches(p string) bool {
	if len(s.exact) == 0 {
		return false
	}
	if s.exact[p] > 0 || s.below[p] > 0 {
		return true // p itself, or something below it
	}
	return s.hasAncestor(p)
}

// hasAncestor reports whether a strict ancestor of p is in the set.
func (s *pathSet) hasAncestor(p string) bool {
	for p != "" {
		p = parentOf(p)
		if s.exact[p] > 0 {
			return true
		}
	}
	return false
}

// covers reports whether p or one of its ancestors is in the set: then
// whatever touches p touches the set.
func (s *pathSet) covers(p string) bool {
	return s.exact[p] > 0 || s.hasAncestor(p)
}
