package benchutil

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// TimeCmd runs argv and returns its wall-clock time and the CPU time (user
// plus system) of the process and the children it waited for. A command
// that fails is an error that carries the end of its output.
func TimeCmd(ctx context.Context, argv []string) (wall, cpu time.Duration, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, LastLines(out.String(), 20))
	}
	st := cmd.ProcessState
	return wall, st.UserTime() + st.SystemTime(), nil
}

// LastLines returns the last n lines of s, after a "..." line when there
// are more, or "(no output)" when s is empty.
func LastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "(no output)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
