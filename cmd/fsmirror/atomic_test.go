package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

func TestSync_TempFiles(t *testing.T) {
	t.Parallel()
	tree := []testutil.Node{
		testutil.Dir(".", 0o755).Mtime(t0),
		testutil.File("f", "content", 0o644).Mtime(t0 + 1),
		testutil.Dir("sub", 0o755).Mtime(t0 + 2),
		testutil.File("sub/g", "content", 0o644).Mtime(t0 + 3),
	}
	stale := []string{
		fsmirror.TempPrefix + "0123456789abcdef.tmp",
		"sub/" + fsmirror.TempPrefix + "fedcba9876543210.tmp",
	}
	for _, name := range stale {
		if !fsmirror.IsTempName(filepath.Base(name)) {
			t.Fatalf("%s is not a temporary's name", name)
		}
	}
	for _, args := range [][]string{{"sync"}, {"sync", "--no-delete"}} {
		t.Run(strings.Join(args, " ")+" removes stale temporaries", func(t *testing.T) {
			t.Parallel()
			src, dst := srcDst(t)
			testutil.Build(t, src, tree...)
			mustRun(t, 0, "sync", src, dst)
			for _, name := range stale {
				testutil.Build(t, dst, testutil.File(name, "half a file", 0o600))
			}
			mustRun(t, 0, append(args, src, dst)...)
			if got := tempNames(t, dst); len(got) > 0 {
				t.Errorf("stale temporaries left: %q", got)
			}
			testutil.AssertMirror(t, src, dst, diffOpt())
		})
	}

	// A file is complete before it has its name: the destination directory
	// is watched with inotify while sync writes, and no write may ever be
	// seen on a final name. A file that replaces another is written under
	// a temporary name in the same directory and renamed into place.
	t.Run("written aside and renamed into place", func(t *testing.T) {
		t.Parallel()
		src, dst := srcDst(t)
		testutil.Build(t, src, tree...)
		testutil.Build(t, dst,
			testutil.File("f", "old content, to be replaced", 0o644),
			testutil.File("sub/g", "old", 0o644),
		)
		// A snapshot: another name for the old inode, outside the mirror.
		snapshot := filepath.Join(filepath.Dir(dst), "snapshot-of-f")
		if err := os.Link(filepath.Join(dst, "f"), snapshot); err != nil {
			t.Fatal(err)
		}
		root, sub := watchDir(t, dst), watchDir(t, filepath.Join(dst, "sub"))

		mustRun(t, 0, "sync", src, dst)
		testutil.AssertMirror(t, src, dst, diffOpt())
		if got := readFile(t, snapshot); got != "old content, to be replaced" {
			t.Errorf("the old inode of f, also linked outside the mirror, was modified: it holds %q", got)
		}
		for _, w := range []struct {
			events []inotifyEvent
			name   string
		}{{root.events(t), "f"}, {sub.events(t), "g"}} {
			checkRenamedIntoPlace(t, w.events, w.name)
		}
	})
}

// checkRenamedIntoPlace checks, in the events of one directory, that name
// was never written to under its own name and that it got its name by a
// rename from one of fsmirror's temporaries in the same directory.
func checkRenamedIntoPlace(t *testing.T, events []inotifyEvent, name string) {
	t.Helper()
	const writes = unix.IN_MODIFY | unix.IN_CLOSE_WRITE
	tempCookies := map[uint32]bool{}
	renamed := false
	for _, e := range events {
		switch {
		case e.mask&unix.IN_MOVED_FROM != 0 && fsmirror.IsTempName(e.name):
			tempCookies[e.cookie] = true
		case e.name == name && e.mask&unix.IN_MOVED_TO != 0 && tempCookies[e.cookie]:
			renamed = true
		case e.name == name && e.mask&writes != 0:
			t.Errorf("%s was written under its final name (inotify event %#x)", name, e.mask)
		}
	}
	if !renamed {
		t.Errorf("%s was not renamed into place from a temporary in its directory; events:\n%v", name, events)
	}
}

type inotifyEvent struct {
	mask, cookie uint32
	name         string
}

type inotifyWatch struct{ fd int }

// watchDir starts watching every event in directory dir.
func watchDir(t *testing.T, dir string) *inotifyWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_ALL_EVENTS); err != nil {
		t.Fatal(err)
	}
	return &inotifyWatch{fd: fd}
}

// events returns the events queued so far.
func (w *inotifyWatch) events(t *testing.T) []inotifyEvent {
	t.Helper()
	var out []inotifyEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for p := buf[:n]; len(p) >= unix.SizeofInotifyEvent; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&p[0]))
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflow")
			}
			name := p[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+int(ev.Len)]
			out = append(out, inotifyEvent{mask: ev.Mask, cookie: ev.Cookie, name: string(bytes.TrimRight(name, "\x00"))})
			p = p[unix.SizeofInotifyEvent+int(ev.Len):]
		}
	}
}
