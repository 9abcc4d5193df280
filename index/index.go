package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/fsmirror/fsmirror"
)

// ErrOtherMirror says an index file records another source or destination.
var ErrOtherMirror = errors.New("index belongs to another mirror")

// ErrLocked says an index file is open in another process.
var ErrLocked = errors.New("another fsmirror is using this state directory")

// errClosed is returned by an index used after Close.
var errClosed = errors.New("index closed")

// formatVersion is the version of the layout of keys and values. A file of
// another version is set aside and rebuilt.
const formatVersion = 1

var (
	metaBucket    = []byte("meta")
	entriesBucket = []byte("entries")

	metaVersion = []byte("version") // uint32, formatVersion
	metaSrc     = []byte("src")
	metaDst     = []byte("dst")
	metaClean   = []byte("clean") // 1 byte: 1 when closed cleanly
	metaIno     = []byte("ino")   // uint64: the next synthetic inode number
)

// firstIno is the first synthetic inode number. Files and directories the
// wrapper creates get one, so that two paths recorded with one number are
// hard links of each other; no filesystem hands out numbers this high.
const firstIno = 1 << 62

// config holds the limits; tests lower them.
type config struct {
	lockTimeout   time.Duration // how long Open waits for another process's lock
	flushInterval time.Duration // how long a change waits to be committed at most
	flushSize     int           // a batch of this many changes is committed at once
	maxPending    int           // recorders wait while this many changes wait for a commit in progress
	check         bool          // run bbolt's consistency check on open
}

var defaultConfig = config{
	lockTimeout:   time.Second,
	flushInterval: 100 * time.Millisecond,
	flushSize:     1000,
	maxPending:    50_000,
	check:         true,
}

// initialMmapSize is mapped at once so that the file grows for a long time
// before a commit must remap it, which waits for every read in progress.
const initialMmapSize = 64 << 20

// Index is the record of one destination. It is safe for concurrent use.
type Index struct {
	path      string
	db        *bolt.DB
	cfg       config
	trusted   bool
	recovered string

	mu       sync.RWMutex
	pending  *gen              // changes not yet committed
	flushing *gen              // changes being committed; never modified
	flushed  *sync.Cond        // on mu: a commit ended
	nextIno  uint64            // the next synthetic inode number
	seq      uint64            // count of recorded applies
	listings int               // untrusted listings in progress
	touched  map[string]uint64 // while listings > 0: key → seq of the op that last recorded it
	// links holds the paths of each inode number that more than one
	// recorded file has (or had: a path is checked before it is used), so
	// that setting the metadata of one name updates the others. It is
	// built when the file is opened.
	links  map[uint64]map[string]struct{}
	closed bool
	broken error // why the record may be wrong; Close then leaves it unclean
	// incomplete is why the record may lag the destination until a full
	// compare succeeds (MarkIncomplete, ClearIncomplete).
	incomplete error

	kick chan struct{} // something is pending
	full chan struct{} // flushSize changes are pending
	quit chan struct{}
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens the index file at path, creating it if needed, as the record of
// the mirror of src to dst (as the caller names them: absolute paths or
// canonical URLs). A file that records another pair is an error that wraps
// ErrOtherMirror. A file that cannot be read as an index (corrupt, another
// format version) is moved aside to path+".corrupt" and replaced by an empty
// index; Recovered says so. A file another process has open is an error that
// wraps ErrLocked, after waiting a second at most.
//
// Open marks the file unclean on disk before it returns; Close marks it
// clean again.
func Open(path, src, dst string) (*Index, error) {
	return open(path, src, dst, defaultConfig)
}

func open(path, src, dst string, cfg config) (*Index, error) {
	recovered := ""
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		// bbolt would quietly start a new database in an empty file; say
		// what happened instead of "did not stop cleanly".
		recovered = "empty (truncated or lost): a new one was started"
	}
	err := checkSize(path)
	var db *bolt.DB
	var st state
	if err == nil {
		db, st, err = load(path, src, dst, cfg)
	}
	var ce *corruptError
	if errors.As(err, &ce) {
		action, merr := moveAside(path)
		if merr != nil {
			return nil, fmt.Errorf("open index %s: it is unreadable (%s) and cannot be moved aside: %w", path, ce.reason, merr)
		}
		recovered = fmt.Sprintf("unreadable (%s): %s, a new one was started", ce.reason, action)
		db, st, err = load(path, src, dst, cfg)
	}
	if err != nil {
		return nil, err
	}
	x := &Index{
		path:      path,
		db:        db,
		cfg:       cfg,
		trusted:   !st.fresh && st.clean && recovered == "",
		recovered: recovered,
		pending:   newGen(),
		nextIno:   st.nextIno,
		links:     st.links,
		kick:      make(chan struct{}, 1),
		full:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if x.links == nil {
		x.links = map[uint64]map[string]struct{}{}
	}
	x.flushed = sync.NewCond(&x.mu)
	go x.run()
	return x, nil
}

// state is what load found in the file.
type state struct {
	fresh   bool // a new, empty file
	clean   bool // closed cleanly by its last user
	nextIno uint64
	links   map[uint64]map[string]struct{}
}

// corruptError says the file cannot be used as an index and may be
// replaced.
type corruptError struct{ reason string }

func (e *corruptError) Error() string { return e.reason }

// checkSize refuses a file shorter than its own meta pages say it is. bbolt
// maps the file and would read past its end: a SIGBUS, not an error.
func checkSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // missing: a new one; unreadable: bolt.Open says so
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	const magic = 0xED0CDAED
	var hdr [64]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return &corruptError{reason: "too short for a database"}
	}
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:]))
	if binary.LittleEndian.Uint32(hdr[16:]) != magic || pageSize < 512 || pageSize > 1<<20 {
		return nil // not a bbolt file at all: bolt.Open says so
	}
	for _, off := range []int64{0, pageSize} {
		var m [64]byte
		if _, err := f.ReadAt(m[:], off); err != nil {
			return &corruptError{reason: "truncated: its second meta page is missing"}
		}
		if binary.LittleEndian.Uint32(m[16:]) != magic {
			continue
		}
		// The meta's high-water mark: every page below it is in the file.
		if pgid := int64(binary.LittleEndian.Uint64(m[56:])); pgid > 0 && pgid*pageSize > fi.Size() {
			return &corruptError{reason: fmt.Sprintf("truncated: %d bytes, but its pages reach %d", fi.Size(), pgid*pageSize)}
		}
	}
	return nil
}

