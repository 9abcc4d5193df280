package rsync

import (
	"errors"
	"strings"
	"testing"

	"github.com/fsmirror/fsmirror"
)

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		in        string
		want      Dest
		str, arg  string
		wantError string
	}{
		{in: "rsync://nas/backup", want: Dest{Daemon: true, Host: "nas", Module: "backup"},
			str: "rsync://nas/backup", arg: "rsync://nas/backup/"},
		{in: "rsync://bob@nas:8730/backup/www/site/", want: Dest{Daemon: true, User: "bob", Host: "nas", Port: 8730, Module: "backup", Path: "www/site"},
			str: "rsync://bob@nas:8730/backup/www/site", arg: "rsync://bob@nas:8730/backup/www/site/"},
		{in: "rsync://[::1]:873/m/p", want: Dest{Daemon: true, Host: "::1", Port: 873, Module: "m", Path: "p"},
			str: "rsync://[::1]:873/m/p", arg: "rsync://[::1]:873/m/p/"},
		{in: "rsync://[fe80::1]/m", want: Dest{Daemon: true, Host: "fe80::1", Module: "m"},
			str: "rsync://[fe80::1]/m", arg: "rsync://[fe80::1]/m/"},
		{in: "rsync://nas", wantError: "no module"},
		{in: "rsync://nas/", wantError: "no module"},
		{in: "rsync:///m", wantError: "no host"},
		{in: "rsync://nas:0/m", wantError: "bad port"},
		{in: "rsync://nas:x/m", wantError: "bad port"},
		{in: "rsync://nas/m/../etc", wantError: `".."`},
		{in: "ssh://nas/m", wantError: "not an rsync:// URL"},
	} {
		got, err := ParseURL(tt.in)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("ParseURL(%q): error %v, want one with %q", tt.in, err, tt.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want || got.String() != tt.str || got.Arg() != tt.arg {
			t.Errorf("ParseURL(%q) = %+v (%q, %q), want %+v (%q, %q)", tt.in, got, got.String(), got.Arg(), tt.want, tt.str, tt.arg)
		}
	}
}

