package benchutil

import (
	"errors"
	"os/exec"
	"testing"
)

func TestLuaQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/dev/shm/a b":         `"/dev/shm/a b"`,
		`q"uote\`:              `"q\"uote\\"`,
		"new\nline\x7f":        `"new\010line\127"`,
		"CloseWrite or Modify": `"CloseWrite or Modify"`,
	} {
		if got := LuaQuote(in); got != want {
			t.Errorf("LuaQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLsyncdCleanExit(t *testing.T) {
	run := func(script string) error { return exec.Command("sh", "-c", script).Run() }
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{run("exit 143"), true},
		{run("kill -TERM $$"), true},
		{run("exit 1"), false},
		{run("kill -KILL $$"), false},
		{errors.New("not an exit"), false},
	} {
		if got := LsyncdCleanExit(tt.err); got != tt.want {
			t.Errorf("LsyncdCleanExit(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
