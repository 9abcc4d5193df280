// Package fsys gives openat-style access to a directory tree: every path is
// resolved component by component from an open directory, never following a
// symlink, so a path may be longer than PATH_MAX and a symlink planted inside
// the tree can never lead an operation outside it.
//
// Open directories are kept in a small cache keyed by path, so that the many
// operations fsmirror does in one directory cost one lookup, not one per
// component. A caller that renames or removes a directory must Invalidate it;
// a caller that cannot know (a tree changed by others while watched) uses a
// Root opened with NoCache.
package fsys

import (
	"container/list"
	"errors"
	"io/fs"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// cacheSize bounds the number of directory descriptors a Root keeps open.
var cacheSize = 1024

// Root is an open directory tree.
type Root struct {
	path    string
	root    *Dir
	noCache bool

	mu    sync.Mutex
	dirs  map[string]*list.Element // of *Dir, front is most recently used
	lru   list.List
	limit int
}

// Dir is an open directory of a Root. It must be released after use.
type Dir struct {
	fd   int
	path string
	refs int // guarded by Root.mu
	r    *Root

	// A directory opened for reading is listed through its own descriptor,
	// which saves an open and a close per listing; one without read
	// permission is opened as a path only, to reach what is below it.
	readable bool
	mu       sync.Mutex // serialises listings through fd
	listed   bool       // fd's offset must be rewound before the next listing
}

// FD returns the directory's descriptor, valid until Release.
func (d *Dir) FD() int { return d.fd }

// Release drops the caller's reference.
func (d *Dir) Release() {
	if d == nil || d == d.r.root {
		return
	}
	d.r.mu.Lock()
	d.refs--
	closeIt := d.refs == 0
	d.r.mu.Unlock()
	if closeIt {
		unix.Close(d.fd)
	}
}

// OpenRoot opens the directory at path (following symlinks in path itself:
// it is the user's choice of tree).
func OpenRoot(path string, noCache bool) (*Root, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	r := &Root{path: path, noCache: noCache, dirs: map[string]*list.Element{}, limit: cacheSize}
	r.root = &Dir{fd: fd, r: r, refs: 1}
	return r, nil
}

// Path returns the path the root was opened with.
func (r *Root) Path() string { return r.path }

// Close closes the root and every cached directory.
func (r *Root) Close() error {
	r.mu.Lock()
	for e := r.lru.Front(); e != nil; e = e.Next() {
		d := e.Value.(*Dir)
		d.refs--
		if d.refs == 0 {
			unix.Close(d.fd)
		}
	}
	r.dirs = map[string]*list.Element{}
	r.lru.Init()
	r.mu.Unlock()
	return unix.Close(r.root.fd)
}

// OpenDir returns the directory at rel, which must be a directory and not a
// symlink. Release it after use.
func (r *Root) OpenDir(rel string) (*Dir, error) {
	if rel == "" {
		return r.root, nil
	}
	if !r.noCache {
		r.mu.Lock()
		if e, ok := r.dirs[rel]; ok {
			d := e.Value.(*Dir)
			d.refs++
			r.lru.MoveToFront(e)
			r.mu.Unlock()
			return d, nil
		}
		r.mu.Unlock()
	}
	parent, name := fsmirror.Split(rel)
	pd, err := r.OpenDir(parent)
	if err != nil {
		return nil, err
	}
	readable := true
	fd, err := openat(pd.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.EACCES {
		readable = false
		fd, err = openat(pd.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	pd.Release()
	if err != nil {
		if err == unix.ELOOP {
			err = unix.ENOTDIR // a symlink where a directory is expected
		}
		return nil, &fs.PathError{Op: "open directory", Path: rel, Err: err}
	}
	d := &Dir{fd: fd, path: rel, refs: 1, r: r, readable: readable}
	if r.noCache {
		return d, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.dirs[rel]; ok { // another goroutine opened it meanwhile
		unix.Close(fd)
		d := e.Value.(*Dir)
		d.refs++
		r.lru.MoveToFront(e)
		return d, nil
	}
	d.refs++ // the cache's reference
	r.dirs[rel] = r.lru.PushFront(d)
	for r.lru.Len() > r.limit {
		r.evict(r.lru.Back())
	}
	return d, nil
}

// evict drops the cache's reference to e. Called with r.mu held.
func (r *Root) evict(e *list.Element) {
	d := e.Value.(*Dir)
	r.lru.Remove(e)
	delete(r.dirs, d.path)
	d.refs--
	if d.refs == 0 {
		unix.Close(d.fd)
	}
}

// Invalidate forgets the cached directory rel and everything below it. Call
// it after renaming or removing a directory.
func (r *Root) Invalidate(rel string) {
	if r.noCache {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rel == "" {
		for r.lru.Len() > 0 {
			r.evict(r.lru.Front())
		}
		return
	}
	prefix := rel + "/"
	for e := r.lru.Front(); e != nil; {
		next := e.Next()
		p := e.Value.(*Dir).path
		if p == rel || strings.HasPrefix(p, prefix) {
			r.evict(e)
		}
		e = next
	}
}

// Parent opens the directory holding rel and returns it with rel's base name.
func (r *Root) Parent(rel string) (*Dir, string, error) {
	if rel == "" {
		return nil, "", errors.New("the root has no parent")
	}
	dir, name := fsmirror.Split(rel)
	d, err := r.OpenDir(dir)
	return d, name, err
}

// openat retries on EINTR, which a Go program sees under signal load.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// PathErr wraps err as a *fsmirror.PathError about rel. An error that already
// names a path (a directory on the way that could not be opened) keeps it,
// since that is the path the user must look at.
func PathErr(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	var fe *fsmirror.PathError
	if errors.As(err, &fe) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Op == "open directory" && pe.Path != rel {
			return &fsmirror.PathError{Op: pe.Op, Path: pe.Path, Err: pe.Err}
		}
		err = pe.Err
	}
	return &fsmirror.PathError{Op: op, Path: rel, Err: err}
}

// Clone returns a new Root on the same directory with a cache of its own.
// A tree that others change (a watched source) is read through short-lived
// clones: a cached directory that was renamed since would be read under its
// old name.
func (r *Root) Clone() (*Root, error) {
	fd, err := unix.Openat(r.root.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.path, Err: err}
	}
	c := &Root{path: r.path, dirs: map[string]*list.Element{}, limit: cacheSize}
	c.root = &Dir{fd: fd, r: c, refs: 1}
	return c, nil
}

// Sub returns a new Root on the directory rel below r, which is resolved
// like every other path of r: a symlink on the way is refused (ENOTDIR), so
// the new Root can never lie outside r. With create, missing directories on
// the way are made, owner-only.
func (r *Root) Sub(rel string, create, noCache bool) (*Root, error) {
	if !fsmirror.IsValidPath(rel) {
		return nil, &fs.PathError{Op: "open directory", Path: rel, Err: unix.EINVAL}
	}
	d, err := r.OpenDir(rel)
	if create && errors.Is(err, unix.ENOENT) {
		err = r.mkdirAll(rel)
		if err == nil {
			d, err = r.OpenDir(rel)
		}
	}
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	d.Release()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	s := &Root{path: r.path + "/" + rel, noCache: noCache, dirs: map[string]*list.Element{}, limit: cacheSize}
	if rel == "" {
		s.path = r.path
	}
	s.root = &Dir{fd: fd, r: s, refs: 1}
	return s, nil
}

// mkdirAll makes the directory rel and its missing parents, owner-only.
func (r *Root) mkdirAll(rel string) error {
	if rel == "" {
		return nil
	}
	if d, err := r.OpenDir(rel); err == nil {
		d.Release()
		return nil
	}
	parent, name := fsmirror.Split(rel)
	if err := r.mkdirAll(parent); err != nil {
		return err
	}
	pd, err := r.OpenDir(parent)
	if err != nil {
		return err
	}
	defer pd.Release()
	if err := unix.Mkdirat(pd.fd, name, 0o700); err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "create directory", Path: rel, Err: err}
	}
	return nil
}
