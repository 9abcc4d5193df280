package all

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/local"
)

// localLocation is a directory on this machine.
type localLocation struct{ path string }

func parseLocal(dest string) (Location, error) {
	p, err := filepath.Abs(dest)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	return localLocation{path: p}, nil
}

func (l localLocation) String() string { return l.path }
func (l localLocation) Key() string    { return l.path }
func (l localLocation) Path() string   { return l.path }

func (l localLocation) Sub(name string) Location {
	return localLocation{path: filepath.Join(l.path, name)}
}

func (l localLocation) Open(_ context.Context, o OpenOptions) (fsmirror.Target, error) {
	if o.Create {
		if err := CreateDir(l.path); err != nil {
			return nil, err
		}
	}
	return local.New(l.path)
}

// CreateDir creates the destination directory dir and its missing parents.
// dir itself starts owner-only; the sync gives it its source's mode.
func CreateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create destination: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create destination: %w", err)
	}
	return nil
}
