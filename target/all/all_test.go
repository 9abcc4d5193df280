package all

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/srv/mirror", "/srv/mirror"},
		{"/srv/mirror/", "/srv/mirror"},
		{"./name:with:colons", ""}, // local, made absolute
		{"host:dir", "ssh://host/dir"},
		{"host:", "ssh://host/"},
		{"host:/abs/dir/", "ssh://host/abs/dir"},
		{"me@host:dir", "ssh://me@host/dir"},
		{"[::1]:dir", "ssh://[::1]/dir"},
		{"me@[::1]:dir", "ssh://me@[::1]/dir"},
		{"ssh://me@host:2222/srv/x", "ssh://me@host:2222/srv/x"},
		{"ssh://host/~/x", "ssh://host/~/x"},
	} {
		l, err := Parse(c.in, Options{})
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if c.want == "" {
			if _, ok := l.(Local); !ok {
				t.Errorf("Parse(%q) = %v, want a local path", c.in, l)
			}
			continue
		}
		if got := l.String(); got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "ssh://", "ssh://host:99999/x", "ssh://-oProxyCommand=x/y", "-oProxyCommand=x:y", "nosuch://x/y", "host:a\nb", "ssh://host/x?y=1"} {
		if l, err := Parse(bad, Options{}); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, l)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("Parse(%q): badly formatted error %v", bad, err)
		}
	}
}

func TestLocation_Sub(t *testing.T) {
	for _, c := range []struct{ in, sub, want string }{
		{"/srv", "a", "/srv/a"},
		{"host:", "a", "ssh://host/a"},
		{"host:/", "a", "ssh://host/a"},
		{"host:dir", "a/b", "ssh://host/dir/a/b"},
	} {
		l, err := Parse(c.in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Sub(c.sub).String(); got != c.want {
			t.Errorf("Parse(%q).Sub(%q) = %q, want %q", c.in, c.sub, got, c.want)
		}
	}
}

func TestParse_Receiver(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("  secret-0123456789abcdef \nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("other-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fp := strings.Repeat("ab", 32)
	o := Options{Fingerprint: fp, TokenFile: tok}
	for _, c := range []struct{ in, want string }{
		{"fsmirror://host:7480", "fsmirror://host:7480/"},
		{"fsmirror://host:7480/", "fsmirror://host:7480/"},
		{"fsmirror://host:7480/a/b/", "fsmirror://host:7480/a/b"},
		{"fsmirror://[::1]:7480/a", "fsmirror://[::1]:7480/a"},
		{"fsmirror://host:7480/a?fingerprint=" + strings.ToUpper(fp), "fsmirror://host:7480/a"},
		{"fsmirror://host:7480/a?token-file=" + other, "fsmirror://host:7480/a"},
	} {
		l, err := Parse(c.in, o)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := l.String(); got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
		if sub := l.Sub("s").String(); sub != strings.TrimSuffix(c.want, "/")+"/s" {
			t.Errorf("Parse(%q).Sub(s) = %q", c.in, sub)
		}
	}
	// The token read is the first line, trimmed; another token is another
	// client, so another tree.
	a, _ := Parse("fsmirror://host:7480/a", o)
	b, _ := Parse("fsmirror://host:7480/a?token-file="+other, o)
	if a.(receiverLocation).token != "secret-0123456789abcdef" {
		t.Errorf("token %q", a.(receiverLocation).token)
	}
	if a.Key() == b.Key() || strings.Contains(a.Key(), "secret") {
		t.Errorf("keys %q and %q: want them different, without the token", a.Key(), b.Key())
	}
	for _, bad := range []string{
		"fsmirror://host/a",             // no port
		"fsmirror://host:0/a",           // bad port
		"fsmirror://:7480/a",            // no host
		"fsmirror://u@host:7480/a",      // no user part
		"fsmirror://host:7480/../b",     // ..
		"fsmirror://host:7480/a/%2e%2e", // .. escaped
		"fsmirror://host:7480/a?x=1",    // unknown parameter
		"fsmirror://host:7480/a?fingerprint=123",
		"fsmirror://host:7480/a?token-file=/nonexistent",
	} {
		if l, err := Parse(bad, o); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, l)
		}
	}
	for _, missing := range []Options{{TokenFile: tok}, {Fingerprint: fp}} {
		if _, err := Parse("fsmirror://host:7480/a", missing); err == nil {
			t.Errorf("Parse with options %+v: no error", missing)
		}
	}
}
