package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// model is what a planner driven only by the events knows of a tree: it
// looks at the real tree when an event names a path, as the planner does.
type model struct {
	t     *testing.T
	root  string
	files map[string]string
}

func (m *model) apply(e Event) {
	switch e.Kind {
	case Rescan:
		m.scan(e.Path)
	case Renamed:
		m.look(e.From)
		if e.IsDir {
			m.scan(e.Path) // a test shortcut for "move the subtree"
		} else {
			m.look(e.Path)
		}
	default:
		m.look(e.Path)
	}
}

// look records path as it is now.
func (m *model) look(rel string) {
	fi, err := os.Lstat(filepath.Join(m.root, rel))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		for p := range m.files {
			if p == rel || strings.HasPrefix(p, rel+"/") {
				delete(m.files, p)
			}
		}
	case err == nil && fi.IsDir():
		// An attribute change: the files below are known already.
	case err != nil:
		m.t.Error(err)
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(filepath.Join(m.root, rel))
		if err == nil {
			m.files[rel] = string(b)
		} else if !errors.Is(err, fs.ErrNotExist) {
			m.t.Error(err)
		}
	}
}

// scan records everything below rel.
func (m *model) scan(rel string) {
	for p := range m.files {
		if rel == "" || p == rel || strings.HasPrefix(p, rel+"/") {
			delete(m.files, p)
		}
	}
	filepath.WalkDir(filepath.Join(m.root, rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		r, _ := filepath.Rel(m.root, p)
		if b, err := os.ReadFile(p); err == nil {
			m.files[r] = string(b)
		}
		return nil
	})
}

func filepathJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// check compares the model with the real tree.
func (m *model) check() {
	real := map[string]string{}
	filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			r, _ := filepath.Rel(m.root, p)
			b, _ := os.ReadFile(p)
			real[r] = string(b)
		}
		return nil
	})
	missed := 0
	for p, c := range real {
		if got, ok := m.files[p]; !ok || got != c {
			if missed++; missed <= 10 {
				m.t.Errorf("uncovered change: %q is %q, the events said %q (known: %v)", p, c, got, ok)
			}
		}
	}
	for p := range m.files {
		if _, ok := real[p]; !ok {
			m.t.Errorf("%q is gone but the events did not say", p)
		}
	}
}

// Directories made and written at once, while the watcher adds their
// watches, must all be covered: by their own events, or by a Rescan sent
// after their watch existed.
func TestWatcher_MkdirWriteRace(t *testing.T) {
	forBackends(t, testOptions(), testMkdirWriteRace)
}

func testMkdirWriteRace(t *testing.T, opt Options) {
	root := t.TempDir()
	_, r := start(t, root, opt)
	m := &model{t: t, root: root, files: map[string]string{}}

	done := make(chan error, 1)
	go func() {
		for i := range 200 {
			d := filepath.Join(root, fmt.Sprintf("d%03d", i))
			if err := os.Mkdir(d, 0o755); err != nil {
				done <- err
				return
			}
			if err := os.WriteFile(filepath.Join(d, "f"), []byte(fmt.Sprint("v", i)), 0o644); err != nil {
				done <- err
				return
			}
			if err := os.MkdirAll(filepath.Join(d, "s/t"), 0o755); err != nil {
				done <- err
				return
			}
			if err := os.WriteFile(filepath.Join(d, "s/t/g"), []byte(fmt.Sprint("w", i)), 0o644); err != nil {
				done <- err
				return
			}
			// A second write, after the Rescan may have been handled.
			if i%2 == 0 {
				if err := os.WriteFile(filepath.Join(d, "f"), []byte(fmt.Sprint("v2-", i)), 0o644); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	deadline := time.After(4 * waitTimeout)
	for writing := true; writing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
		case b := <-r.w.Events():
			for _, e := range b {
				m.apply(e)
			}
		case <-deadline:
			t.Fatal("writer did not finish")
		}
	}
	r.sync()
	r.quiet(300 * time.Millisecond) // longer than PairWait: moves out are reported
	for _, e := range r.all {
		m.apply(e)
	}
	r.all = nil
	r.next = 0
	m.check()
	if len(m.files) < 400 {
		t.Errorf("model has %d files, want 400", len(m.files))
	}
}

// A directory made in a directory that is renamed before the watcher sees
// the creation is watched when the rename is processed. (fanotify names the
// new directory where it is when the event is read, before the rename.)
func TestWatcher_MkdirThenRenameParent(t *testing.T) {
	forRenameBackends(t, testOptions(), func(t *testing.T, opt Options) {
		root := t.TempDir()
		mkdirs(t, root, "a")
		w, r := start(t, root, opt)
		resume := w.PauseForTest()
		mkdirs(t, root, "a/new/deeper")
		rename(t, root, "a", "b")
		resume()
		before := r.expect(Event{Kind: Renamed, Path: "b", From: "a", IsDir: true})
		if w.Backend() == Inotify || !has(before, Event{Kind: Rescan, Path: "b/new", IsDir: true}) {
			r.expect(Event{Kind: Rescan, Path: "b/new", IsDir: true})
		}
		write(t, root, "b/new/deeper/f", "")
		r.expect(Event{Kind: Closed, Path: "b/new/deeper/f"})
		wantWatches(t, w, 4)
	})
}

// Many renames and creations at full speed, then the model must match.
func TestWatcher_Churn(t *testing.T) {
	forRenameBackends(t, testOptions(), testChurn)
}

func testChurn(t *testing.T, opt Options) {
	root, outside := t.TempDir(), t.TempDir()
	_, r := start(t, root, opt)
	m := &model{t: t, root: root, files: map[string]string{}}
	done := make(chan error, 1)
	go func() {
		var err error
		try := func(e error) {
			if err == nil && e != nil {
				err = e
			}
		}
		for i := range 100 {
			d := filepath.Join(root, fmt.Sprintf("c%d", i))
			try(os.MkdirAll(filepath.Join(d, "x/y"), 0o755))
			try(os.WriteFile(filepath.Join(d, "x/y/f"), []byte("1"), 0o644))
			try(os.Rename(d, d+"r"))
			try(os.WriteFile(filepath.Join(d+"r", "x/y/f"), []byte("2"), 0o644))
			try(os.WriteFile(filepath.Join(d+"r", "x/g"), []byte("3"), 0o644))
			switch i % 3 {
			case 0:
				try(os.Rename(d+"r", filepath.Join(outside, fmt.Sprint(i))))
			case 1:
				try(os.Rename(filepath.Join(d+"r", "x"), filepath.Join(root, fmt.Sprintf("x%d", i))))
				try(os.WriteFile(filepath.Join(root, fmt.Sprintf("x%d/y/h", i)), []byte("4"), 0o644))
			}
		}
		done <- err
	}()
	deadline := time.After(4 * waitTimeout)
	for writing := true; writing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
		case b := <-r.w.Events():
			for _, e := range b {
				m.apply(e)
			}
		case <-deadline:
			t.Fatal("writer did not finish")
		}
	}
	r.sync()
	r.quiet(300 * time.Millisecond) // longer than PairWait: moves out are reported
	for _, e := range r.all {
		m.apply(e)
	}
	m.check()
}