// load opens the database, checks it, and marks it in use.
func load(path, src, dst string, cfg config) (_ *bolt.DB, st state, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: cfg.lockTimeout,
		// A synced freelist costs a page per commit but spares the open
		// after a crash a walk of the whole file, which bbolt does in a
		// goroutine that panics on a damaged page.
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, st, fmt.Errorf("open index %s: %w", path, ErrLocked)
		case errors.As(err, &pe):
			return nil, st, fmt.Errorf("open index: %w", err)
		}
		return nil, st, &corruptError{reason: err.Error()}
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = &corruptError{reason: fmt.Sprint(r)}
			}
		}()
		return db.View(func(tx *bolt.Tx) error { return readMeta(tx, path, src, dst, cfg, &st) })
	}()
	if err != nil {
		return nil, st, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if st.fresh {
			meta, err := tx.CreateBucket(metaBucket)
			if err != nil {
				return err
			}
			if _, err := tx.CreateBucket(entriesBucket); err != nil {
				return err
			}
			st.nextIno = firstIno
			for _, kv := range [][2][]byte{
				{metaVersion, binary.LittleEndian.AppendUint32(nil, formatVersion)},
				{metaSrc, []byte(src)},
				{metaDst, []byte(dst)},
				{metaIno, binary.LittleEndian.AppendUint64(nil, st.nextIno)},
			} {
				if err := meta.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(metaBucket).Put(metaClean, []byte{0})
	})
	if err != nil {
		return nil, st, fmt.Errorf("open index %s: %w", path, err)
	}
	return db, st, nil
}

