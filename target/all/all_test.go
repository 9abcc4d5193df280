package all

import (
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
