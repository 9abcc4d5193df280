package testutil

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ChaosOp is a kind of operation that Chaos performs.
type ChaosOp uint8

// The operations of Chaos. Each picks its victims at random in the tree as
// it is at that moment.
const (
	ChaosCreate     ChaosOp = iota // create a file, 0 to 64 KiB, now and then a few MiB, written in chunks
	ChaosAppend                    // append to a file
	ChaosAppendLink                // append to a file through a name that ChaosLink made
	ChaosOverwrite                 // overwrite part of a file in place
	ChaosTruncate                  // truncate a file: shorter, to 0, or longer (a hole)
	ChaosSave                      // editor-style save: write a temporary in the same directory, rename it over the file
	ChaosRename                    // rename a file or symlink within its directory or to another, sometimes over an existing one
	ChaosRenameDir                 // rename a directory with its contents, within its parent or to another
	ChaosDelete                    // delete a file or symlink
	ChaosMkdir                     // mkdir -p of 1 to 3 levels, then create files in the deepest at once
	ChaosRemoveTree                // rmdir an empty directory, or remove a whole subtree
	ChaosSymlink                   // create a symlink, or give one another target (atomically or not)
	ChaosChmod                     // change the permission bits of a file or directory
	ChaosTouch                     // set the mtime of a file, directory or symlink to a random time, in ns
	ChaosLink                      // give a file another name (a hard link)
	ChaosChown                     // give a file, symlink or directory a random owner (ChaosOptions.Chown)
	ChaosMoveOut                   // move a file or directory out of the tree (ChaosOptions.Outside)
	ChaosMoveIn                    // move a file or directory into the tree (ChaosOptions.Outside)
	ChaosExchange                  // exchange two entries of any type (renameat2 RENAME_EXCHANGE)
	numChaosOps
)

var chaosOpNames = [numChaosOps]string{"create", "append", "append-link", "overwrite", "truncate", "save",
	"rename", "rename-dir", "delete", "mkdir", "remove-tree", "symlink", "chmod", "touch", "link", "chown",
	"move-out", "move-in", "exchange"}

// String returns the operation's name, such as "rename-dir".
func (op ChaosOp) String() string {
	if op < numChaosOps {
		return chaosOpNames[op]
	}
	return "chaos-op(" + strconv.Itoa(int(op)) + ")"
}

// chaosWeights says how often each operation is picked, relative to the others.
var chaosWeights = [numChaosOps]int{
	ChaosCreate: 12, ChaosAppend: 8, ChaosAppendLink: 2, ChaosOverwrite: 6, ChaosTruncate: 4,
	ChaosSave: 6, ChaosRename: 6, ChaosRenameDir: 2, ChaosDelete: 6, ChaosMkdir: 3,
	ChaosRemoveTree: 2, ChaosSymlink: 4, ChaosChmod: 4, ChaosTouch: 4, ChaosLink: 3,
	ChaosChown: 2, ChaosMoveOut: 1, ChaosMoveIn: 1, ChaosExchange: 1,
}

// ChaosOptions tune Chaos. The zero value runs 4 workers until the context
// ends, in a tree of at most 2,000 files and directories 6 deep.
type ChaosOptions struct {
	// Workers is the number of goroutines changing the tree at once; 0
	// means 4.
	Workers int
	// Ops stops Chaos after this many operations (attempted, in all
	// workers); 0 means no limit.
	Ops int64
	// Seed seeds the random choices. With one worker, a seed replays the
	// same operations on the same names and contents from the same
	// starting tree; with several, the outcome also depends on scheduling.
	Seed uint64
	// MaxFiles bounds the number of non-directories (names: a hard link
	// counts again); 0 means 2,000. When it is reached, operations that
	// would add one delete instead. Races between workers, and files moved
	// in from Outside, may exceed it by a few.
	MaxFiles int
	// MaxDirs bounds the number of directories; 0 means MaxFiles/8.
	MaxDirs int
	// MaxDepth bounds the depth of directories: one directly below the root
	// is at depth 1, and files may be one level deeper than the deepest
	// directory. 0 means 6.
	MaxDepth int
	// Chown enables ChaosChown, which needs root.
	Chown bool
	// Outside, if set, is a directory outside root on the same file system:
	// it enables ChaosMoveOut and ChaosMoveIn, which move entries between
	// the tree and it.
	Outside string
	// Without lists operations not to perform, to find which one a mirror
	// gets wrong.
	Without []ChaosOp
}

// ParseChaosOps parses a comma-separated list of operation names, as
// ChaosOp.String gives them, such as "link,append-link".
func ParseChaosOps(s string) ([]ChaosOp, error) {
	var ops []ChaosOp
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		i := slices.Index(chaosOpNames[:], name)
		if i < 0 {
			return nil, fmt.Errorf("unknown chaos operation %q (known: %s)", name, strings.Join(chaosOpNames[:], ", "))
		}
		ops = append(ops, ChaosOp(i))
	}
	return ops, nil
}