// readMeta checks the layout and owner of the file and reads its state.
func readMeta(tx *bolt.Tx, path, src, dst string, cfg config, st *state) error {
	meta, entries := tx.Bucket(metaBucket), tx.Bucket(entriesBucket)
	if meta == nil && entries == nil {
		empty := tx.ForEach(func([]byte, *bolt.Bucket) error { return errors.New("not empty") }) == nil
		if empty {
			st.fresh = true
			return nil
		}
	}
	if meta == nil || entries == nil {
		return &corruptError{reason: "not an fsmirror index: a bucket is missing"}
	}
	v := meta.Get(metaVersion)
	if len(v) != 4 {
		return &corruptError{reason: "no format version"}
	}
	if got := binary.LittleEndian.Uint32(v); got != formatVersion {
		return &corruptError{reason: fmt.Sprintf("format version %d, want %d", got, formatVersion)}
	}
	oldSrc, oldDst := meta.Get(metaSrc), meta.Get(metaDst)
	if oldSrc == nil || oldDst == nil {
		return &corruptError{reason: "no source or destination recorded"}
	}
	if string(oldSrc) != src || string(oldDst) != dst {
		return fmt.Errorf("open index %s: %w: it records %s -> %s, not %s -> %s; use another state directory",
			path, ErrOtherMirror, oldSrc, oldDst, src, dst)
	}
	ino := meta.Get(metaIno)
	if len(ino) != 8 {
		return &corruptError{reason: "no inode counter"}
	}
	st.nextIno = binary.LittleEndian.Uint64(ino)
	st.clean = string(meta.Get(metaClean)) == "\x01"
	st.links = hardLinks(entries)
	if cfg.check {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return &corruptError{reason: "consistency check: " + first.Error()}
		}
	}
	return nil
}

// hardLinks finds the files recorded with one inode number.
func hardLinks(b *bolt.Bucket) map[uint64]map[string]struct{} {
	links := map[uint64]map[string]struct{}{}
	first := map[uint64][]byte{}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) < valueSize || fsmirror.Type(v[0]) != fsmirror.TypeFile {
			continue
		}
		ino := binary.LittleEndian.Uint64(v[29:])
		f, seen := first[ino]
		if !seen {
			first[ino] = k // valid while the transaction is
			continue
		}
		paths := links[ino]
		if paths == nil {
			paths = map[string]struct{}{pathOfKey(f): {}}
			links[ino] = paths
		}
		paths[pathOfKey(k)] = struct{}{}
	}
	return links
}

// moveAside moves an unusable file out of the way, or removes it.
func moveAside(path string) (string, error) {
	aside := path + ".corrupt"
	if err := os.Rename(path, aside); err == nil {
		return "moved to " + aside, nil
	}
	if err := os.Remove(path); err != nil {
		return "", err
	}
	return "removed", nil
}

// Trusted reports whether the index may be believed instead of listing the
// destination: it existed, was readable, and its last user closed it
// cleanly.
func (x *Index) Trusted() bool { return x.trusted }

// Recovered returns why Open replaced an unreadable file by an empty index,
// and where the old file went, for a person to read; "" if it did not. The
// index file's path is not repeated in it.
func (x *Index) Recovered() string { return x.recovered }

// Close commits what is pending, marks the file clean and closes it. If a
// change could not be recorded, the file is left unclean (not trusted next
// time) and Close says why. Targets from Wrap must not be used after Close.
func (x *Index) Close() error {
	x.closeOnce.Do(func() {
		close(x.quit)
		<-x.done
		x.mu.Lock()
		x.closed = true
		x.flushed.Broadcast()
		x.mu.Unlock()
		err := x.flush()
		if err == nil {
			err = x.broken
		}
		if err == nil {
			x.mu.Lock()
			err = x.incomplete
			x.mu.Unlock()
		}
		if err == nil {
			err = x.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(metaClean, []byte{1}) })
		}
		if cerr := x.db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("close index %s: %w", x.path, err)
		}
		x.closeErr = err
	})
	return x.closeErr
}

// MarkIncomplete says the record may be wrong in a way a restart must not
// trust (a full compare that could not list every directory): Close will
// leave the file unclean, so the next start compares again.
func (x *Index) MarkIncomplete(why error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.incomplete = why
}

// ClearIncomplete says a full compare has since listed every directory.
func (x *Index) ClearIncomplete() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.incomplete = nil
}

// Len returns the number of recorded paths, the root included when it is
// recorded.
func (x *Index) Len() (int, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return 0, errClosed
	}
	tx, err := x.db.Begin(false)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	b := tx.Bucket(entriesBucket)
	n := b.Stats().KeyN
	merged := map[string]bool{} // key → deleted
	for _, g := range []*gen{x.flushing, x.pending} {
		if g == nil {
			continue
		}
		for dir, m := range g.dirs {
			for name, r := range m {
				merged[dir+"\x00"+name] = r.del
			}
		}
	}
	for k, del := range merged {
		inDB := b.Get([]byte(k)) != nil
		switch {
		case del && inDB:
			n--
		case !del && !inDB:
			n++
		}
	}
	return n, nil
}
