package all

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

func TestParse_rsync(t *testing.T) {
	for _, tt := range []struct {
		dest      string
		o         Options
		str, key  string
		sub       string
		wantError string
	}{
		{dest: "rsync://bob@nas:8730/backup/www", str: "rsync://bob@nas:8730/backup/www", key: "rsync://bob@nas:8730/backup/www", sub: "rsync://bob@nas:8730/backup/www/a"},
		{dest: "rsync://nas/backup", str: "rsync://nas/backup", key: "rsync://nas/backup", sub: "rsync://nas/backup/a"},
		{dest: "web1:/srv/www", o: Options{Rsync: true}, str: "web1:/srv/www", key: "rsync+ssh:web1:/srv/www", sub: "web1:/srv/www/a"},
		{dest: "rsync://nas", wantError: "no module"},
		{dest: "rsync://nas/m", o: Options{RsyncPath: "/opt/rsync"}, wantError: "--rsync-path is for"},
		{dest: "web1:/srv", o: Options{Rsync: true, PasswordFile: "/p"}, wantError: "--password-file is for"},
	} {
		loc, err := Parse(tt.dest, tt.o)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("Parse(%q): error %v, want one with %q", tt.dest, err, tt.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.dest, err)
			continue
		}
		if _, ok := loc.(Syncer); !ok {
			t.Errorf("Parse(%q) is a %T, not a Syncer", tt.dest, loc)
		}
		if loc.String() != tt.str || loc.Key() != tt.key || loc.Sub("a").String() != tt.sub {
			t.Errorf("Parse(%q): String %q, Key %q, Sub %q; want %q, %q, %q", tt.dest, loc.String(), loc.Key(), loc.Sub("a"), tt.str, tt.key, tt.sub)
		}
		if _, err := loc.Open(context.Background(), OpenOptions{}); !errors.Is(err, ErrNotTarget) {
			t.Errorf("Open of %q: %v, want ErrNotTarget", tt.dest, err)
		}
	}
}

func TestRsyncLocation_OpenSyncer(t *testing.T) {
	d := testutil.NewRsyncd(t, testutil.RsyncdOptions{})
	src := t.TempDir()
	testutil.Build(t, src, testutil.File("d/f", "hello", 0o640), testutil.Symlink("d/l", "f"))
	loc, err := Parse(d.URL("m"), Options{PasswordFile: d.PasswordFile})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	s, err := loc.(Syncer).OpenSyncer(context.Background(), OpenOptions{Source: src, OnChange: func(op fsmirror.Op) {
		ops = append(ops, op.Kind.String()+" "+op.Path)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.AssertMirror(t, src, filepath.Join(d.Path, "m"), testutil.DiffOptions{Owner: os.Geteuid() == 0})
	if want := "write d/f"; !strings.Contains(strings.Join(ops, "\n"), want) {
		t.Errorf("changes reported: %q, want one %q", ops, want)
	}
}
