package index

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/fsmirror/fsmirror"
)

// Keys. A path is stored under its parent directory, a NUL byte and its
// name, so that the children of a directory are the contiguous range of keys
// that start with "dir\x00", and everything deeper below it the range that
// starts with "dir/". The root "" is "\x00": its parent and name are both
// empty. No name holds '/' or NUL, so the split is unambiguous.

// keyOf returns the key of path.
func keyOf(path string) string {
	dir, name := fsmirror.Split(path)
	return dir + "\x00" + name
}

// splitKey returns the parent directory and name a key holds.
func splitKey(k []byte) (dir, name []byte, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return nil, nil, false
	}
	return k[:i], k[i+1:], true
}

// pathOfKey returns the path a key holds.
func pathOfKey(k []byte) string {
	dir, name, _ := splitKey(k)
	return fsmirror.Join(string(dir), string(name))
}

// childPrefix is the prefix of the keys of dir's children.
func childPrefix(dir string) string { return dir + "\x00" }

// deepPrefix is the prefix of the keys of dir's grandchildren and below. The
// root has none: every key is below it (see writer.below).
func deepPrefix(dir string) string { return dir + "/" }

// dirInSubtree reports whether directory p is dir or below it.
func dirInSubtree(p, dir string) bool {
	if dir == "" {
		return true
	}
	return p == dir || len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// Values. An entry is a fixed 45-byte little-endian record followed by the
// symlink target:
//
//	off size field
//	  0    1 Type
//	  1    4 Mode (07777 bits)
//	  5    8 Size
//	 13    8 Mtime (ns since the epoch; UnknownMtime when not known)
//	 21    4 Uid
//	 25    4 Gid
//	 29    8 Ino (the target's inode number, or a synthetic one >= 1<<62)
//	 37    8 Rdev
//	 45    n Target (symlinks only; the rest of the value)
//
// Nlink and Dev are not recorded.
const valueSize = 45

// appendValue appends the encoding of e to b.
func appendValue(b []byte, e *fsmirror.Entry) []byte {
	b = append(b, byte(e.Type))
	b = binary.LittleEndian.AppendUint32(b, e.Mode)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Size))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Mtime))
	b = binary.LittleEndian.AppendUint32(b, e.Uid)
	b = binary.LittleEndian.AppendUint32(b, e.Gid)
	b = binary.LittleEndian.AppendUint64(b, e.Ino)
	b = binary.LittleEndian.AppendUint64(b, e.Rdev)
	return append(b, e.Target...)
}

var errBadValue = errors.New("corrupt index record")

// decodeValue decodes v into an entry named name.
func decodeValue(name string, v []byte) (fsmirror.Entry, error) {
	if len(v) < valueSize {
		return fsmirror.Entry{}, errBadValue
	}
	e := fsmirror.Entry{
		Name:  name,
		Type:  fsmirror.Type(v[0]),
		Mode:  binary.LittleEndian.Uint32(v[1:]),
		Size:  int64(binary.LittleEndian.Uint64(v[5:])),
		Mtime: int64(binary.LittleEndian.Uint64(v[13:])),
		Uid:   binary.LittleEndian.Uint32(v[21:]),
		Gid:   binary.LittleEndian.Uint32(v[25:]),
		Ino:   binary.LittleEndian.Uint64(v[29:]),
		Rdev:  binary.LittleEndian.Uint64(v[37:]),
	}
	if len(v) > valueSize {
		e.Target = string(v[valueSize:])
	}
	return e, nil
}

// sameRecord reports whether a and b encode to the same value.
func sameRecord(a, b *fsmirror.Entry) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.Size == b.Size && a.Mtime == b.Mtime &&
		a.Uid == b.Uid && a.Gid == b.Gid && a.Ino == b.Ino && a.Rdev == b.Rdev && a.Target == b.Target
}

// recordOf returns what is recorded of e: the fields the encoding keeps.
func recordOf(e fsmirror.Entry) fsmirror.Entry {
	e.Nlink, e.Dev = 0, 0
	e.Mode &= 0o7777
	return e
}