// ChaosStats counts what Chaos did, by operation.
type ChaosStats struct {
	// Done counts the operations that changed the tree.
	Done map[ChaosOp]int64
	// Missed counts the operations that changed nothing: their victim
	// vanished, changed type or appeared in a race with another worker
	// (ENOENT, EEXIST, ENOTEMPTY, ...), or there was no victim to pick.
	Missed map[ChaosOp]int64
}

// Total returns the number of operations that changed the tree.
func (s ChaosStats) Total() int64 {
	var n int64
	for _, c := range s.Done {
		n += c
	}
	return n
}

// String lists the operations done by kind, such as "create 120, append 80,
// ... (33 missed)".
func (s ChaosStats) String() string {
	var parts []string
	var missed int64
	for op := range numChaosOps {
		if n := s.Done[op]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, n))
		}
		missed += s.Missed[op]
	}
	return fmt.Sprintf("%s (%d missed)", strings.Join(parts, ", "), missed)
}

// Chaos changes the tree below root at random and at full speed, the way
// busy users and programs do, until ctx ends or opt.Ops operations have
// been attempted: opt.Workers goroutines each pick operations (see ChaosOp)
// and victims at random in the tree as it is at the moment. Names include,
// now and then, spaces, newlines, invalid UTF-8 and 250-byte names, and the
// same names come back, so that a path changes type and a deleted name is
// created again. Every path is reached with openat and O_NOFOLLOW: whatever
// the symlinks it makes point to, Chaos never writes outside root (and
// Outside).
//
// Losing a race with another worker (ENOENT, EEXIST, ENOTEMPTY, ...) is
// normal and counted in ChaosStats.Missed. Any other error stops every
// worker and is returned. The end of ctx is not an error. Chaos never
// leaves an operation half done: when it returns, no temporary it made is
// left.
func Chaos(ctx context.Context, root string, opt ChaosOptions) (ChaosStats, error) {
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.MaxFiles <= 0 {
		opt.MaxFiles = 2000
	}
	if opt.MaxDirs <= 0 {
		opt.MaxDirs = max(opt.MaxFiles/8, 1)
	}
	if opt.MaxDepth <= 0 {
		opt.MaxDepth = 6
	}
	rootfd, err := openRootDir(root)
	if err != nil {
		return ChaosStats{}, err
	}
	defer unix.Close(rootfd)
	c := &chaos{opt: opt, rootfd: rootfd, outfd: -1}
	if opt.Outside != "" {
		if c.outfd, err = openRootDir(opt.Outside); err != nil {
			return ChaosStats{}, err
		}
		defer unix.Close(c.outfd)
		var rst, ost unix.Stat_t
		if err := unix.Fstat(rootfd, &rst); err != nil {
			return ChaosStats{}, err
		}
		if err := unix.Fstat(c.outfd, &ost); err != nil {
			return ChaosStats{}, err
		}
		if rst.Dev != ost.Dev {
			return ChaosStats{}, fmt.Errorf("chaos: %s and %s are on different file systems", root, opt.Outside)
		}
	}
	// Contents are slices of one random buffer: cheap, and different
	// enough that a stale copy never looks right.
	seed := [32]byte{}
	copy(seed[:], strconv.FormatUint(opt.Seed, 16))
	c.data = make([]byte, 4<<20)
	rand.NewChaCha8(seed).Read(c.data)
	if err := c.recount(); err != nil {
		return ChaosStats{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]*chaosWorker, opt.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &chaosWorker{c: c, id: i, rng: rand.New(rand.NewPCG(opt.Seed, uint64(i))), ents: make([]byte, 32<<10)}
		workers[i] = w
		wg.Go(func() {
			if err := w.run(ctx); err != nil {
				c.fail(err)
				cancel()
			}
		})
	}
	wg.Wait()
	stats := ChaosStats{Done: map[ChaosOp]int64{}, Missed: map[ChaosOp]int64{}}
	for _, w := range workers {
		for op := range numChaosOps {
			if w.done[op] > 0 {
				stats.Done[op] += w.done[op]
			}
			if w.missed[op] > 0 {
				stats.Missed[op] += w.missed[op]
			}
		}
	}
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return stats, c.err
}

// chaos is the state the workers of one Chaos call share.
type chaos struct {
	opt      ChaosOptions
	rootfd   int
	outfd    int
	data     []byte
	attempts atomic.Int64
	files    atomic.Int64 // non-directories below the root, as far as known
	dirs     atomic.Int64 // directories below the root, as far as known

	// dirMu serialises the operations that can make the tree deeper
	// (mkdir, directory renames, moves in), so that a depth checked holds.
	dirMu sync.Mutex

	linkMu sync.Mutex
	links  []string // recent names made by ChaosLink, for ChaosAppendLink

	outMu  sync.Mutex
	outSeq int
	out    []string // names in Outside, to move in

	errMu sync.Mutex
	err   error
}

