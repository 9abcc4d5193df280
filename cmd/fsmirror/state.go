package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/index"
)

// defaultStateDir is where indexes live unless --state-dir says otherwise:
// $FSMIRROR_STATE_DIR, else /var/lib/fsmirror for root, else
// $XDG_STATE_HOME/fsmirror (~/.local/state/fsmirror).
func defaultStateDir() string {
	if d := os.Getenv("FSMIRROR_STATE_DIR"); d != "" {
		return d
	}
	if unix.Geteuid() == 0 {
		return "/var/lib/fsmirror"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fsmirror")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "fsmirror")
	}
	return ""
}

// indexPath returns the index file of destination dst in stateDir: one file
// per destination, so two mirrors never share one, and a destination that is
// given another source is caught (index.ErrOtherMirror).
func indexPath(stateDir, dst string) string {
	sum := sha256.Sum256([]byte(dst))
	return filepath.Join(stateDir, "index-"+hex.EncodeToString(sum[:8])+".db")
}

// openIndex opens the index of pair p and says whether it can be trusted
// instead of comparing the whole destination, logging why not.
func openIndex(stateDir string, p pair, verifyOnStart bool, log *slog.Logger) (*index.Index, bool, error) {
	if stateDir == "" {
		return nil, false, errors.New("no state directory: give --state-dir")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create state directory: %w", err)
	}
	path := indexPath(stateDir, p.dst.Key())
	_, statErr := os.Stat(path)
	idx, err := index.Open(path, p.src, p.dst.Key())
	if err != nil {
		return nil, false, err
	}
	trusted := idx.Trusted() && !verifyOnStart
	switch {
	case idx.Recovered() != "":
		log.Warn(fmt.Sprintf("index %s: %s; comparing the whole destination", path, idx.Recovered()))
	case verifyOnStart:
	case errors.Is(statErr, os.ErrNotExist):
		// A first run: the destination is compared and the index built.
	case !idx.Trusted():
		log.Warn(fmt.Sprintf("the last run on %s did not stop cleanly; comparing the whole destination", p.dst))
	}
	return idx, trusted, nil
}
