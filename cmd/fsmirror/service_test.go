package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

// The tests in this file run `fsmirror run` as a process, with a config
// file and a runtime directory of their own, and look at it from outside:
// status --json, /metrics, and the sd_notify datagrams systemd would get.

// startRun starts `fsmirror run -c config args...` with env added to its
// environment and waits until it says it is ready.
func startRun(t *testing.T, config string, env []string, args ...string) *watchProc {
	t.Helper()
	w := &watchProc{args: append([]string{"run", "-c", config}, args...), exited: make(chan struct{})}
	w.cmd = fsmirrorCmd(t, context.Background(), w.args...)
	w.cmd.Env = append(w.cmd.Env, env...)
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start fsmirror %q: %v", w.args, err)
	}
	go func() {
		w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			w.cmd.Process.Kill()
			<-w.exited
		}
	})
	waitFor(t, w, readyTimeout, func() string {
		if !w.running() {
			t.Fatalf("fsmirror run exited before it was ready:\n%s", w.output())
		}
		if !strings.Contains(w.stderr.String(), "fsmirror: ready: ") {
			return "not ready"
		}
		return ""
	})
	return w
}

// fsmirrorIn runs fsmirror args with the runtime directory dir.
func fsmirrorIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := fsmirrorCmd(t, ctx, args...)
	cmd.Env = append(cmd.Env, "FSMIRROR_RUNTIME_DIR="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// destStatus returns the status of the destination whose name ends in
// suffix, from `fsmirror status --json`.
func destStatus(t *testing.T, runDir, name, suffix string) mirrorStatus {
	t.Helper()
	r := fsmirrorIn(t, runDir, "status", "--json", "--name", name)
	if r.code != 0 {
		t.Fatalf("status: %v", r)
	}
	var out struct{ Instances []instanceStatus }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	for _, in := range out.Instances {
		for _, s := range in.Syncs {
			for _, d := range s.Destinations {
				if strings.HasSuffix(d.Destination, suffix) {
					return d
				}
			}
		}
	}
	t.Fatalf("no destination ending in %q in\n%s", suffix, r.stdout)
	return mirrorStatus{}
}

// scrape returns the samples of /metrics at addr, by metric and labels.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// sample returns the value of metric for the destination whose label
// ends in suffix.
func sample(t *testing.T, samples map[string]float64, metric, suffix string) float64 {
	t.Helper()
	for k, v := range samples {
		if strings.HasPrefix(k, metric+"{") && strings.Contains(k, suffix+`",source=`) {
			return v
		}
	}
	t.Fatalf("no %s for %q in %v", metric, suffix, samples)
	return 0
}

// TestRun_MetricsAndStatusWhileDown runs a config with one sync to a local
// directory and to a host over SSH, scrapes /metrics before and after some
// changes, then takes the SSH host down: status --json and the metrics must
// show that destination down with a lag, while the local one keeps up,
// and all must recover once the host is back.
func TestRun_MetricsAndStatusWhileDown(t *testing.T) {
	t.Parallel()
	s := testutil.StartSSHD(t)
	src, local, _ := srcDstOut(t)
	remote := filepath.Join(filepath.Dir(local), "remote")
	runDir := filepath.Join(filepath.Dir(local), "run")
	config := filepath.Join(filepath.Dir(local), "fsmirror.toml")
	if err := os.WriteFile(filepath.Join(src, "first"), []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[[sync]]
name = "web"
watcher = "inotify"
source = %q
destination = [%q, %q]
ssh = %q
remote-fsmirror = %q
`, src, local, s.User+"@127.0.0.1:"+remote, s.Command, agentLink(t))
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startRun(t, config, []string{"FSMIRROR_RUNTIME_DIR=" + runDir}, "--name", "svc", "--metrics", "127.0.0.1:0")
	m := regexp.MustCompile(`serving metrics on http://([^/]+)/metrics`).FindStringSubmatch(w.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", w.output())
	}
	addr := m[1]

	before := scrape(t, addr)
	if v := sample(t, before, "fsmirror_files_written_total", "/dst"); v < 1 {
		t.Errorf("files written by the initial sync = %v, want at least 1", v)
	}
	if v := sample(t, before, "fsmirror_destination_up", "/remote"); v != 1 {
		t.Errorf("fsmirror_destination_up of the SSH destination = %v, want 1", v)
	}
	if v := sample(t, before, "fsmirror_watches", "/dst"); v != 1 {
		t.Errorf("fsmirror_watches = %v, want 1", v)
	}
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(t, w, src, local, convergeTimeout, watchDiffOpt())
	waitMirror(t, w, src, remote, convergeTimeout, watchDiffOpt())
	var after map[string]float64
	waitFor(t, w, basicTimeout, func() string {
		after = scrape(t, addr)
		for _, dst := range []string{"/dst", "/remote"} {
			for _, c := range []string{"fsmirror_files_written_total", "fsmirror_bytes_written_total", "fsmirror_ops_total"} {
				if got, was := sample(t, after, c, dst), sample(t, before, c, dst); got < was+5 {
					return fmt.Sprintf("%s of %s went from %v to %v after 5 new files", c, dst, was, got)
				}
			}
		}
		return ""
	})
	if v := sample(t, after, "fsmirror_errors_total", "/remote"); v != 0 {
		t.Errorf("errors = %v", v)
	}

	// The SSH destination goes down; a change waits for it.
	if s.KillSessions() == 0 {
		t.Fatal("no ssh session to kill")
	}
	s.Stop()
	if err := os.WriteFile(filepath.Join(src, "while-down"), []byte("later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, convergeTimeout, func() string {
		d := destStatus(t, runDir, "svc", "/remote")
		if d.State != "down" || d.LagSeconds <= 0 {
			return fmt.Sprintf("the SSH destination is not shown down with a lag: %+v", d)
		}
		if d.LastError == "" {
			return "no last error while down"
		}
		return ""
	})
	waitMirror(t, w, src, local, convergeTimeout, watchDiffOpt())
	if d := destStatus(t, runDir, "svc", "/dst"); d.State != "watching" {
		t.Errorf("the local destination is %q while the SSH one is down", d.State)
	}
	down := scrape(t, addr)
	if v := sample(t, down, "fsmirror_destination_up", "/remote"); v != 0 {
		t.Errorf("fsmirror_destination_up while down = %v", v)
	}
	if v := sample(t, down, "fsmirror_lag_seconds", "/remote"); v <= 0 {
		t.Errorf("fsmirror_lag_seconds while down = %v", v)
	}
	r := fsmirrorIn(t, runDir, "status", "--name", "svc")
	if !regexp.MustCompile(`(?m)^web +ssh://.*/remote +down +`).MatchString(r.stdout) {
		t.Errorf("status while down:\n%s", r.stdout)
	}

	// Back: it catches up, and the lag is gone.
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, w, src, remote, convergeTimeout, watchDiffOpt())
	waitFor(t, w, convergeTimeout, func() string {
		if d := destStatus(t, runDir, "svc", "/remote"); d.State != "watching" || d.LagSeconds != 0 || d.Queue != 0 {
			return fmt.Sprintf("not caught up: %+v", d)
		}
		return ""
	})

	r = fsmirrorIn(t, runDir, "stop", "--name", "svc")
	if r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	select {
	case <-w.exited:
	case <-time.After(stopTimeout):
		t.Fatal("fsmirror run did not exit after stop")
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after stop:\n%s", code, w.output())
	}
}