func (c *chaos) fail(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// recount counts the tree again: concurrent operations may have skewed the
// counters.
func (c *chaos) recount() error {
	fd, err := openat(c.rootfd, ".", dirFlags, 0)
	if err != nil {
		return fmt.Errorf("chaos: open root: %w", err)
	}
	files, dirs, _ := countTree(fd, make([]byte, 32<<10))
	unix.Close(fd)
	c.files.Store(files)
	c.dirs.Store(dirs)
	return nil
}

// reserveFile counts one more file, unless the bound is reached.
func (c *chaos) reserveFile() bool {
	if c.files.Add(1) > int64(c.opt.MaxFiles) {
		c.files.Add(-1)
		return false
	}
	return true
}

func (c *chaos) reserveDir() bool {
	if c.dirs.Add(1) > int64(c.opt.MaxDirs) {
		c.dirs.Add(-1)
		return false
	}
	return true
}

// errNothing is an operation's error when it found no victim.
var errNothing = errors.New("nothing to operate on")

// missed reports whether err is a lost race, not a failure.
func missed(err error) bool {
	switch {
	case errors.Is(err, errNothing), errors.Is(err, errFull):
		return true
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY),
		errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.ELOOP), errors.Is(err, unix.EMLINK), errors.Is(err, unix.EBUSY):
		// EINVAL: a directory renamed into itself; ELOOP: a symlink where
		// a file or directory was.
		return true
	}
	return false
}

// countTree returns the number of non-directories and directories below
// the directory open as fd, and the depth of its deepest directory
// (0: no subdirectory). It closes nothing; entries that vanish meanwhile
// are skipped.
func countTree(fd int, buf []byte) (files, dirs int64, height int) {
	ents, _ := readEntries(fd, buf, nil)
	for _, e := range ents {
		if e.typ != unix.DT_DIR {
			files++
			continue
		}
		dirs++
		sub, err := openat(fd, e.name, dirFlags, 0)
		if err != nil {
			continue
		}
		f, d, h := countTree(sub, buf)
		unix.Close(sub)
		files, dirs, height = files+f, dirs+d, max(height, h+1)
	}
	return files, dirs, height
}

type dirent struct {
	name string
	typ  uint8 // unix.DT_*
}

// readEntries returns the entries of the directory open as fd, freshly
// opened (it reads from the offset fd is at), sorted by name so that a seed
// replays the same choices. buf is scratch space.
func readEntries(fd int, buf []byte, ents []dirent) ([]dirent, error) {
	ents = ents[:0]
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ents, err
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 <= n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			typ := buf[off+18]
			nameb := buf[off+19 : off+reclen]
			if i := slices.Index(nameb, 0); i >= 0 {
				nameb = nameb[:i]
			}
			off += reclen
			name := string(nameb)
			if name == "." || name == ".." {
				continue
			}
			if typ == unix.DT_UNKNOWN {
				st, err := lstatat(fd, name)
				if err != nil {
					continue
				}
				typ = dtype(st.Mode)
			}
			ents = append(ents, dirent{name, typ})
		}
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return ents, nil
}

func dtype(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	}
	return unix.DT_UNKNOWN
}

// errFull is an operation's error when the tree is at its bound: the
// worker deletes something instead.
var errFull = errors.New("tree at its bound")

// chaosWorker is one goroutine of Chaos.
type chaosWorker struct {
	c            *chaos
	id           int
	rng          *rand.Rand
	ents         []byte // getdents scratch space
	done, missed [numChaosOps]int64
}

func (w *chaosWorker) run(ctx context.Context) error {
	c := w.c
	weights := chaosWeights
	if !c.opt.Chown {
		weights[ChaosChown] = 0
	}
	if c.outfd < 0 {
		weights[ChaosMoveOut], weights[ChaosMoveIn] = 0, 0
	}
	for _, op := range c.opt.Without {
		if op < numChaosOps {
			weights[op] = 0
		}
	}
	total := 0
	for _, n := range weights {
		total += n
	}
	if total == 0 {
		return errors.New("chaos: every operation is disabled")
	}
	for n := 1; ctx.Err() == nil; n++ {
		if a := c.attempts.Add(1); c.opt.Ops > 0 && a > c.opt.Ops {
			return nil
		}
		if w.id == 0 && n%256 == 0 {
			if err := c.recount(); err != nil {
				return err
			}
		}
		var op ChaosOp
		for r := w.rng.IntN(total); ; op++ {
			if r -= weights[op]; r < 0 {
				break
			}
		}
		err := w.do(op)
		if errors.Is(err, errFull) {
			// At a bound: take something away instead.
			if op == ChaosMkdir || w.rng.IntN(4) == 0 {
				op = ChaosRemoveTree
			} else {
				op = ChaosDelete
			}
			err = w.do(op)
		}
		switch {
		case err == nil:
			w.done[op]++
		case missed(err):
			w.missed[op]++
		default:
			return fmt.Errorf("chaos %s: %w", op, err)
		}
	}
	return nil
}

