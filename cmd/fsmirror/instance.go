package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror/config"
)

type startFlags struct {
	runFlags
	logFile string
	wait    time.Duration
}

func newStartCmd(a *app) *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start -c FILE [--name NAME]",
		Short: "Run a config file in the background",
		Long: `Check the config file, start 'fsmirror run' with it in the background
(detached, in a session of its own) and wait until every initial sync is
done, or until it fails, printing why. Its messages go to --log-file
(default: NAME.log in the state directory).

` + configHelp + `

Several instances run side by side under different --name; 'fsmirror
status', 'reload' and 'stop' find them by name. Under systemd, use the
shipped unit instead, which runs 'fsmirror run'.

Exit status: 0 started (or still doing its initial syncs after --wait),
2 the config has mistakes or the instance failed to start.`,
		Example: `  fsmirror start -c ~/.config/fsmirror/home.toml
  fsmirror start -c web.toml --name web && fsmirror status --name web`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStart(f, a)
		},
	}
	f.registerConfig(cmd)
	f.registerName(cmd, "the instance's `NAME`")
	fl := cmd.Flags()
	fl.StringVar(&f.stateDir, "state-dir", "", "keep the indexes in `DIR` (default: the config's state-dir, else as watch)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on `ADDR`")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log each change")
	fl.StringVar(&f.logFile, "log-file", "", "append the instance's messages to `FILE` (default: NAME.log in the state directory)")
	fl.DurationVar(&f.wait, "wait", 2*time.Minute, "wait this long for the initial syncs, then leave them running and return")
	return cmd
}

func runStart(f startFlags, a *app) error {
	if !config.ValidName(f.name) {
		return setupErr("--name %q: %s", f.name, nameRule)
	}
	c, err := loadConfig(f.config, a.log)
	if err != nil {
		return err
	}
	if _, err := specs(c, f.runFlags, a.log); err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	if conn, err := dialControl(f.name); err == nil {
		conn.Close()
		return setupErr("instance %q is already running (pid %d); stop it first, or give another --name", f.name, readPid(f.name))
	}
	logFile := f.logFile
	if logFile == "" {
		dir := f.stateDir
		if dir == "" {
			dir = c.StateDir
		}
		if dir == "" {
			dir = defaultStateDir()
		}
		logFile = filepath.Join(dir, f.name+".log")
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return setupErr("log file: %v", err)
	}
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return setupErr("log file: %v", err)
	}
	defer logf.Close()
	offset, _ := logf.Seek(0, io.SeekEnd)
	cfgAbs, err := filepath.Abs(f.config)
	if err != nil {
		return setupErr("%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return setupErr("find this program: %v", err)
	}
	readR, readyW, err := os.Pipe()
	if err != nil {
		return setupErr("%v", err)
	}
	defer readR.Close()
	args := []string{"fsmirror", "--log-format", a.logf.format, "run", "-c", cfgAbs, "--name", f.name, "--ready-fd", "3"}
	if f.stateDir != "" {
		args = append(args, "--state-dir", f.stateDir)
	}
	if f.metrics != "" {
		args = append(args, "--metrics", f.metrics)
	}
	if f.verbose {
		args = append(args, "-v")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return setupErr("%v", err)
	}
	defer devnull.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        args, // argv[0] "fsmirror", whatever the binary is called
		Dir:         "/",
		Stdin:       devnull,
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{readyW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return setupErr("start the instance: %v", err)
	}
	readyW.Close()
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(readR).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	timeout := time.After(f.wait)
	select {
	case ok := <-ready:
		if ok {
			fmt.Fprintf(a.stdout, "fsmirror: instance %s started (pid %d); messages go to %s\n", f.name, pid, logFile)
			return nil
		}
		err := <-exited
		return startFailed(f.name, logFile, offset, err)
	case <-timeout:
		fmt.Fprintf(a.stdout, "fsmirror: instance %s (pid %d) is still doing its initial syncs; 'fsmirror status --name %s' shows how far; messages go to %s\n",
			f.name, pid, f.name, logFile)
		return nil
	}
}

