// Command sshbench measures fsmirror's SSH destinations over loopback, side
// by side with rsync over the same sshd in the same run:
//
//   - the initial copy of a tree of many small files (fsmirror sync against
//     rsync -a -e ssh; target: at most 0.5× rsync's time);
//   - the bytes sent to mirror a 64 KiB append to a 256 MiB file (target:
//     at most 2× the appended size plus the signature);
//   - the latency of a new small file under fsmirror watch, from its close
//     to its full content in DEST (target: median under 5 ms).
//
// A real sshd is started on 127.0.0.1 with throw-away keys. Every fsmirror
// result is checked with testutil.Diff.
//
// Usage:
//
//	go run ./bench/sshbench [-fsmirror PATH] [-dir /dev/shm] [-files 50000] [-dirs 2500] [-runs 3]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror/bench/internal/benchutil"
	"github.com/fsmirror/fsmirror/internal/testutil"
)

func main() {
	var (
		bin      = flag.String("fsmirror", "", "fsmirror binary to measure `PATH` (default: go build ./cmd/fsmirror)")
		dir      = flag.String("dir", "/dev/shm", "directory to hold the trees")
		files    = flag.Int("files", 50000, "files in the small-files tree")
		dirs     = flag.Int("dirs", 2500, "directories in the small-files tree")
		runs     = flag.Int("runs", 3, "runs of the initial copy per tool")
		bigMiB   = flag.Int("big", 256, "size of the big file in MiB")
		appendKB = flag.Int("append", 64, "KiB appended to the big file")
		samples  = flag.Int("latency", 200, "new files timed for the latency")
		keep     = flag.Bool("keep", false, "keep the work directory")
	)
	flag.Parse()
	benchutil.Main("sshbench", func(ctx context.Context) error {
		return run(ctx, *bin, *dir, *files, *dirs, *runs, *bigMiB, *appendKB, *samples, *keep)
	})
}