func (w *chaosWorker) do(op ChaosOp) error {
	switch op {
	case ChaosCreate:
		return w.create()
	case ChaosAppend:
		return w.append()
	case ChaosAppendLink:
		return w.appendLink()
	case ChaosOverwrite:
		return w.overwrite()
	case ChaosTruncate:
		return w.truncate()
	case ChaosSave:
		return w.save()
	case ChaosRename:
		return w.rename()
	case ChaosRenameDir:
		return w.renameDir()
	case ChaosDelete:
		return w.delete()
	case ChaosMkdir:
		return w.mkdir()
	case ChaosRemoveTree:
		return w.removeTree()
	case ChaosSymlink:
		return w.symlink()
	case ChaosChmod:
		return w.chmod()
	case ChaosTouch:
		return w.touch()
	case ChaosLink:
		return w.link()
	case ChaosChown:
		return w.chown()
	case ChaosMoveOut:
		return w.moveOut()
	case ChaosMoveIn:
		return w.moveIn()
	case ChaosExchange:
		return w.exchange()
	}
	return fmt.Errorf("unknown operation %d", op)
}

// dirRef is a directory of the tree, open, found at rel and depth.
type dirRef struct {
	fd    int
	rel   string
	depth int
}

func (d dirRef) close() { unix.Close(d.fd) }

// pickDir walks from the root to a random directory whose depth is at
// most maxDepth (negative: errNothing). Shallow directories are more
// likely.
func (w *chaosWorker) pickDir(maxDepth int) (dirRef, error) {
	if maxDepth < 0 {
		return dirRef{}, errNothing
	}
	fd, err := openat(w.c.rootfd, ".", dirFlags, 0)
	if err != nil {
		return dirRef{}, err
	}
	d := dirRef{fd: fd}
	for d.depth < maxDepth && w.rng.IntN(3) != 0 {
		ents, _ := readEntries(d.fd, w.ents, nil)
		ents = slices.DeleteFunc(ents, func(e dirent) bool { return e.typ != unix.DT_DIR })
		if len(ents) == 0 {
			break
		}
		name := ents[w.rng.IntN(len(ents))].name
		sub, err := openat(d.fd, name, dirFlags, 0)
		if err != nil {
			break // lost a race: stay here
		}
		unix.Close(d.fd)
		d = dirRef{fd: sub, rel: join(d.rel, name), depth: d.depth + 1}
	}
	return d, nil
}

// pickEntry returns a random entry of one of the types in want (DT_*
// values) and its open parent, or errNothing after a few vain tries.
func (w *chaosWorker) pickEntry(want ...uint8) (dirRef, dirent, error) {
	for range 4 {
		d, err := w.pickDir(w.c.opt.MaxDepth)
		if err != nil {
			return dirRef{}, dirent{}, err
		}
		ents, _ := readEntries(d.fd, w.ents, nil)
		ents = slices.DeleteFunc(ents, func(e dirent) bool { return !slices.Contains(want, e.typ) })
		if len(ents) > 0 {
			return d, ents[w.rng.IntN(len(ents))], nil
		}
		d.close()
	}
	return dirRef{}, dirent{}, errNothing
}

var (
	nonDirs = []uint8{unix.DT_REG, unix.DT_LNK}
	anyType = []uint8{unix.DT_REG, unix.DT_LNK, unix.DT_DIR}
)

// name returns a name for a new entry. Most are short and come back often
// (prefix and a small number); some hold spaces, a newline, invalid UTF-8,
// non-ASCII letters, or are 250 bytes long. One in ten uses a prefix that
// every type shares, so that a path changes type.
func (w *chaosWorker) name(prefix string) string {
	if w.rng.IntN(10) == 0 {
		prefix = "n"
	}
	n := strconv.Itoa(w.rng.IntN(40))
	switch r := w.rng.IntN(100); {
	case r < 84:
		return prefix + n
	case r < 88:
		return prefix + " with spaces " + n
	case r < 91:
		return prefix + "\nnew line " + n
	case r < 94:
		return prefix + " bad \xff\xfe utf8 " + n
	case r < 96:
		return "ünïcödé ☃ " + prefix + n
	case r < 98:
		return "-" + prefix + n + " "
	default:
		return prefix + n + strings.Repeat("L", 150+w.rng.IntN(100))
	}
}

// tempName returns a name for a temporary next to name, as editors make.
func (w *chaosWorker) tempName(name string) string {
	if len(name) > 200 {
		name = name[:200]
	}
	return "." + name + ".~" + strconv.FormatUint(uint64(w.rng.Uint32()), 16)
}

func (w *chaosWorker) fileMode() uint32 {
	modes := []uint32{0o644, 0o644, 0o600, 0o640, 0o664, 0o755, 0o700, 0o604, 0o666, 0o4755, 0o2750, 0o1644}
	return modes[w.rng.IntN(len(modes))]
}

func (w *chaosWorker) dirMode() uint32 {
	modes := []uint32{0o755, 0o755, 0o700, 0o750, 0o775, 0o711, 0o1777, 0o2755}
	return modes[w.rng.IntN(len(modes))]
}

