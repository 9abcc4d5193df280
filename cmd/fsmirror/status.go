package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror/engine"
)

// instanceStatus is what `fsmirror status` shows of one instance; its
// JSON form is that of --json.
type instanceStatus struct {
	Name    string       `json:"name"`
	Pid     int          `json:"pid"`
	Config  string       `json:"config"`
	Started time.Time    `json:"started"`
	Syncs   []syncStatus `json:"syncs"`
}

type syncStatus struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"` // why it failed to start
	// Destinations has one entry per source and destination.
	Destinations []mirrorStatus `json:"destinations"`
}

type mirrorStatus struct {
	Source      string       `json:"source"`
	Destination string       `json:"destination"`
	State       engine.State `json:"state"`
	// Queue is the number of paths waiting or being sent.
	Queue int `json:"queue"`
	// LagSeconds is the age of the oldest change not yet applied.
	LagSeconds  float64   `json:"lag_seconds"`
	Files       int64     `json:"files"`
	Bytes       int64     `json:"bytes"`
	Deleted     int64     `json:"deleted"`
	Ops         int64     `json:"ops"`
	Errors      int64     `json:"errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Watches     int       `json:"watches"`
	Overflows   int64     `json:"overflows"`
}

// status takes a snapshot of the instance.
func (in *instance) status(ctx context.Context) instanceStatus {
	st := instanceStatus{Name: in.name, Pid: os.Getpid(), Config: in.file, Started: in.started}
	in.mu.Lock()
	slots := append([]*slot(nil), in.slots...)
	in.mu.Unlock()
	now := time.Now()
	for _, s := range slots {
		ss := syncStatus{Name: s.spec.name, Error: errString(s.err), Destinations: []mirrorStatus{}}
		if s.r != nil {
			for _, m := range s.r.mirrors {
				ss.Destinations = append(ss.Destinations, m.status(ctx, now))
			}
		}
		st.Syncs = append(st.Syncs, ss)
	}
	return st
}

// status takes a snapshot of one mirror: its state, and, while it
// watches, its queue and lag from the engine.
func (m *mirror) status(ctx context.Context, now time.Time) mirrorStatus {
	ms := mirrorStatus{
		Source:      m.p.src,
		Destination: m.p.dst.String(),
		State:       engine.StateStarting,
		Files:       m.stats.Written.Load(),
		Bytes:       m.stats.Bytes.Load(),
		Deleted:     m.stats.Deleted.Load(),
		Ops:         m.stats.Changes.Load(),
		Errors:      m.stats.Errors.Load(),
		Overflows:   m.src0.overflows.Load(),
	}
	if m.w != nil {
		ms.Watches = m.w.Watches()
	}
	ms.LastError, ms.LastErrorAt = m.stats.LastError()
	if st := m.state.Load(); st != nil {
		ms.State = *st
	}
	switch ms.State {
	case engine.StateInitialSync, engine.StateStarting:
		// Everything is yet to be sent: the lag is the initial sync's age.
		ms.LagSeconds = now.Sub(time.Unix(0, m.since.Load())).Seconds()
	case engine.StateWatching:
		var st engine.Status
		var ok bool
		if l := m.live.Load(); l != nil {
			st, ok = l.Status(ctx)
		} else if b := m.batcher.Load(); b != nil {
			st, ok = b.Status(ctx)
		}
		if ok {
			ms.State, ms.Queue, ms.LagSeconds = st.State, st.Queue, st.Lag(now).Seconds()
		}
	}
	return ms
}

type statusFlags struct {
	name string
	json bool
}

func newStatusCmd(a *app) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status [--name NAME] [--json]",
		Short: "Show what running instances are doing",
		Long: `Show, for each running instance (fsmirror run or start), or only the one
named --name, per sync and destination: its state (initial-sync, watching,
down, stopped, failed), the paths queued, the lag (the age of the oldest
change not yet sent), the files and bytes sent, the errors and the last one.

Exit status: 0 shown, 2 no such instance is running.`,
		Example: `  fsmirror status
  fsmirror status --name web --json | jq '.instances[].syncs[].destinations[].lag_seconds'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(f, a)
		},
	}
	cmd.Flags().StringVar(&f.name, "name", "", "only the instance `NAME` (default: every instance)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON, for scripts")
	return cmd
}

func runStatus(f statusFlags, a *app) error {
	names := []string{f.name}
	if f.name == "" {
		names = instances()
	}
	var all []instanceStatus
	for _, name := range names {
		r, _, err := ask(name, "status", 30*time.Second)
		switch {
		case errors.Is(err, errNotRunning) && f.name == "":
			continue // a socket left by an instance killed -9
		case errors.Is(err, errNotRunning):
			return setupErr("instance %q is not running (no control socket %s)", name, socketPath(name))
		case err != nil:
			return setupErr("instance %q: %v", name, err)
		case r.Status == nil:
			return setupErr("instance %q: %s", name, r.Error)
		}
		all = append(all, *r.Status)
	}
	if f.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []instanceStatus{}
		}
		return enc.Encode(map[string]any{"instances": all})
	}
	if len(all) == 0 {
		return setupErr("no instance is running (runtime directory %s)", runtimeDir())
	}
	for i, st := range all {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		printStatus(a, st)
	}
	return nil
}

func printStatus(a *app, st instanceStatus) {
	fmt.Fprintf(a.stdout, "instance %s: pid %d, config %s, up %s\n", st.Name, st.Pid, st.Config, time.Since(st.Started).Round(time.Second))
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYNC\tDESTINATION\tSTATE\tQUEUE\tLAG\tFILES\tBYTES\tERRORS\tLAST ERROR")
	for _, s := range st.Syncs {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\t-\tfailed\t-\t-\t-\t-\t-\t%s\n", s.Name, oneLine(s.Error))
		}
		for _, d := range s.Destinations {
			last := "-"
			if d.LastError != "" {
				last = oneLine(d.LastError) + " (" + d.LastErrorAt.Local().Format("15:04:05") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\t%s\n", s.Name, d.Destination, d.State, d.Queue,
				lagString(d.LagSeconds), d.Files, humanBytes(d.Bytes), d.Errors, last)
		}
	}
	tw.Flush()
}

func lagString(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// oneLine shortens a message to one line of a table.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)[1 : len(strconv.Quote(s))-1]
}