func run(ctx context.Context, bin, dir string, files, dirs, runs, bigMiB, appendKB, samples int, keep bool) error {
	work, binDir, cleanup, err := benchutil.WorkDirs(os.Stdout, dir, "sshbench-", keep)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err = benchutil.FsmirrorBinary(ctx, os.Stdout, bin, binDir, "")
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		return errors.New("rsync is not installed (apt-get install rsync)")
	}
	sshdDir, err := os.MkdirTemp("", "sshbench-sshd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sshdDir)
	sshd, err := testutil.NewSSHD(sshdDir)
	if err != nil {
		return err
	}
	defer sshd.Stop()
	host := sshd.User + "@127.0.0.1:"
	fsm := func(args ...string) []string {
		return append([]string{bin, args[0], "--ssh", sshd.Command, "--remote-fsmirror", bin}, args[1:]...)
	}
	rsync := func(args ...string) []string {
		return append([]string{"rsync", "-a", "-e", sshd.Command}, args...)
	}
	fmt.Printf("machine: %s, %s; trees in %s (%s); sshd on %s\n", benchutil.CPUModel(), benchutil.Kernel(), dir, benchutil.FSType(dir), sshd.Addr)
	fmt.Printf("load average at start: %s\n", benchutil.LoadAverage())

	// 1. Initial copy of the small-files tree.
	src := filepath.Join(work, "src")
	size, err := testutil.SmallFilesTree(src, files, dirs, 1)
	if err != nil {
		return err
	}
	fmt.Printf("\n1. initial copy of %d files in %d directories (%s), %d runs, tools interleaved\n", files, dirs, human(size), runs)
	var tf, tr []time.Duration
	for i := range runs {
		dstF, dstR := filepath.Join(work, fmt.Sprint("dstF", i)), filepath.Join(work, fmt.Sprint("dstR", i))
		order := []string{"fsmirror", "rsync"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, tool := range order {
			switch tool {
			case "fsmirror":
				d, _, err := timed(ctx, fsm("sync", src, host+dstF))
				if err != nil {
					return err
				}
				if diffs, err := testutil.Diff(src, dstF, testutil.DiffOptions{Owner: os.Geteuid() == 0}); err != nil || len(diffs) > 0 {
					return fmt.Errorf("fsmirror's copy is wrong: %v%s", err, benchutil.FormatDiffs(diffs))
				}
				tf = append(tf, d)
			case "rsync":
				d, _, err := timed(ctx, rsync(src+"/", host+dstR+"/"))
				if err != nil {
					return err
				}
				tr = append(tr, d)
			}
		}
		os.RemoveAll(dstF)
		os.RemoveAll(dstR)
	}
	mf, mr := benchutil.MedianOf(tf), benchutil.MedianOf(tr)
	tw := benchutil.NewTable(os.Stdout)
	fmt.Fprintf(tw, "tool\tmedian\truns\n")
	fmt.Fprintf(tw, "fsmirror sync (ssh)\t%s\t%s\n", benchutil.Secs(mf), list(tf))
	fmt.Fprintf(tw, "rsync -a -e ssh\t%s\t%s\n", benchutil.Secs(mr), list(tr))
	tw.Flush()
	fmt.Printf("ratio fsmirror/rsync: %s (target ≤ 0.50×) %s\n", benchutil.Ratio(mf, mr), benchutil.Verdict(mf.Seconds() <= 0.5*mr.Seconds()))
	os.RemoveAll(src)

	// 2. Bytes for an append to a big file.
	fmt.Printf("\n2. append %d KiB to a %d MiB file, then sync again\n", appendKB, bigMiB)
	bigSrc := filepath.Join(work, "big")
	if err := os.MkdirAll(bigSrc, 0o755); err != nil {
		return err
	}
	data := make([]byte, bigMiB<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(bigSrc, "log"), data, 0o644); err != nil {
		return err
	}
	data = nil
	bigF, bigR := filepath.Join(work, "bigF"), filepath.Join(work, "bigR")
	if _, _, err := timed(ctx, fsm("sync", bigSrc, host+bigF)); err != nil {
		return err
	}
	if _, _, err := timed(ctx, rsync(bigSrc+"/", host+bigR+"/")); err != nil {
		return err
	}
	more := make([]byte, appendKB<<10)
	rand.Read(more)
	f, err := os.OpenFile(filepath.Join(bigSrc, "log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	f.Write(more)
	f.Close()
	df, outF, err := timed(ctx, fsm("sync", "-v", "--no-progress", bigSrc, host+bigF))
	if err != nil {
		return err
	}
	dr, outR, err := timed(ctx, rsync("--stats", bigSrc+"/", host+bigR+"/"))
	if err != nil {
		return err
	}
	if diffs, err := testutil.Diff(bigSrc, bigF, testutil.DiffOptions{Owner: os.Geteuid() == 0}); err != nil || len(diffs) > 0 {
		return fmt.Errorf("fsmirror's big file is wrong: %v%s", err, benchutil.FormatDiffs(diffs))
	}
	sentF := number(outF, `(\d+) bytes sent over the network`)
	sentR := number(outR, `Total bytes sent: ([\d,.]+)`)
	sig := estimateSignature(int64(bigMiB)<<20 + int64(appendKB)<<10)
	limit := 2*int64(appendKB)<<10 + sig
	tw = benchutil.NewTable(os.Stdout)
	fmt.Fprintf(tw, "tool\tbytes sent\ttime\n")
	fmt.Fprintf(tw, "fsmirror sync (ssh)\t%s\t%s\n", human(sentF), benchutil.Secs(df))
	fmt.Fprintf(tw, "rsync -a -e ssh\t%s\t%s\n", human(sentR), benchutil.Secs(dr))
	tw.Flush()
	fmt.Printf("fsmirror sent %s for a %d KiB append; target ≤ 2×append + signature (≈%s) = %s %s\n",
		human(sentF), appendKB, human(sig), human(limit), benchutil.Verdict(sentF > 0 && sentF <= limit))

	// 3. Latency of a new small file under watch.
	fmt.Printf("\n3. latency of a new small file under fsmirror watch over ssh, %d files\n", samples)
	latSrc, latDst := filepath.Join(work, "latsrc"), filepath.Join(work, "latdst")
	os.MkdirAll(latSrc, 0o755)
	lat, err := latency(ctx, fsm("watch", latSrc, host+latDst), latSrc, latDst, samples)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	med, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	fmt.Printf("close → full content in DEST: median %.3f ms, p99 %.3f ms (target: median < 5 ms) %s\n",
		ms(med), ms(p99), benchutil.Verdict(med < 5*time.Millisecond))
	fmt.Printf("load average at end: %s\n", benchutil.LoadAverage())
	return nil
}

// estimateSignature is the size of the signature fsmirror asks for: one
// weak (4 bytes) and one strong (16 bytes) sum per block of about the
// square root of the file size, rounded up to 1 KiB.
func estimateSignature(size int64) int64 {
	bl := int64(1)
	for bl*bl < size {
		bl++
	}
	bl = max((bl+1023)&^1023, 2048)
	return 12 + (size+bl-1)/bl*20
}

func latency(ctx context.Context, argv []string, src, dst string, n int) ([]time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), "fsmirror: watching") {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fsmirror watch did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	content := []byte("a small file of forty-two bytes, exactly.\n")
	var lat []time.Duration
	for i := range n {
		name := fmt.Sprintf("f%04d", i)
		if err := os.WriteFile(filepath.Join(src, name), content, 0o644); err != nil {
			return nil, err
		}
		t0 := time.Now()
		for {
			if b, err := os.ReadFile(filepath.Join(dst, name)); err == nil && bytes.Equal(b, content) {
				break
			}
			if time.Since(t0) > 10*time.Second {
				return nil, fmt.Errorf("%s did not arrive in 10s: %s", name, stderr.String())
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(5 * time.Millisecond)
	}
	return lat, nil
}

// timed runs argv and returns its wall time and combined output.
func timed(ctx context.Context, argv []string) (time.Duration, string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, out.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv[:2], " "), err, out.String())
	}
	return d, out.String(), nil
}

func number(out, pattern string) int64 {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[1]), 10, 64)
	return n
}

func list(d []time.Duration) string {
	var s []string
	for _, x := range d {
		s = append(s, benchutil.Secs(x))
	}
	return strings.Join(s, " ")
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