// size returns the size of a new file: mostly up to 64 KiB, some empty,
// some up to 4 MiB.
func (w *chaosWorker) size() int {
	switch r := w.rng.IntN(100); {
	case r < 8:
		return 0
	case r < 98:
		return 1 + w.rng.IntN(64<<10)
	default:
		return 256<<10 + w.rng.IntN(len(w.c.data)-256<<10)
	}
}

// content returns n random bytes (n at most 4 MiB).
func (w *chaosWorker) content(n int) []byte {
	off := w.rng.IntN(len(w.c.data) - n + 1)
	return w.c.data[off : off+n]
}

// mtime returns a random time in ns since the epoch: mostly between 2001
// and 2033, some in whole seconds, some before 1970.
func (w *chaosWorker) mtime() int64 {
	switch w.rng.IntN(20) {
	case 0:
		return -1 - w.rng.Int64N(2e17)
	case 1:
		return (1e9 + w.rng.Int64N(1e9)) * 1e9
	}
	return 1e18 + w.rng.Int64N(1e18)
}

func (w *chaosWorker) target() string {
	switch w.rng.IntN(8) {
	case 0:
		return "../" + w.name("d") + "/" + w.name("f")
	case 1:
		return "/nonexistent/" + w.name("f")
	case 2:
		return "."
	case 3:
		return strings.Repeat("long/", 200) + w.name("f")
	}
	return w.name("f")
}

