package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRsyncd(t *testing.T) {
	d := NewRsyncd(t, RsyncdOptions{})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	push := func(passwordFile string) (string, error) {
		out, err := exec.Command("rsync", "-a", "--modify-window=-1", "--password-file="+passwordFile, src+"/", d.URL("sub")+"/").CombinedOutput()
		return string(out), err
	}
	if out, err := push(d.PasswordFile); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	AssertMirror(t, src, filepath.Join(d.Path, "sub"), DiffOptions{Owner: os.Geteuid() == 0})

	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := push(wrong); err == nil || !strings.Contains(out, "auth failed") {
		t.Errorf("push with a wrong password: %v\n%s", err, out)
	}

	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := push(d.PasswordFile); err == nil {
		t.Errorf("push to a stopped daemon succeeded:\n%s", out)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "g"), []byte("again"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := push(d.PasswordFile); err != nil {
		t.Fatalf("push after a restart: %v\n%s", err, out)
	}
	AssertMirror(t, src, filepath.Join(d.Path, "sub"), DiffOptions{Owner: os.Geteuid() == 0})
}
