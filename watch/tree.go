package watch

import (
	"github.com/fsmirror/fsmirror"
)

// node is one watched directory. A node knows its parent and its name, not
// its path, so renaming a directory changes one node however deep the tree
// below it is. Paths are computed on demand and cached until the tree's
// shape changes.
type node struct {
	wd       int32
	parent   *node            // nil for the root and for a detached node
	name     string           // name in parent
	children map[string]*node // watched subdirectories by name
	path     string           // cached path, valid while pathGen == tree.gen
	pathGen  uint64
	seen     uint64 // the last walk that visited the node
	born     uint64 // the walk that created the node
}

// lostKey names a directory that appeared but could not be opened by its
// path, most likely because an ancestor was renamed by an event still in the
// queue: it is watched when that rename is processed.
type lostKey struct {
	parent *node
	name   string
}

// maxLost bounds the lost directories remembered; beyond it the watcher
// walks the whole tree again instead.
const maxLost = 1024

// tree maps watch descriptors to the directories they watch.
type tree struct {
	top     *node
	wds     map[int32]*node
	gen     uint64               // bumped when the tree's shape changes
	epoch   uint64               // walk counter
	removed map[int32]struct{}   // wds we removed whose IN_IGNORED is still to come
	lost    map[lostKey]struct{} // see lostKey
	// unwatched: directories not watched for want of inotify watches
	// (see partial.go)
	unwatched map[lostKey]struct{}
}

func (t *tree) init() {
	t.wds = make(map[int32]*node)
	t.removed = make(map[int32]struct{})
	t.gen = 1
}

// pathOf returns n's path, or false if n is detached from the root.
func (t *tree) pathOf(n *node) (string, bool) {
	if n == t.top {
		return "", true
	}
	if n.pathGen == t.gen {
		return n.path, true
	}
	if n.parent == nil {
		return "", false
	}
	dir, ok := t.pathOf(n.parent)
	if !ok {
		return "", false
	}
	n.path, n.pathGen = fsmirror.Join(dir, n.name), t.gen
	return n.path, true
}

// attach makes n the child name of parent, detaching whatever was there.
// A move that would put n below itself detaches n instead.
func (t *tree) attach(n, parent *node, name string) {
	if n.parent == parent && n.name == name && parent.children[name] == n {
		return
	}
	if t.isAncestor(n, parent) {
		return
	}
	t.detach(n)
	if old := parent.children[name]; old != nil {
		t.detach(old)
	}
	n.parent, n.name = parent, name
	if parent.children == nil {
		parent.children = make(map[string]*node)
	}
	parent.children[name] = n
	t.gen++
}

// isAncestor reports whether a is x or above it.
func (t *tree) isAncestor(a, x *node) bool {
	for ; x != nil; x = x.parent {
		if x == a {
			return true
		}
	}
	return false
}

// detach removes n from its parent. Events on a detached node (or below it)
// are dropped until it is attached again or removed.
func (t *tree) detach(n *node) {
	if p := n.parent; p != nil {
		if p.children[n.name] == n {
			delete(p.children, n.name)
		}
		n.parent = nil
		t.gen++
	}
}

// forget removes n and the nodes below it from the tree, without removing
// their watches. It returns the removed nodes.
func (t *tree) forget(n *node) []*node {
	t.detach(n)
	var gone []*node
	stack := []*node{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if t.wds[x.wd] == x {
			delete(t.wds, x.wd)
			gone = append(gone, x)
		}
		for _, c := range x.children {
			stack = append(stack, c)
		}
		x.children = nil
	}
	for _, m := range []map[lostKey]struct{}{t.lost, t.unwatched} {
		for k := range m {
			if t.wds[k.parent.wd] != k.parent {
				delete(m, k)
			}
		}
	}
	return gone
}

// drop removes n and the nodes below it, and their watches.
func (w *Watcher) drop(n *node) {
	for _, x := range w.forget(n) {
		w.rmWatch(x.wd)
		w.removed[x.wd] = struct{}{}
	}
}

// addLost remembers that directory name in parent could not be opened.
func (w *Watcher) addLost(parent *node, name string) {
	if w.lost == nil {
		w.lost = make(map[lostKey]struct{})
	}
	if len(w.lost) >= maxLost {
		w.lost = nil
		w.resyncAll = true
		return
	}
	w.lost[lostKey{parent, name}] = struct{}{}
}

// retryLost watches the lost directories at or below n, whose path may have
// just become known.
func (w *Watcher) retryLost(n *node, emit func(Event)) error {
	if len(w.lost) == 0 || n == nil {
		return nil
	}
	var retry []lostKey
	for k := range w.lost {
		for p := k.parent; p != nil; p = p.parent {
			if p == n {
				retry = append(retry, k)
				break
			}
		}
	}
	for _, k := range retry {
		delete(w.lost, k)
		dir, ok := w.pathOf(k.parent)
		if !ok {
			continue
		}
		if err := w.newDir(k.parent, k.name, fsmirror.Join(dir, k.name), true, emit); err != nil {
			return err
		}
	}
	return nil
}