func TestParseHostPath(t *testing.T) {
	for _, tt := range []struct {
		in, str, arg string
		want         Dest
	}{
		{"web1:/srv/www", "web1:/srv/www", "web1:/srv/www/", Dest{Host: "web1", Path: "/srv/www"}},
		{"deploy@web1:/srv/www/", "deploy@web1:/srv/www", "deploy@web1:/srv/www/", Dest{User: "deploy", Host: "web1", Path: "/srv/www"}},
		{"web1:mirror", "web1:mirror", "web1:mirror/", Dest{Host: "web1", Path: "mirror"}},
		{"web1:", "web1:", "web1:", Dest{Host: "web1"}},
		{"web1:/", "web1:/", "web1:/", Dest{Host: "web1", Path: "/"}},
		{"web1://", "web1:/", "web1:/", Dest{Host: "web1", Path: "/"}},
	} {
		got, err := ParseHostPath(tt.in)
		if err != nil {
			t.Errorf("ParseHostPath(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want || got.String() != tt.str || got.Arg() != tt.arg {
			t.Errorf("ParseHostPath(%q) = %+v (%q, %q), want %+v (%q, %q)", tt.in, got, got.String(), got.Arg(), tt.want, tt.str, tt.arg)
		}
	}
	for _, bad := range []string{"/local/path", "nohost", ":path", "@h:", "h:a/../b"} {
		if d, err := ParseHostPath(bad); err == nil {
			t.Errorf("ParseHostPath(%q) = %+v, want an error", bad, d)
		}
	}
}

func TestDest_Sub(t *testing.T) {
	for _, tt := range []struct {
		d    Dest
		name string
		want string
	}{
		{Dest{Daemon: true, Host: "h", Module: "m"}, "a", "rsync://h/m/a"},
		{Dest{Daemon: true, Host: "h", Module: "m", Path: "p"}, "a/b", "rsync://h/m/p/a/b"},
		{Dest{Host: "h"}, "a", "h:a"},
		{Dest{Host: "h", Path: "/"}, "a", "h:/a"},
		{Dest{Host: "h", Path: "/srv"}, "a", "h:/srv/a"},
	} {
		if got := tt.d.Sub(tt.name).String(); got != tt.want {
			t.Errorf("%v.Sub(%q) = %q, want %q", tt.d, tt.name, got, tt.want)
		}
	}
}

func TestParseItem(t *testing.T) {
	for _, tt := range []struct {
		line string
		want Change
		ok   bool
	}{
		{"<f+++++++++ a/b", Change{Kind: fsmirror.OpWrite, Path: "a/b"}, true},
		{"<f.st...... a/b", Change{Kind: fsmirror.OpWrite, Path: "a/b"}, true},
		{"cd+++++++++ d/", Change{Kind: fsmirror.OpMkdir, Path: "d", Dir: true}, true},
		{".d..t...... ./", Change{Kind: fsmirror.OpSetMeta, Path: "", Dir: true}, true},
		{".f...p..... f", Change{Kind: fsmirror.OpSetMeta, Path: "f"}, true},
		{"cL+++++++++ l", Change{Kind: fsmirror.OpSymlink, Path: "l"}, true},
		{"hf+++++++++ x", Change{Kind: fsmirror.OpLink, Path: "x"}, true},
		{"cS+++++++++ fifo", Change{Kind: fsmirror.OpMknod, Path: "fifo"}, true},
		{"*deleting   gone/", Change{Kind: fsmirror.OpDelete, Path: "gone", Dir: true}, true},
		{`<f+++++++++ d/new\#012line`, Change{Kind: fsmirror.OpWrite, Path: "d/new\nline"}, true},
		{`<f+++++++++ d/back\#134#012slash`, Change{Kind: fsmirror.OpWrite, Path: `d/back\#012slash`}, true},
		{`<f+++++++++ \#377\#376`, Change{Kind: fsmirror.OpWrite, Path: "\xff\xfe"}, true},
		{`<f+++++++++ a\#1`, Change{Kind: fsmirror.OpWrite, Path: `a\#1`}, true},
		{".d          ./", Change{}, false},
		{"created directory x", Change{}, false},
		{"<f+++++++++ ../x", Change{}, false},
		{"", Change{}, false},
	} {
		got, ok := parseItem(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseItem(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		status int
		stderr string
		want   Class
		hint   string
	}{
		{0, "", OK, ""},
		{24, "file has vanished: \"/x\"", OK, ""},
		{23, "rsync: [Receiver] mkstemp failed: Permission denied (13)", Partial, ""},
		{10, "rsync: [sender] failed to connect to 127.0.0.1 (127.0.0.1): Connection refused (111)", Retried, ""},
		{12, "rsync: connection unexpectedly closed (1234 bytes received so far) [sender]", Retried, ""},
		{30, "", Retried, ""},
		{35, "", Retried, ""},
		{-1, "", Retried, ""},
		{5, "@ERROR: max connections (1) reached -- try again later", Retried, ""},
		{5, "rsync: connection unexpectedly closed", Retried, ""},
		{5, "@ERROR: auth failed on module mirror", Fatal, "--password-file"},
		{5, "@ERROR: Unknown module 'nomod'", Fatal, "lists the modules"},
		{1, "rsync: --bogus: unknown option", Fatal, ""},
		{1, "ERROR: password file must not be other-accessible", Fatal, "chmod 600"},
		{255, "ssh: connect to host 127.0.0.1 port 1: Connection refused", Retried, ""},
		{255, "fsmirror@127.0.0.1: Permission denied (publickey).", Fatal, "ssh refused"},
		{12, "bash: line 1: rsync: command not found\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]", Fatal, "--rsync-path"},
		{99, "", Fatal, ""},
	} {
		got, hint := classify(tt.status, tt.stderr)
		if got != tt.want || !strings.Contains(hint, tt.hint) || tt.hint == "" && hint != "" {
			t.Errorf("classify(%d, %q) = %v, %q; want %v, hint with %q", tt.status, tt.stderr, got, hint, tt.want, tt.hint)
		}
	}
	e := &ExitError{Status: 10, Class: Retried, Stderr: "rsync: [sender] failed to connect to h: Connection refused (111)\nrsync error: error in socket IO (code 10) at clientserver.c(139) [sender=3.2.7]\n"}
	if !errors.Is(e, fsmirror.ErrTargetDown) || errors.Is(e, fsmirror.ErrPartial) {
		t.Errorf("a retried error must wrap ErrTargetDown only")
	}
	if want := "rsync exited with status 10 (error in socket I/O): rsync: [sender] failed to connect to h: Connection refused (111)"; e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	for stderr, want := range map[string]string{
		"bash: line 1: /no/rsync: No such file or directory\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: error in rsync protocol data stream (code 12) at io.c(232) [sender=3.2.7]\n": "bash: line 1: /no/rsync: No such file or directory",
		"file has vanished: \"/s/a\"\nrsync: [sender] link_stat \"/s/b\" failed: Permission denied (13)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23)\n":                                   `rsync: [sender] link_stat "/s/b" failed: Permission denied (13)`,
		"Warning: Permanently added '[h]:22' (ED25519) to the list of known hosts.\n@ERROR: auth failed on module m\n":                                                                                                           "@ERROR: auth failed on module m",
	} {
		if got := tellingLine(stderr); got != want {
			t.Errorf("tellingLine(%q) = %q, want %q", stderr, got, want)
		}
	}
	if p := (&ExitError{Status: 23, Class: Partial}); !errors.Is(p, fsmirror.ErrPartial) {
		t.Errorf("a partial error must wrap ErrPartial")
	}
	if f := (&ExitError{Status: 1, Class: Fatal}); errors.Is(f, fsmirror.ErrPartial) || errors.Is(f, fsmirror.ErrTargetDown) {
		t.Errorf("a fatal error must wrap neither")
	}
}

func TestTailBuffer(t *testing.T) {
	var b tailBuffer
	b.Write([]byte("first line\n"))
	for range 10000 {
		if n, err := b.Write([]byte("rsync: file has vanished: \"x\"\n")); n != 30 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	b.Write([]byte("last line\n"))
	s := b.String()
	if !strings.HasPrefix(s, "first line\n") || !strings.HasSuffix(s, "last line\n") || len(s) > tailHead+tailKeep+16 || !strings.Contains(s, "[...]") {
		t.Errorf("String() keeps %d bytes, head %q, tail %q", len(s), s[:20], s[len(s)-20:])
	}
}
