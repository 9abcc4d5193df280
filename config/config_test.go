package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fsmirror/fsmirror/filter"
	"github.com/fsmirror/fsmirror/target/all"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "www.exclude"), []byte("*.tmp\n# comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "fsmirror.toml")
	data := `# fsmirror's config
state-dir = "${STATE}/fsmirror"

[[sync]]
name = "www"
source = "/srv/www"
destination = ["/mnt/mirror/www", "web2:/srv/www"]
exclude = ["*.swp", "$RECYCLE.BIN/"]
exclude-from = "www.exclude"
delay = "200ms"
max-size = "1M"
min-size = 1
delete = false
ssh = "ssh -i $HOME/.ssh/id"
compress = true

[[sync]]
source = ['/home/alice', "/home/bob"]
destination = "rsync://backup@nas/mirror"
password-file = "/etc/fsmirror/nas.pw"
bwlimit = 5000
rsync-args = ["--chmod=Fgo-w"]
workers = 4
rescan-interval = "1h"
`
	c, err := Parse(file, []byte(data), env(map[string]string{"STATE": "/var/lib", "HOME": "/root"}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{File: file, StateDir: "/var/lib/fsmirror", Syncs: []*Sync{{
		Name:         "www",
		Sources:      []string{"/srv/www"},
		Destinations: []string{"/mnt/mirror/www", "web2:/srv/www"},
		Exclude:      []string{"*.swp", "$RECYCLE.BIN/", "*.tmp"},
		ExcludeFrom:  []string{filepath.Join(dir, "www.exclude")},
		Delay:        200 * time.Millisecond,
		MaxDelay:     DefaultMaxDelay,
		Watcher:      "inotify",
		Size:         filter.Size{Min: 1, Max: 1 << 20},
		Dest:         all.Options{SSH: "ssh -i /root/.ssh/id", Compress: true},
	}, {
		Name:           "alice",
		Sources:        []string{"/home/alice", "/home/bob"},
		Destinations:   []string{"rsync://backup@nas/mirror"},
		MaxDelay:       DefaultMaxDelay,
		Watcher:        "inotify",
		Delete:         true,
		Workers:        4,
		RescanInterval: time.Hour,
		Dest:           all.Options{PasswordFile: "/etc/fsmirror/nas.pw", Bwlimit: "5000", RsyncArgs: []string{"--chmod=Fgo-w"}},
	}}}
	if d := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}, Sync{})); d != "" {
		t.Fatalf("config (-want +got):\n%s", d)
	}
	if got := c.Syncs[0].Where("delay"); got != file+":10" {
		t.Errorf("Where(delay) = %q", got)
	}
	if got := c.Syncs[1].Where(""); got != file+":17" {
		t.Errorf("Where() = %q", got)
	}
	// Moving a block or adding comments changes no sync.
	moved := "# more\n\n" + strings.Replace(data, "delay = \"200ms\"\n", "\n\ndelay = \"200ms\"  # quiet first\n", 1)
	c2, err := Parse(file, []byte(moved), env(map[string]string{"STATE": "/var/lib", "HOME": "/root"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Syncs[0].Same(c2.Syncs[0]) || !c.Syncs[1].Same(c2.Syncs[1]) {
		t.Error("moving lines changed a sync")
	}
	if c.Syncs[0].Same(c.Syncs[1]) {
		t.Error("two different syncs are the same")
	}
}

// TestParse_Errors checks that each mistake is reported with its file,
// line and key.
func TestParse_Errors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"syntax", "[[sync]]\nsource = \"/a\"\ndestination = \"/b\nx", []string{
			`bad.toml:3: sync.destination: strings cannot contain newlines`}},
		{"unknown top key", "stat-dir = \"/x\"\n[[sync]]\nsource = \"/a\"\ndestination = \"/b\"\n", []string{
			`bad.toml:1: stat-dir: unknown key (did you mean state-dir?)`}},
		{"unknown key in second block", `
[[sync]]
source = "/a"
destination = "/b"

[[sync]]
name = "two"
source = "/c"
destination = "/d"
delya = "1s"
sources = ["/e"]
`, []string{
			`bad.toml:10: sync "two": delya: unknown key (did you mean delay?)`,
			`bad.toml:11: sync "two": sources: unknown key (did you mean source?)`}},
		{"unknown table", "[[sync]]\nsource = \"/a\"\ndestination = \"/b\"\n[sync.options]\nx = 1\n", []string{
			`bad.toml:4: sync #1: options: unknown key (see 'fsmirror examples' for the keys a config takes)`}},
		{"types", `[[sync]]
source = "/a"
destination = "/b"
delay = 5
delete = "no"
workers = 0
exclude = ["ok", 3]
`, []string{
			`bad.toml:4: sync #1: delay: want a duration such as "200ms" or "5s", not an integer`,
			`bad.toml:5: sync #1: delete: want true or false, not a string`,
			`bad.toml:6: sync #1: workers: 0 is out of range (at least 1)`,
			`bad.toml:7: sync #1: exclude: want a string, not an integer`}},
		{"values", `[[sync]]
source = "/a"
destination = [
  "/b",
  "ftp://host/x",
]
exclude = [
  "[a-",
]
max-size = "10 parsecs"
delay = "-1s"
`, []string{
			`bad.toml:5: sync #1: destination: destination "ftp://host/x": unknown scheme "ftp" (known: fsmirror://, rsync://, ssh://)`,
			`bad.toml:8: sync #1: exclude: parse pattern "[a-": unclosed '['`,
			`bad.toml:10: sync #1: max-size: bad size "10 parsecs": want a number of bytes with an optional k, m, g or t suffix (powers of 1024), such as 100k or 1.5G`,
			`bad.toml:11: sync #1: delay: must not be negative`}},
		{"missing", "[[sync]]\nname = \"x\"\n", []string{
			`bad.toml:1: sync "x": source: missing: give the directory to mirror`,
			`bad.toml:1: sync "x": destination: missing: give where to mirror to`}},
		{"no sync", "state-dir = \"/x\"\n", []string{
			`bad.toml: no [[sync]] block: nothing to do (see 'fsmirror examples')`}},
		{"env", "[[sync]]\nsource = \"$NOPE/a\"\ndestination = \"/b\"\n", []string{
			`bad.toml:2: sync #1: source: environment variable NOPE is not set (write $$ for a literal $)`}},
		{"duplicate names", "[[sync]]\nsource = \"/a/www\"\ndestination = \"/b\"\n[[sync]]\nsource = \"/c/www\"\ndestination = \"/d\"\n", []string{
			`bad.toml:4: sync #2: name: two syncs are named "www" (the other at line 1): give each its own name`}},
		{"bad name", "[[sync]]\nname = \"a b\"\nsource = \"/a\"\ndestination = \"/b\"\n", []string{
			`bad.toml:2: sync "a b": name: "a b" is not a valid name: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'`}},
		{"sizes", "[[sync]]\nsource = \"/a\"\ndestination = \"/b\"\nmin-size = \"2k\"\nmax-size = \"1k\"\n", []string{
			`bad.toml:4: sync #1: min-size: 2048 is larger than max-size 1024: nothing would be mirrored`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(tc.data), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error %T %v, want Errors", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("errors (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoad_Missing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nosuch.toml"))
	if err == nil || !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestScanPositions(t *testing.T) {
	data := `a = 1
[t]
b = { c = 2, "d.e" = [
  1,
  2 ] }
[[arr]]
x = '''
multi
'''
[[arr]]
x.y = "s # not a comment"
[[arr.sub]]
z = 3
`
	p := scanPositions(data)
	for _, tc := range []struct {
		path []string
		line int
	}{
		{[]string{"a"}, 1},
		{[]string{"t"}, 2},
		{[]string{"t", "b", "c"}, 3},
		{[]string{"t", "b", "d.e", "1"}, 5},
		{[]string{"arr", "0", "x"}, 7},
		{[]string{"arr", "1"}, 10},
		{[]string{"arr", "1", "x", "y"}, 11},
		{[]string{"arr", "1", "sub", "0", "z"}, 13},
		{[]string{"arr", "1", "nosuch"}, 10},
	} {
		if got := p.line(tc.path); got != tc.line {
			t.Errorf("line(%q) = %d, want %d", tc.path, got, tc.line)
		}
	}
}