// startFailed reports an instance that exited before it was ready, with
// what it wrote to its log.
func startFailed(name, logFile string, offset int64, exitErr error) error {
	var out string
	if f, err := os.Open(logFile); err == nil {
		f.Seek(offset, io.SeekStart)
		b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
		f.Close()
		out = strings.TrimSpace(string(b))
	}
	msg := fmt.Sprintf("instance %s failed to start", name)
	if exitErr != nil {
		msg += " (" + exitErr.Error() + ")"
	}
	if out != "" {
		msg += ":\n" + out
	} else {
		msg += "; see " + logFile
	}
	return &exitError{code: exitSetup, err: errors.New(msg)}
}

type stopFlags struct {
	name    string
	timeout time.Duration
}

func newStopCmd(a *app) *cobra.Command {
	var f stopFlags
	cmd := &cobra.Command{
		Use:   "stop [--name NAME]",
		Short: "Stop a running instance, finishing the work in flight",
		Long: `Ask the instance NAME to stop, through its control socket (or with SIGTERM
if it does not answer), and wait until it has exited: the work in flight is
finished and the indexes are closed cleanly, so that the next start trusts
them.

Exit status: 0 stopped, 1 still running after --timeout, 2 not running.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStop(f, a)
		},
	}
	cmd.Flags().StringVar(&f.name, "name", defaultInstance, "the instance's `NAME`")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Minute, "wait this long for it to exit")
	return cmd
}

func runStop(f stopFlags, a *app) error {
	pid := readPid(f.name)
	r, conn, err := ask(f.name, "stop", f.timeout)
	switch {
	case err == nil && !r.OK:
		conn.Close()
		return setupErr("instance %q: %s", f.name, r.Error)
	case err == nil:
		// The connection closes when the process exits.
		io.Copy(io.Discard, conn)
		conn.Close()
	case alive(pid):
		// No answer on the socket: the signal, as systemd would.
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return setupErr("instance %q (pid %d): %v", f.name, pid, err)
		}
	default:
		return setupErr("instance %q is not running", f.name)
	}
	deadline := time.Now().Add(f.timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return &exitError{code: exitPartial, err: fmt.Errorf("instance %q (pid %d) is still stopping after %s", f.name, pid, f.timeout)}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(a.stdout, "fsmirror: instance %s stopped\n", f.name)
	return nil
}

func newReloadCmd(a *app) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "reload [--name NAME]",
		Short: "Have a running instance read its config file again",
		Long: `Have the instance NAME read its config file again and apply it without
dropping work (as SIGHUP does): syncs that did not change keep running,
changed ones are restarted, removed ones stop, new ones start. A config with
mistakes is refused, each mistake printed, and the running config kept.

Exit status: 0 applied, 1 applied but a sync failed to start, 2 refused or
not running.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReload(name, a)
		},
	}
	cmd.Flags().StringVar(&name, "name", defaultInstance, "the instance's `NAME`")
	return cmd
}

func runReload(name string, a *app) error {
	r, conn, err := ask(name, "reload", 10*time.Minute)
	switch {
	case errors.Is(err, errNotRunning):
		return setupErr("instance %q is not running", name)
	case err != nil:
		return setupErr("instance %q: %v", name, err)
	}
	conn.Close()
	if !r.OK {
		if r.Message != "" { // applied, with a sync that failed
			return &exitError{code: exitPartial, err: errors.New(r.Error)}
		}
		// Refused: the instance logged each mistake; check prints them here.
		if c, err := instanceConfig(name); err == nil {
			if _, err := config.Load(c); err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					for _, e := range errs {
						a.log.Error(e.Error())
					}
				}
			}
		}
		return setupErr("%s", r.Error)
	}
	fmt.Fprintf(a.stdout, "fsmirror: %s\n", r.Message)
	return nil
}

// instanceConfig returns the config file of a running instance.
func instanceConfig(name string) (string, error) {
	r, _, err := ask(name, "status", 30*time.Second)
	if err != nil {
		return "", err
	}
	if r.Status == nil {
		return "", errors.New(r.Error)
	}
	return r.Status.Config, nil
}