// writeAll writes b to fd in chunks of at most 16 KiB, as programs do,
// so that a reader can see the file half written.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b[:min(len(b), 16<<10)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// writeNew creates the file name in dirfd with mode and size random bytes.
func (w *chaosWorker) writeNew(dirfd int, name string, mode uint32, size int) error {
	fd, err := openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	err = writeAll(fd, w.content(size))
	if err == nil {
		err = unix.Fchmod(fd, mode) // not limited by the umask
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// openFile opens the regular file name in dirfd, never a symlink.
func openFile(dirfd int, name string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG && flags&unix.O_ACCMODE != unix.O_RDONLY {
		unix.Close(fd)
		return -1, st, unix.EISDIR
	}
	return fd, st, nil
}

func (w *chaosWorker) create() error {
	d, err := w.pickDir(w.c.opt.MaxDepth)
	if err != nil {
		return err
	}
	defer d.close()
	if !w.c.reserveFile() {
		return errFull
	}
	err = w.writeNew(d.fd, w.name("f"), w.fileMode(), w.size())
	if err != nil {
		w.c.files.Add(-1)
	}
	return err
}

func (w *chaosWorker) appendTo(dirfd int, name string) error {
	fd, _, err := openFile(dirfd, name, unix.O_WRONLY|unix.O_APPEND)
	if err != nil {
		return err
	}
	for range 1 + w.rng.IntN(3) {
		if err == nil {
			err = writeAll(fd, w.content(1+w.rng.IntN(8<<10)))
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

func (w *chaosWorker) append() error {
	d, e, err := w.pickEntry(unix.DT_REG)
	if err != nil {
		return err
	}
	defer d.close()
	return w.appendTo(d.fd, e.name)
}

func (w *chaosWorker) appendLink() error {
	w.c.linkMu.Lock()
	var rel string
	if n := len(w.c.links); n > 0 {
		rel = w.c.links[w.rng.IntN(n)]
	}
	w.c.linkMu.Unlock()
	if rel == "" {
		return errNothing
	}
	dirfd, name, err := openParent(w.c.rootfd, rel, false)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	return w.appendTo(dirfd, name)
}

func (w *chaosWorker) overwrite() error {
	d, e, err := w.pickEntry(unix.DT_REG)
	if err != nil {
		return err
	}
	defer d.close()
	fd, st, err := openFile(d.fd, e.name, unix.O_WRONLY)
	if err != nil {
		return err
	}
	off := w.rng.Int64N(st.Size + 1)
	_, err = unix.Pwrite(fd, w.content(1+w.rng.IntN(16<<10)), off)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

func (w *chaosWorker) truncate() error {
	d, e, err := w.pickEntry(unix.DT_REG)
	if err != nil {
		return err
	}
	defer d.close()
	fd, st, err := openFile(d.fd, e.name, unix.O_WRONLY)
	if err != nil {
		return err
	}
	var size int64
	switch r := w.rng.IntN(10); {
	case r < 4:
		size = w.rng.Int64N(st.Size + 1)
	case r < 7:
		size = 0
	default:
		size = st.Size + 1 + w.rng.Int64N(64<<10)
	}
	err = unix.Ftruncate(fd, size)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// save saves a file as editors do: mostly by writing the new content to a
// temporary in the same directory and renaming it over the file; else the
// way vim does by default: rename the file to a backup name, write the new
// content under the file's name, delete the backup.
func (w *chaosWorker) save() error {
	d, e, err := w.pickEntry(unix.DT_REG)
	if err != nil {
		return err
	}
	defer d.close()
	st, err := lstatat(d.fd, e.name)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unix.EISDIR
	}
	size := max(0, min(int(st.Size)+w.rng.IntN(8<<10)-4<<10, len(w.c.data)))
	tmp := w.tempName(e.name)
	if w.rng.IntN(10) < 7 {
		if err := w.writeNew(d.fd, tmp, st.Mode&0o7777, size); err != nil {
			unix.Unlinkat(d.fd, tmp, 0)
			return err
		}
		if err := unix.Renameat(d.fd, tmp, d.fd, e.name); err != nil {
			unix.Unlinkat(d.fd, tmp, 0)
			return err
		}
		return nil
	}
	if err := unix.Renameat2(d.fd, e.name, d.fd, tmp, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	err = w.writeNew(d.fd, e.name, st.Mode&0o7777, size)
	if err != nil {
		// Someone made the name meanwhile: keep theirs, drop ours.
		w.c.files.Add(-1)
	}
	unix.Unlinkat(d.fd, tmp, 0)
	return err
}

func prefixOf(typ uint8) string {
	switch typ {
	case unix.DT_DIR:
		return "d"
	case unix.DT_LNK:
		return "s"
	}
	return "f"
}

func (w *chaosWorker) rename() error {
	d, e, err := w.pickEntry(nonDirs...)
	if err != nil {
		return err
	}
	defer d.close()
	t := d
	if w.rng.IntN(2) == 0 {
		if t, err = w.pickDir(w.c.opt.MaxDepth); err != nil {
			return err
		}
		defer t.close()
	}
	to := w.name(prefixOf(e.typ))
	if w.rng.IntN(10) < 6 {
		return unix.Renameat2(d.fd, e.name, t.fd, to, unix.RENAME_NOREPLACE)
	}
	_, serr := lstatat(t.fd, to)
	if err := unix.Renameat(d.fd, e.name, t.fd, to); err != nil {
		return err
	}
	if serr == nil && (d.fd != t.fd || e.name != to) {
		w.c.files.Add(-1) // replaced one
	}
	return nil
}

// subtree opens the directory name in dirfd and counts what it holds.
func (w *chaosWorker) subtree(dirfd int, name string) (files, dirs int64, height int, err error) {
	fd, err := openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer unix.Close(fd)
	files, dirs, height = countTree(fd, w.ents)
	return files, dirs + 1, height + 1, nil
}

func (w *chaosWorker) renameDir() error {
	c := w.c
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	d, e, err := w.pickEntry(unix.DT_DIR)
	if err != nil {
		return err
	}
	defer d.close()
	_, _, height, err := w.subtree(d.fd, e.name)
	if err != nil {
		return err
	}
	t := d
	if w.rng.IntN(10) >= 4 {
		if t, err = w.pickDir(c.opt.MaxDepth - height); err != nil {
			return err
		}
		defer t.close()
	}
	if t.depth+height > c.opt.MaxDepth {
		return errNothing
	}
	to := w.name("d")
	if w.rng.IntN(10) < 7 {
		return unix.Renameat2(d.fd, e.name, t.fd, to, unix.RENAME_NOREPLACE)
	}
	st, serr := lstatat(t.fd, to)
	if err := unix.Renameat(d.fd, e.name, t.fd, to); err != nil {
		return err
	}
	if serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && (d.fd != t.fd || e.name != to) {
		c.dirs.Add(-1) // replaced an empty one
	}
	return nil
}

func (w *chaosWorker) delete() error {
	d, e, err := w.pickEntry(nonDirs...)
	if err != nil {
		return err
	}
	defer d.close()
	if err := unix.Unlinkat(d.fd, e.name, 0); err != nil {
		return err
	}
	w.c.files.Add(-1)
	return nil
}

// mkdir makes 1 to 3 nested directories, like mkdir -p, and creates up to
// 10 files in the deepest at once.
func (w *chaosWorker) mkdir() error {
	c := w.c
	c.dirMu.Lock()
	d, err := w.pickDir(c.opt.MaxDepth - 1)
	if err != nil {
		c.dirMu.Unlock()
		return err
	}
	fds := []int{d.fd}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	levels := min(1+w.rng.IntN(3), c.opt.MaxDepth-d.depth)
	for i := range levels {
		if !c.reserveDir() {
			if i == 0 {
				c.dirMu.Unlock()
				return errFull
			}
			break
		}
		cur, name := fds[len(fds)-1], w.name("d")
		err := unix.Mkdirat(cur, name, 0o700)
		var sub int
		if err == nil {
			sub, err = openat(cur, name, dirFlags, 0)
		}
		if err == nil {
			fds = append(fds, sub)
			err = unix.Fchmod(sub, w.dirMode())
		}
		if err != nil {
			c.dirs.Add(-1)
			if i == 0 {
				c.dirMu.Unlock()
				return err
			}
			break
		}
	}
	c.dirMu.Unlock()
	deepest := fds[len(fds)-1]
	for range w.rng.IntN(11) {
		if !c.reserveFile() {
			break
		}
		if err := w.writeNew(deepest, w.name("f"), w.fileMode(), w.rng.IntN(4<<10)); err != nil {
			c.files.Add(-1)
			if !missed(err) {
				return err
			}
			break
		}
	}
	return nil
}

// removeAll removes name in dirfd and everything below it, as far as it
// can, and counts what it removed.
func (w *chaosWorker) removeAll(dirfd int, name string) (files, dirs int64, err error) {
	fd, err := openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return 0, 0, err
	}
	ents, _ := readEntries(fd, w.ents, nil)
	for _, e := range ents {
		if e.typ == unix.DT_DIR {
			f, d, _ := w.removeAll(fd, e.name)
			files, dirs = files+f, dirs+d
		} else if unix.Unlinkat(fd, e.name, 0) == nil {
			files++
		}
	}
	unix.Close(fd)
	if err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err == nil {
		dirs++
	}
	return files, dirs, err
}

func (w *chaosWorker) removeTree() error {
	d, e, err := w.pickEntry(unix.DT_DIR)
	if err != nil {
		return err
	}
	defer d.close()
	if w.rng.IntN(10) < 3 {
		if err := unix.Unlinkat(d.fd, e.name, unix.AT_REMOVEDIR); err != nil {
			return err
		}
		w.c.dirs.Add(-1)
		return nil
	}
	files, dirs, err := w.removeAll(d.fd, e.name)
	w.c.files.Add(-files)
	w.c.dirs.Add(-dirs)
	if files+dirs > 0 {
		return nil
	}
	return err
}

func (w *chaosWorker) symlink() error {
	if w.rng.IntN(10) < 4 {
		d, e, err := w.pickEntry(unix.DT_LNK)
		if err == nil {
			defer d.close()
			target := w.target()
			if w.rng.IntN(2) == 0 {
				// Atomically, as ln -sfn does.
				tmp := w.tempName(e.name)
				if err := unix.Symlinkat(target, d.fd, tmp); err != nil {
					return err
				}
				if err := unix.Renameat(d.fd, tmp, d.fd, e.name); err != nil {
					unix.Unlinkat(d.fd, tmp, 0)
					return err
				}
				return nil
			}
			if err := unix.Unlinkat(d.fd, e.name, 0); err != nil {
				return err
			}
			if err := unix.Symlinkat(target, d.fd, e.name); err != nil {
				w.c.files.Add(-1)
				return err
			}
			return nil
		}
	}
	d, err := w.pickDir(w.c.opt.MaxDepth)
	if err != nil {
		return err
	}
	defer d.close()
	if !w.c.reserveFile() {
		return errFull
	}
	if err := unix.Symlinkat(w.target(), d.fd, w.name("s")); err != nil {
		w.c.files.Add(-1)
		return err
	}
	return nil
}

func (w *chaosWorker) chmod() error {
	if w.rng.IntN(5) == 0 {
		d, err := w.pickDir(w.c.opt.MaxDepth)
		if err != nil {
			return err
		}
		defer d.close()
		return unix.Fchmod(d.fd, w.dirMode())
	}
	d, e, err := w.pickEntry(unix.DT_REG, unix.DT_DIR)
	if err != nil {
		return err
	}
	defer d.close()
	fd, st, err := openFile(d.fd, e.name, unix.O_RDONLY)
	if err != nil {
		return err
	}
	mode := w.fileMode()
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mode = w.dirMode()
	}
	err = unix.Fchmod(fd, mode)
	unix.Close(fd)
	return err
}

func (w *chaosWorker) touch() error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(w.mtime())}
	if w.rng.IntN(5) == 0 {
		d, err := w.pickDir(w.c.opt.MaxDepth)
		if err != nil {
			return err
		}
		defer d.close()
		return unix.UtimesNanoAt(d.fd, ".", ts, 0)
	}
	d, e, err := w.pickEntry(anyType...)
	if err != nil {
		return err
	}
	defer d.close()
	return unix.UtimesNanoAt(d.fd, e.name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (w *chaosWorker) link() error {
	d, e, err := w.pickEntry(unix.DT_REG)
	if err != nil {
		return err
	}
	defer d.close()
	t := d
	if w.rng.IntN(10) >= 3 {
		if t, err = w.pickDir(w.c.opt.MaxDepth); err != nil {
			return err
		}
		defer t.close()
	}
	if !w.c.reserveFile() {
		return errFull
	}
	to := w.name("h")
	if err := unix.Linkat(d.fd, e.name, t.fd, to, 0); err != nil {
		w.c.files.Add(-1)
		if err == unix.EPERM {
			// A directory took the file's name meanwhile (linkat says
			// EPERM for a directory).
			if st, serr := lstatat(d.fd, e.name); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return unix.EISDIR
			}
		}
		return err
	}
	w.c.linkMu.Lock()
	w.c.links = append(w.c.links, join(d.rel, e.name), join(t.rel, to))
	if len(w.c.links) > 64 {
		w.c.links = w.c.links[len(w.c.links)-64:]
	}
	w.c.linkMu.Unlock()
	return nil
}

func (w *chaosWorker) chown() error {
	ids := []int{0, 1, 2, 1000, 4242, 65534}
	uid, gid := ids[w.rng.IntN(len(ids))], ids[w.rng.IntN(len(ids))]
	if w.rng.IntN(5) == 0 {
		d, err := w.pickDir(w.c.opt.MaxDepth)
		if err != nil {
			return err
		}
		defer d.close()
		return unix.Fchown(d.fd, uid, gid)
	}
	d, e, err := w.pickEntry(anyType...)
	if err != nil {
		return err
	}
	defer d.close()
	return unix.Fchownat(d.fd, e.name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// moveOut moves an entry out of the tree into Outside, where moveIn may
// find it again.
func (w *chaosWorker) moveOut() error {
	c := w.c
	d, e, err := w.pickEntry(anyType...)
	if err != nil {
		return err
	}
	defer d.close()
	files, dirs := int64(1), int64(0)
	if e.typ == unix.DT_DIR {
		if files, dirs, _, err = w.subtree(d.fd, e.name); err != nil {
			return err
		}
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.outSeq++
	out := "o" + strconv.Itoa(c.outSeq)
	if err := unix.Renameat2(d.fd, e.name, c.outfd, out, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	c.files.Add(-files)
	c.dirs.Add(-dirs)
	c.out = append(c.out, out)
	if len(c.out) > 32 {
		w.removeAll(c.outfd, c.out[0])
		unix.Unlinkat(c.outfd, c.out[0], 0)
		c.out = c.out[1:]
	}
	return nil
}

// moveIn moves an entry from Outside into the tree: one that moveOut put
// there, or a new file or directory of files.
func (w *chaosWorker) moveIn() error {
	c := w.c
	if c.files.Load() >= int64(c.opt.MaxFiles) {
		return errFull
	}
	c.outMu.Lock()
	var out string
	if n := len(c.out); n > 0 && w.rng.IntN(3) != 0 {
		i := w.rng.IntN(n)
		out = c.out[i]
		c.out = slices.Delete(c.out, i, i+1)
	} else {
		c.outSeq++
		out = "o" + strconv.Itoa(c.outSeq)
		var err error
		if w.rng.IntN(3) == 0 {
			if err = unix.Mkdirat(c.outfd, out, 0o755); err == nil {
				var fd int
				if fd, err = openat(c.outfd, out, dirFlags, 0); err == nil {
					for range w.rng.IntN(6) {
						if err = w.writeNew(fd, w.name("f"), w.fileMode(), w.size()); err != nil {
							break
						}
					}
					unix.Close(fd)
				}
			}
		} else {
			err = w.writeNew(c.outfd, out, w.fileMode(), w.size())
		}
		if err != nil {
			c.outMu.Unlock()
			return err
		}
	}
	c.outMu.Unlock()
	st, err := lstatat(c.outfd, out)
	if err != nil {
		return err
	}
	files, dirs, height := int64(1), int64(0), 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		c.dirMu.Lock() // the tree gets deeper
		defer c.dirMu.Unlock()
		if files, dirs, height, err = w.subtree(c.outfd, out); err != nil {
			return err
		}
	}
	t, err := w.pickDir(c.opt.MaxDepth - height)
	if err == nil {
		defer t.close()
		err = unix.Renameat2(c.outfd, out, t.fd, w.name(prefixOf(dtype(st.Mode))), unix.RENAME_NOREPLACE)
	}
	if err != nil {
		c.outMu.Lock()
		c.out = append(c.out, out) // for another time
		c.outMu.Unlock()
		return err
	}
	c.files.Add(files)
	c.dirs.Add(dirs)
	return nil
}

// exchange swaps two entries, which may be of different types and in
// different directories.
func (w *chaosWorker) exchange() error {
	c := w.c
	c.dirMu.Lock() // a directory may end up deeper
	defer c.dirMu.Unlock()
	a, ae, err := w.pickEntry(anyType...)
	if err != nil {
		return err
	}
	defer a.close()
	b, be, err := w.pickEntry(anyType...)
	if err != nil {
		return err
	}
	defer b.close()
	height := func(d dirRef, e dirent) (int, error) {
		if e.typ != unix.DT_DIR {
			return 0, nil
		}
		_, _, h, err := w.subtree(d.fd, e.name)
		return h, err
	}
	ah, err := height(a, ae)
	if err != nil {
		return err
	}
	bh, err := height(b, be)
	if err != nil {
		return err
	}
	if b.depth+ah > c.opt.MaxDepth || a.depth+bh > c.opt.MaxDepth {
		return errNothing
	}
	// EINVAL when one is below the other, or both are the same.
	return unix.Renameat2(a.fd, ae.name, b.fd, be.name, unix.RENAME_EXCHANGE)
}
