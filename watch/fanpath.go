package watch

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
)

// dirState is where a directory named by a fanotify event is.
type dirState uint8

const (
	// dirOutside: not below the root; its events are not ours.
	dirOutside dirState = iota
	// dirInside: below the root (or the root), at rel.
	dirInside
	// dirExcluded: below the root, in or below an excluded directory.
	dirExcluded
	// dirGone: the directory no longer exists (ESTALE). Its events are
	// dropped: see the package documentation for why that loses nothing.
	dirGone
	// dirUnnamed: below the root, but its path could not be had (longer
	// than the kernel names, or the handle could not be opened for want of
	// a resource): rel is its deepest ancestor that could be named, which
	// is rescanned instead.
	dirUnnamed
)

// dirInfo is what a directory handle resolved to.
type dirInfo struct {
	state dirState
	rel   string
}

// dirCache maps directory handles (the key of a fanRecord) to what they
// resolved to. It
// keeps at most about 2*max entries in two generations: a lookup in the old
// one moves the entry to the new one, and when the new one is full it
// becomes the old one and the old one is dropped: the least recently used
// half is forgotten, without a list to maintain per lookup.
type dirCache struct {
	cur, old map[string]dirInfo
	max      int
}

// dirCacheSize is the size of a generation of the cache: 16384 directories
// whose events come often stay cached, in a few MB.
var dirCacheSize = 16384

func (c *dirCache) init() {
	c.max = dirCacheSize
	c.clear()
}

func (c *dirCache) clear() {
	c.cur, c.old = make(map[string]dirInfo), nil
}

func (c *dirCache) get(key []byte) (dirInfo, bool) {
	if d, ok := c.cur[string(key)]; ok {
		return d, true
	}
	if d, ok := c.old[string(key)]; ok {
		c.put(key, d)
		return d, true
	}
	return dirInfo{}, false
}

func (c *dirCache) put(key []byte, d dirInfo) {
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]dirInfo, c.max)
	}
	c.cur[string(key)] = d
}

func (c *dirCache) len() int { return len(c.cur) + len(c.old) }

// fanRecord is a directory named by an event: the file handle of the
// directory and a name in it ("." for the directory itself).
type fanRecord struct {
	key    []byte // fsid, handle size, type and bytes: the directory's identity
	fsid   []byte // 8 bytes
	htype  int32
	handle []byte
	name   []byte
}

// resolve returns where the directory of r is, from the cache or by
// opening its handle and asking the kernel its path.
func (f *fanState) resolve(r *fanRecord) dirInfo {
	if d, ok := f.cache.get(r.key); ok {
		return d
	}
	if !f.rootChecked {
		// Once per read; a directory found outside is checked again
		// (see lookup).
		f.refreshRoot()
		f.rootChecked = true
	}
	if f.rootGone {
		return dirInfo{state: dirOutside}
	}
	d, cache := f.lookup(r)
	if cache {
		f.cache.put(r.key, d)
	}
	return d
}

// lookup resolves r's directory; cache says whether the answer may be
// cached (an answer that depends on a passing condition may not).
func (f *fanState) lookup(r *fanRecord) (d dirInfo, cache bool) {
	mfd := f.mountFd(r.fsid)
	if mfd < 0 {
		// Not a file system we marked, or one unmounted since: whatever
		// happens there is not below the root any more.
		return dirInfo{state: dirOutside}, false
	}
	fd, err := openByHandle(mfd, r.htype, r.handle)
	switch {
	case err == unix.ESTALE || err == unix.ENOENT:
		return dirInfo{state: dirGone}, true
	case err != nil:
		// For want of a descriptor or memory: where it is cannot be told
		// now, so the whole tree is rescanned (it is not cached: the next
		// event asks again).
		return dirInfo{state: dirUnnamed}, false
	}
	defer unix.Close(fd)
	for range maxRootMoves {
		path, err := fdPath(fd)
		if err == unix.ENAMETOOLONG {
			return f.deepest(fd), true
		}
		if err != nil {
			return dirInfo{state: dirUnnamed}, false
		}
		if strings.HasSuffix(path, " (deleted)") && unlinked(fd) {
			return dirInfo{state: dirGone}, true
		}
		d = f.classify(path)
		if d.state != dirOutside {
			return d, true
		}
		// Outside, unless the root moved since its path was read (a
		// rename above it): then both are read again.
		was := f.rootAbs
		f.refreshRoot()
		if f.rootAbs == was || f.rootGone {
			return d, true
		}
	}
	return dirInfo{state: dirUnnamed}, false // the root keeps moving
}

