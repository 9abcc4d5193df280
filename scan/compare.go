package scan

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/internal/fsys"
)

// CompareOptions tune Compare.
type CompareOptions struct {
	Checksum bool           // compare the content of files of equal size
	Owner    bool           // compare owner and group
	AsRoot   bool           // fifos and devices are mirrored (see fsmirror.Mirrorable)
	Filter   *filter.Filter // excluded paths are not compared
	Workers  int
}

// Difference is one way in which a destination differs from its source.
type Difference struct {
	Path string
	What string // e.g. "missing in destination", "size 10 != 12"
}

// String returns "path: what".
func (d Difference) String() string { return fsmirror.QuotePath(d.Path) + ": " + d.What }

// Compare walks src and dst side by side and returns their differences,
// sorted by path, and the errors that kept parts of the trees from being
// compared. Only what a sync mirrors is compared: excluded paths, and special
// files that would not be mirrored, are left out. Directory mtimes are
// compared like any other.
func Compare(ctx context.Context, src, dst *fsys.Root, opt CompareOptions) ([]Difference, []error) {
	c := &comparer{src: src, dst: dst, opt: opt, links: map[[2]uint64]*linkCheck{}}
	se, err := src.Lstat("")
	if err != nil {
		return nil, []error{err}
	}
	de, err := dst.Lstat("")
	if err != nil {
		return nil, []error{err}
	}
	c.compareEntry("", &se, &de)
	g := NewGroup(ctx, max(opt.Workers, 1))
	c.group = g
	g.Go(func() { c.compareDir(ctx, "") })
	g.Wait()
	if err := ctx.Err(); err != nil {
		c.errs = append(c.errs, err)
	}
	for _, l := range c.links {
		for i, p := range l.paths {
			if i > 0 && l.dstIno[i] != l.dstIno[0] {
				c.add(p, "not hard-linked to "+fsmirror.QuotePath(l.paths[0])+" as in source")
			}
		}
	}
	slices.SortFunc(c.diffs, func(a, b Difference) int { return strings.Compare(a.Path, b.Path) })
	return c.diffs, c.errs
}

type comparer struct {
	src, dst *fsys.Root
	opt      CompareOptions
	group    *Group

	mu    sync.Mutex
	diffs []Difference
	errs  []error
	links map[[2]uint64]*linkCheck
}

// linkCheck is a source inode with several names and the destination inode
// found at each.
type linkCheck struct {
	paths  []string
	dstIno []uint64
}

func (c *comparer) add(path, what string) {
	c.mu.Lock()
	c.diffs = append(c.diffs, Difference{Path: path, What: what})
	c.mu.Unlock()
}

func (c *comparer) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

func (c *comparer) compareDir(ctx context.Context, dir string) {
	srcEntries, err := c.src.ReadDir(dir)
	if err != nil {
		c.fail(err)
		return
	}
	dstEntries, err := c.dst.ReadDir(dir)
	if err != nil {
		c.fail(err)
		return
	}
	dstByName := make(map[string]*fsmirror.Entry, len(dstEntries))
	for i := range dstEntries {
		dstByName[dstEntries[i].Name] = &dstEntries[i]
	}
	for i := range srcEntries {
		se := &srcEntries[i]
		path := fsmirror.Join(dir, se.Name)
		de := dstByName[se.Name]
		delete(dstByName, se.Name)
		if c.opt.Filter.ExcludedName(dir, se.Name, se.Type == fsmirror.TypeDir) || !fsmirror.Mirrorable(se.Type, c.opt.AsRoot) {
			continue
		}
		if de == nil {
			c.add(path, "missing in destination")
			continue
		}
		if c.compareEntry(path, se, de) {
			c.group.Go(func() { c.compareDir(ctx, path) })
		}
	}
	for name, de := range dstByName {
		if c.opt.Filter.ExcludedName(dir, name, de.Type == fsmirror.TypeDir) {
			continue
		}
		c.add(fsmirror.Join(dir, name), "extra in destination ("+de.Type.String()+")")
	}
}

// compareEntry compares one path present on both sides and returns whether
// it is a directory on both, to be descended.
func (c *comparer) compareEntry(path string, se, de *fsmirror.Entry) bool {
	if se.Type != de.Type {
		c.add(path, fmt.Sprintf("type %s in source, %s in destination", se.Type, de.Type))
		return false
	}
	var what []string
	if se.Type == fsmirror.TypeFile && se.Size != de.Size {
		what = append(what, fmt.Sprintf("size %d != %d", se.Size, de.Size))
	}
	if se.Type == fsmirror.TypeSymlink && se.Target != de.Target {
		what = append(what, fmt.Sprintf("symlink target %s != %s", fsmirror.QuotePath(se.Target), fsmirror.QuotePath(de.Target)))
	}
	if (se.Type == fsmirror.TypeCharDev || se.Type == fsmirror.TypeBlockDev) && se.Rdev != de.Rdev {
		what = append(what, fmt.Sprintf("device %#x != %#x", se.Rdev, de.Rdev))
	}
	if se.Type != fsmirror.TypeSymlink && se.Mode != de.Mode {
		what = append(what, fmt.Sprintf("mode %04o != %04o", se.Mode, de.Mode))
	}
	if se.Mtime != de.Mtime {
		what = append(what, "mtime "+fmtTime(se.Mtime)+" != "+fmtTime(de.Mtime))
	}
	if c.opt.Owner && (se.Uid != de.Uid || se.Gid != de.Gid) {
		what = append(what, fmt.Sprintf("owner %d:%d != %d:%d", se.Uid, se.Gid, de.Uid, de.Gid))
	}
	if se.Type == fsmirror.TypeFile && se.Size == de.Size && c.opt.Checksum {
		if differ, err := c.contentDiffers(path); err != nil {
			c.fail(err)
		} else if differ {
			what = append(what, "content differs")
		}
	}
	if se.Type == fsmirror.TypeFile && se.Nlink > 1 {
		c.noteLink(path, se, de)
	}
	if len(what) > 0 {
		c.add(path, strings.Join(what, ", "))
	}
	return se.Type == fsmirror.TypeDir
}

func (c *comparer) contentDiffers(path string) (bool, error) {
	sh, err := c.src.Hash(path)
	if err != nil {
		return false, err
	}
	dh, err := c.dst.Hash(path)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(sh, dh), nil
}

func (c *comparer) noteLink(path string, se, de *fsmirror.Entry) {
	key := [2]uint64{se.Dev, se.Ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.links[key]
	if l == nil {
		l = &linkCheck{}
		c.links[key] = l
	}
	l.paths = append(l.paths, path)
	l.dstIno = append(l.dstIno, de.Ino)
}

func fmtTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
}
