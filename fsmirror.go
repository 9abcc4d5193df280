// Package fsmirror holds the vocabulary every part of fsmirror shares: an
// Entry describes one node of a tree, an Op is one change that makes a
// destination closer to its source, and a Target is a destination that can be
// listed and can apply ops.
//
// Paths are relative to a tree's root, use '/' as separator, never start with
// '/', never contain "." or ".." components, and are byte strings: a name may
// hold a newline or invalid UTF-8, and a path may be longer than PATH_MAX.
// The root itself is the empty path "".
//
// This package uses the standard library only.
package fsmirror

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Type is the kind of a filesystem node.
type Type uint8

// The node types fsmirror knows. TypeUnknown is never mirrored.
const (
	TypeUnknown Type = iota
	TypeFile
	TypeDir
	TypeSymlink
	TypeFifo
	TypeSocket
	TypeCharDev
	TypeBlockDev
)

var typeNames = [...]string{"unknown", "file", "dir", "symlink", "fifo", "socket", "char device", "block device"}

// String returns a short human name of the type, such as "file" or "symlink".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// IsSpecial reports whether t is a fifo, socket or device node.
func (t Type) IsSpecial() bool {
	return t == TypeFifo || t == TypeSocket || t == TypeCharDev || t == TypeBlockDev
}

// Mirrorable reports whether nodes of type t are mirrored by a process that
// is (asRoot) or is not privileged. Regular files, directories and symlinks
// always are; fifos and device nodes only by root, who can create them;
// sockets never, since a socket is only meaningful to the process bound to it.
func Mirrorable(t Type, asRoot bool) bool {
	switch t {
	case TypeFile, TypeDir, TypeSymlink:
		return true
	case TypeFifo, TypeCharDev, TypeBlockDev:
		return asRoot
	}
	return false
}

// Entry is what is known of one node: its name in its directory and its
// metadata, as lstat reports it (symlinks are never followed).
type Entry struct {
	Name   string // base name in its directory
	Type   Type
	Mode   uint32 // permission bits, with setuid, setgid and sticky (07777)
	Size   int64  // bytes, for regular files and symlinks
	Mtime  int64  // modification time, nanoseconds since the Unix epoch
	Uid    uint32
	Gid    uint32
	Nlink  uint32
	Dev    uint64 // device of the filesystem holding the node
	Ino    uint64
	Rdev   uint64 // device number, for device nodes
	Target string // symlink target, for symlinks
}

// Op kinds. An op names the state its path must have afterwards, so applying
// an op twice is harmless.
type OpKind uint8

// The op kinds.
const (
	OpMkdir   OpKind = iota + 1 // create directory Path (its metadata comes later, by OpSetMeta)
	OpWrite                     // write Data as the whole content of file Path, with Entry's metadata
	OpSymlink                   // make Path a symlink to Entry.Target
	OpLink                      // make Path a hard link to the file at From
	OpRename                    // move From to Path
	OpDelete                    // remove Path, recursively for a directory
	OpSetMeta                   // set mode, owner and mtime of Path from Entry
	OpMknod                     // create a fifo or device node at Path
)

var opNames = [...]string{"?", "mkdir", "write", "symlink", "link", "rename", "delete", "setmeta", "mknod"}

// String returns the op kind's name, such as "write".
func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return "?"
}

// Op is one change to apply to a Target.
type Op struct {
	Kind  OpKind
	Path  string // the path the op makes true
	From  string // OpRename: the old path; OpLink: the existing file to link to
	Entry Entry  // the wanted type and metadata of Path
	// Data is the content, for OpWrite. When it is an *os.File, a local
	// target may copy in the kernel (copy_file_range).
	Data io.Reader
	// Replace is set when Path is known to exist with another type or content
	// and must be replaced; a Target replaces atomically where it can.
	Replace bool
}

// Target is a destination tree. Implementations must be safe for concurrent
// use, but fsmirror never applies two ops on the same path at once.
//
// Every error a Target returns for one path leaves the rest of the tree
// usable; errors that mean the whole target is gone wrap ErrTargetDown so the
// caller can stop and retry later instead of failing path after path.
type Target interface {
	// ReadDir lists directory dir as lstat sees it. A missing directory is an
	// error that wraps fs.ErrNotExist. Entries whose names are fsmirror's own
	// temporaries are included; callers recognise them with IsTempName.
	ReadDir(ctx context.Context, dir string) ([]Entry, error)
	// Lstat describes one path, without following a final symlink.
	Lstat(ctx context.Context, path string) (Entry, error)
	// Apply makes op true. A written file is never visible under its final
	// name before it is complete.
	Apply(ctx context.Context, op *Op) error
	// Close releases the target's resources.
	Close() error
}

// Hasher is implemented by targets that can hash a file's content where it
// lives, so that --checksum does not move the file.
type Hasher interface {
	Hash(ctx context.Context, path string) ([]byte, error)
}

// Pinger is implemented by targets that can be unreachable (remote ones).
// Ping checks that the destination answers, reconnecting if it must; the
// live mirror pings a target that went down until it is back.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Spacer is implemented by targets that can tell how much room is left for
// new files. A live mirror whose destination filled up waits until there is
// room again, rather than failing path after path.
type Spacer interface {
	// FreeSpace returns the bytes and the inodes that new files may still
	// use; a filesystem that does not count inodes reports math.MaxUint64.
	FreeSpace(ctx context.Context) (bytes, files uint64, err error)
}

// ErrTargetDown marks an error that concerns the whole target, not one path.
var ErrTargetDown = errors.New("target unavailable")

// TempPrefix starts the name of every temporary file fsmirror creates in a
// destination. A temporary is written next to the file it becomes and renamed
// over it; one left by a crash is removed by the next run.
const TempPrefix = ".fsmirror-tmp-"

// IsTempName reports whether name is one of fsmirror's temporaries.
func IsTempName(name string) bool {
	return strings.HasPrefix(name, TempPrefix) && strings.HasSuffix(name, ".tmp")
}

// Join joins a directory path and a name into a path.
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Split splits a path into its directory and its base name.
func Split(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// IsValidPath reports whether p is a clean relative path: not absolute, no
// empty, "." or ".." component, no NUL byte. The root "" is valid.
func IsValidPath(p string) bool {
	if p == "" {
		return true
	}
	if strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for comp := range strings.SplitSeq(p, "/") {
		if comp == "" || comp == "." || comp == ".." {
			return false
		}
	}
	return true
}

// PathError is an error about one path, with an optional hint telling the
// user what to do about it.
type PathError struct {
	Op   string // what was being done, e.g. "read directory"
	Path string
	Err  error
	Hint string
}

// Error returns "op path: err".
func (e *PathError) Error() string {
	return e.Op + " " + QuotePath(e.Path) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *PathError) Unwrap() error { return e.Err }
