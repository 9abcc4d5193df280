package benchutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// ToolNames returns the names in a -tools list, trimmed, in their order,
// without empty ones and repeats; an empty list is an error.
func ToolNames(list []string) ([]string, error) {
	var names []string
	for _, n := range list {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no tools to measure")
	}
	return names, nil
}

// ParseFlags parses the command line of the benchmark name, whose usage
// message tells about it before the flags. A positional argument, or flag
// values valid rejects, print the usage and exit with status 2.
func ParseFlags(name, about string, valid func() bool) {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/%s [flags]\n\n%s\n\n", name, about)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || !valid() {
		flag.Usage()
		os.Exit(2)
	}
}

// Main runs the benchmark name with a context that an interrupt or SIGTERM
// cancels, so that it can clean up; an error is printed after the name and
// makes the exit status 1.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
