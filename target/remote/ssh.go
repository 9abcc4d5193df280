package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoAgent is wrapped by the error of an SSH destination whose host has
// no fsmirror to run.
var ErrNoAgent = errors.New("no fsmirror agent on the remote host")

// SSH reaches an agent by running `fsmirror agent` through the system ssh,
// so that ~/.ssh/config, agents, ProxyJump and ControlMaster all apply.
type SSH struct {
	// Command is ssh and its options, e.g. {"ssh", "-i", "key"}; empty
	// means {"ssh"}. fsmirror adds -T and -o BatchMode=yes.
	Command []string
	User    string // empty: ssh's default
	Host    string
	Port    int    // 0: ssh's default
	Path    string // the destination directory on the far side; relative to the remote home unless absolute
	// Agent is the fsmirror binary on the far side; empty means
	// "fsmirror" from the remote PATH.
	Agent string
	// InstallAgent copies this very binary into the remote user's cache
	// directory (once per build) and runs that, so both ends are the same
	// release. The far side must be the same OS and architecture.
	InstallAgent bool
	// Create makes the agent create Path if it is missing.
	Create bool

	once       sync.Once
	installed  string
	installErr error
}

// String names the destination as [user@]host[:port]:path.
func (s *SSH) String() string {
	name := s.Host
	if s.User != "" {
		name = s.User + "@" + name
	}
	if s.Port != 0 {
		name += ":" + strconv.Itoa(s.Port)
	}
	return name + ":" + s.Path
}

func (s *SSH) command() []string {
	if len(s.Command) == 0 {
		return []string{"ssh"}
	}
	return s.Command
}

// sshArgs returns the arguments that run remote on the host.
func (s *SSH) sshArgs(remote string) []string {
	cmd := s.command()
	args := append([]string{}, cmd[1:]...)
	args = append(args, "-T", "-o", "BatchMode=yes")
	if s.Port != 0 {
		args = append(args, "-p", strconv.Itoa(s.Port))
	}
	if s.User != "" {
		args = append(args, "-l", s.User)
	}
	return append(args, "--", s.Host, remote)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remotePath is Path as the agent gets it: "~/x" and "" are relative to the
// home directory, where ssh starts the agent.
func (s *SSH) remotePath() string {
	p := s.Path
	switch {
	case p == "" || p == "~":
		return "."
	case strings.HasPrefix(p, "~/"):
		return "./" + p[2:]
	}
	return p
}

// Dial starts ssh running the agent and returns its standard input and
// output as the connection.
func (s *SSH) Dial(ctx context.Context) (io.ReadWriteCloser, error) {
	agent := s.Agent
	if agent == "" {
		agent = "fsmirror"
	}
	if s.InstallAgent {
		s.once.Do(func() { s.installed, s.installErr = s.install(ctx) })
		if s.installErr != nil {
			return nil, s.installErr
		}
		agent = s.installed
	}
	remote := shellQuote(agent) + " agent --root " + shellQuote(s.remotePath())
	if s.Create {
		remote += " --create"
	}
	return startProc(s.command()[0], s.sshArgs(remote))
}

// Greeted explains a failed handshake from what ssh and the far side said.
func (s *SSH) Greeted(conn io.ReadWriteCloser, err error) error {
	if err == nil {
		return nil
	}
	p := conn.(*proc)
	code, stderr := p.exitStatus(5 * time.Second)
	agent := s.Agent
	if agent == "" {
		agent = "fsmirror"
	}
	switch {
	case code == 255:
		return fmt.Errorf("ssh to %s failed: %s", s, orText(stderr, err.Error()))
	case code == 127 || strings.Contains(stderr, "not found") || strings.Contains(stderr, "No such file"):
		return fmt.Errorf("%w: %s: %q could not be run there (%s); install fsmirror on that host and give its path with --remote-fsmirror, or add --install-agent to copy this binary (%s/%s) there",
			ErrNoAgent, s.Host, agent, orText(stderr, "exit status "+strconv.Itoa(code)), runtime.GOOS, runtime.GOARCH)
	case stderr != "":
		return fmt.Errorf("agent on %s: %v; it said: %s", s, err, stderr)
	}
	return fmt.Errorf("agent on %s: %w", s, err)
}

func orText(s, alt string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return alt
}

// unameOf maps GOOS/GOARCH to what `uname -sm` prints.
var unameArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "arm": "armv7l", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}

// install copies this binary to the far side, if the far side does not
// have this build yet, and returns its remote path.
func (s *SSH) install(ctx context.Context) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install agent: find this binary: %w", err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("install agent: %w", err)
	}
	sum := sha256.Sum256(bin)
	name := "fsmirror-" + hex.EncodeToString(sum[:8])
	// The cache directory, made if missing; then whether this build is
	// there, and what the host is.
	dir := `"${XDG_CACHE_HOME:-$HOME/.cache}/fsmirror"`
	probe := `sh -c 'd=` + dir + `; mkdir -p "$d" && echo "$d" && uname -sm && if [ -x "$d/` + name + `" ]; then echo present; else echo missing; fi'`
	out, err := s.run(ctx, probe, nil)
	if err != nil {
		return "", fmt.Errorf("install agent on %s: %w", s.Host, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		return "", fmt.Errorf("install agent on %s: unexpected answer %q", s.Host, out)
	}
	remoteDir, uname, state := lines[len(lines)-3], lines[len(lines)-2], lines[len(lines)-1]
	want := "Linux " + unameArch[runtime.GOARCH]
	if runtime.GOOS != "linux" || uname != want {
		return "", fmt.Errorf("install agent on %s: the host is %q and this binary is %s/%s; install fsmirror there yourself and use --remote-fsmirror", s.Host, uname, runtime.GOOS, runtime.GOARCH)
	}
	path := remoteDir + "/" + name
	if state == "present" {
		return path, nil
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("install agent: %w", err)
	}
	defer f.Close()
	copyCmd := `sh -c 'd=` + dir + `; t="$d/.` + name + `.$$"; cat > "$t" && chmod 755 "$t" && mv -f "$t" "$d/` + name + `"'`
	if _, err := s.run(ctx, copyCmd, f); err != nil {
		return "", fmt.Errorf("install agent on %s: copy: %w", s.Host, err)
	}
	return path, nil
}

// run runs a command on the host and returns its output.
func (s *SSH) run(ctx context.Context, remote string, stdin io.Reader) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.command()[0], s.sshArgs(remote)...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, orText(stderr.String(), "(no message)"))
	}
	return out, nil
}
