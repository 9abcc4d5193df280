package benchutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// FindLsyncd looks up lsyncd, and the rsync its default.rsync runs, and
// returns lsyncd's path and the report's header lines naming both versions
// and conf, lsyncd's configuration with placeholders for its paths.
func FindLsyncd(ctx context.Context, conf string) (bin string, versions []string, err error) {
	bin, err = exec.LookPath("lsyncd")
	if err != nil {
		return "", nil, fmt.Errorf("lsyncd: %w (install it, or drop it with -tools fsmirror)", err)
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		return "", nil, fmt.Errorf("lsyncd needs rsync: %w (drop lsyncd with -tools fsmirror)", err)
	}
	out, _ := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	versions = append(versions, fmt.Sprintf("lsyncd:   %s: %s, %s", bin, FirstLine(out), conf))
	if out, err := exec.CommandContext(ctx, "rsync", "--version").Output(); err == nil {
		versions = append(versions, "rsync:    "+FirstLine(out))
	}
	return bin, versions, nil
}

// StartLsyncd writes conf to a file in dir and starts lsyncd bin on it in
// the foreground; it is ready once it logs that its startup (the initial
// sync) has finished.
func StartLsyncd(bin, dir, conf string) (*Daemon, error) {
	path := filepath.Join(dir, "lsyncd.conf.lua")
	if err := os.WriteFile(path, []byte(conf+"\n"), 0o644); err != nil {
		return nil, err
	}
	return StartDaemon("lsyncd", []string{bin, "-nodaemon", path}, func(line string) bool {
		return strings.Contains(line, "Startup of") && strings.Contains(line, "finished")
	})
}

// LsyncdCleanExit reports whether lsyncd's exit after SIGTERM was a clean
// one: lsyncd exits with status 143, or by the signal, on SIGTERM.
func LsyncdCleanExit(err error) bool {
	var ee *exec.ExitError
	if err == nil {
		return true
	}
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ee.ExitCode() == 143 || ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

// LsyncdConfig is lsyncd's configuration for mirroring src to dst with
// default.rsync and no delay, as the benchmarks run it; inotifyMode is its
// settings.inotifyMode ("CloseWrite", "Modify" or "CloseWrite or Modify").
func LsyncdConfig(src, dst, inotifyMode string) string {
	return fmt.Sprintf(`settings { nodaemon = true, insist = true, inotifyMode = %s } `+
		`sync { default.rsync, source = %s, target = %s, delay = 0 }`,
		LuaQuote(inotifyMode), LuaQuote(src), LuaQuote(dst))
}

// LuaQuote makes s a Lua string literal, for lsyncd's configuration; bytes
// other than the quote, the backslash and control characters stand for
// themselves.
func LuaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