// maxRootMoves bounds the reads of a path while the root keeps moving.
const maxRootMoves = 4

// classify says where the directory at absolute path abs is.
func (f *fanState) classify(abs string) dirInfo {
	rel, ok := relTo(f.rootAbs, abs)
	if !ok {
		return dirInfo{state: dirOutside}
	}
	if f.w.excludedBelow(rel) {
		return dirInfo{state: dirExcluded, rel: rel}
	}
	return dirInfo{state: dirInside, rel: rel}
}

// relTo returns abs relative to root, if it is root or below it.
func relTo(root, abs string) (string, bool) {
	if abs == root {
		return "", true
	}
	prefix := root + "/"
	if root == "/" {
		prefix = "/"
	}
	if !strings.HasPrefix(abs, prefix) || len(abs) == len(prefix) {
		return "", false
	}
	rel := abs[len(prefix):]
	if !fsmirror.IsValidPath(rel) {
		return "", false
	}
	return rel, true
}

// excludedBelow reports whether the directory at rel is excluded or below an
// excluded directory: what the inotify backend never watches.
func (w *Watcher) excludedBelow(rel string) bool {
	if w.exclude == nil || rel == "" {
		return false
	}
	for i := 0; i <= len(rel); i++ {
		if i == len(rel) || rel[i] == '/' {
			if w.exclude(rel[:i], true) {
				return true
			}
		}
	}
	return false
}

// maxDepthUp bounds the walk up from a directory whose path is too long.
const maxDepthUp = 4096

// deepest finds the deepest ancestor of the directory open as fd whose path
// the kernel can name, for a directory whose own path is too long.
func (f *fanState) deepest(fd int) dirInfo {
	cur := fd
	defer func() {
		if cur != fd {
			unix.Close(cur)
		}
	}()
	for range maxDepthUp {
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		if cur != fd {
			unix.Close(cur)
		}
		cur = up
		path, err := fdPath(cur)
		if err == unix.ENAMETOOLONG {
			continue
		}
		if err != nil {
			break
		}
		d := f.classify(path)
		if d.state == dirInside {
			d.state = dirUnnamed
		}
		return d
	}
	return dirInfo{state: dirUnnamed}
}

// openByHandle opens the file whose handle is htype, handle with O_PATH, on
// the file system of mountFd.
func openByHandle(mountFd int, htype int32, handle []byte) (int, error) {
	for {
		fd, err := unix.OpenByHandleAt(mountFd, unix.NewFileHandle(htype, handle), unix.O_PATH|unix.O_CLOEXEC)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fdPath returns the path of the file open as fd, as the kernel names it
// (through the mount the descriptor was opened on).
func fdPath(fd int) (string, error) {
	var buf [unix.PathMax + 1]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", unix.ENAMETOOLONG
	}
	if n == 0 || buf[0] != '/' {
		// "(unreachable)/...": not reachable from our root directory.
		return "", unix.ENOENT
	}
	return string(buf[:n]), nil
}

// unlinked reports whether the directory open as fd was removed.
func unlinked(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Nlink == 0
}

// recordKey returns the identity of r's name: its directory and the name.
func recordKey(r *fanRecord) string {
	var b bytes.Buffer
	b.Grow(len(r.key) + 1 + len(r.name))
	b.Write(r.key)
	b.WriteByte('/')
	b.Write(r.name)
	return b.String()
}
