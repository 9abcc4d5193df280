package engine

import (
	"strings"
	"sync"
)

// linkIndex remembers which source paths share an inode, so that a live
// mirror can keep hard links linked on the target: a write through one name
// gets the target's other names relinked to the new copy, and a new name of
// a known inode becomes a link, not a copy. Only inodes with several names
// are kept, so its size follows the number of hard links, not of files.
type linkIndex struct {
	mu     sync.Mutex
	groups map[[2]uint64][]string
	byPath map[string][2]uint64
	locks  map[[2]uint64]*inodeLock
	// alone holds the link count of inodes that a full scan found under
	// one name only: their other names are outside the tree.
	alone map[[2]uint64]uint32
}

// inodeLock serialises the planning of the names of one inode: two names
// planned at once would each find the other not yet on the target and copy.
type inodeLock struct {
	sync.Mutex
	users int // guarded by linkIndex.mu
}

func newLinkIndex() *linkIndex {
	return &linkIndex{groups: map[[2]uint64][]string{}, byPath: map[string][2]uint64{}, locks: map[[2]uint64]*inodeLock{}, alone: map[[2]uint64]uint32{}}
}

// lock holds key's lock until the returned function is called.
func (x *linkIndex) lock(key [2]uint64) (unlock func()) {
	x.mu.Lock()
	l := x.locks[key]
	if l == nil {
		l = &inodeLock{}
		x.locks[key] = l
	}
	l.users++
	x.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		x.mu.Lock()
		if l.users--; l.users == 0 {
			delete(x.locks, key)
		}
		x.mu.Unlock()
	}
}

// set records that path has inode key.
func (x *linkIndex) set(path string, key [2]uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byPath[path]; ok {
		if old == key {
			return
		}
		x.removeLocked(path)
	}
	x.byPath[path] = key
	x.groups[key] = append(x.groups[key], path)
}

// remove forgets path.
func (x *linkIndex) remove(path string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(path)
}

func (x *linkIndex) removeLocked(path string) {
	key, ok := x.byPath[path]
	if !ok {
		return
	}
	delete(x.byPath, path)
	g := x.groups[key]
	for i, p := range g {
		if p == path {
			g = append(g[:i], g[i+1:]...)
			break
		}
	}
	if len(g) == 0 {
		delete(x.groups, key)
	} else {
		x.groups[key] = g
	}
}

// others returns the other paths known to share path's inode key.
func (x *linkIndex) others(path string, key [2]uint64) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for _, p := range x.groups[key] {
		if p != path {
			out = append(out, p)
		}
	}
	return out
}

// rename moves every path at or below from to the same place below to.
func (x *linkIndex) rename(from, to string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var moved []string
	for p := range x.byPath {
		if p == from || strings.HasPrefix(p, from+"/") {
			moved = append(moved, p)
		}
	}
	for _, p := range moved {
		key := x.byPath[p]
		x.removeLocked(p)
		np := to + p[len(from):]
		x.removeLocked(np)
		x.byPath[np] = key
		x.groups[key] = append(x.groups[key], np)
	}
}

// unresolved reports whether an inode with nlink names, of which only one
// is known, has not been looked for yet at this link count.
func (x *linkIndex) unresolved(key [2]uint64, nlink uint32) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.alone[key] != nlink
}

// merge adds the groups a tree sync found. A full scan (of the root) also
// records the inodes it found under one name only.
func (x *linkIndex) merge(s *syncer, full bool) {
	for key, g := range s.links {
		if len(g.paths) < 2 {
			if full {
				x.mu.Lock()
				x.alone[key] = g.nlink
				x.mu.Unlock()
			}
			continue
		}
		for _, p := range g.paths {
			x.set(p, key)
		}
	}
}