// TestRun_Notify checks the sd_notify protocol: systemd itself cannot run
// here, so the test listens on NOTIFY_SOCKET as systemd would.
func TestRun_Notify(t *testing.T) {
	t.Parallel()
	src, dst, _ := srcDstOut(t)
	dir := filepath.Dir(dst)
	config := filepath.Join(dir, "fsmirror.toml")
	conf := fmt.Sprintf("[[sync]]\nsource = %q\ndestination = %q\n", src, dst)
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	// next waits for a datagram holding want, skipping watchdog pings
	// unless they are what is wanted.
	next := func(want string) {
		t.Helper()
		timeout := time.After(readyTimeout)
		for {
			select {
			case msg := <-got:
				if strings.Contains(msg, want) {
					return
				}
				if msg != "WATCHDOG=1" && want != "WATCHDOG=1" {
					t.Fatalf("got %q, want %q first", msg, want)
				}
			case <-timeout:
				t.Fatalf("no %q from fsmirror", want)
			}
		}
	}
	w := startRun(t, config, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000", "FSMIRROR_RUNTIME_DIR=" + filepath.Join(dir, "run")})
	next("READY=1")
	next("WATCHDOG=1")
	w.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	waitFor(t, w, basicTimeout, func() string {
		if !strings.Contains(w.stderr.String(), "fsmirror: reloaded ") {
			return "no reload logged"
		}
		return ""
	})
	w.stop(t, syscall.SIGTERM)
	next("STOPPING=1")
}
