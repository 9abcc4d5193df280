package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fsmirror/fsmirror/engine"
)

// Metrics are written by hand in Prometheus' text format (version 0.0.4):
// a dozen gauges and counters read from the status snapshot do not earn
// github.com/prometheus/client_golang and the ten modules it brings.

// metric is one metric family: its help, type, and value for a mirror.
type metric struct {
	name, help, typ string
	value           func(s *syncStatus, d *mirrorStatus) float64
}

var mirrorMetrics = []metric{
	{"fsmirror_queue_length", "Paths waiting or being sent to the destination.", "gauge",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Queue) }},
	{"fsmirror_lag_seconds", "Age of the oldest change not yet applied to the destination.", "gauge",
		func(_ *syncStatus, d *mirrorStatus) float64 { return d.LagSeconds }},
	{"fsmirror_destination_up", "1 while the destination is reachable and mirrored, else 0.", "gauge",
		func(_ *syncStatus, d *mirrorStatus) float64 {
			return boolValue(d.State == engine.StateWatching || d.State == engine.StateInitialSync)
		}},
	{"fsmirror_files_written_total", "Files written to the destination.", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Files) }},
	{"fsmirror_bytes_written_total", "Bytes of file content written to the destination.", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Bytes) }},
	{"fsmirror_ops_total", "Operations applied to the destination (writes, deletes, renames, metadata...).", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Ops) }},
	{"fsmirror_deletes_total", "Paths deleted from the destination.", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Deleted) }},
	{"fsmirror_errors_total", "Paths that failed, and other errors, for the destination.", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Errors) }},
	{"fsmirror_watches", "Directories watched in the source.", "gauge",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Watches) }},
	{"fsmirror_overflows_total", "Overflows of the kernel's event queue for the source (each costs a rescan).", "counter",
		func(_ *syncStatus, d *mirrorStatus) float64 { return float64(d.Overflows) }},
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes st in Prometheus' text format, with the labels sync
// and destination (and source, as a sync may have several).
func writeMetrics(w io.Writer, st instanceStatus) {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP fsmirror_up 1: the instance answers.\n# TYPE fsmirror_up gauge\nfsmirror_up{instance_name=%s} 1\n", labelValue(st.Name))
	fmt.Fprintf(&b, "# HELP fsmirror_start_time_seconds When the instance started, in seconds since the epoch.\n# TYPE fsmirror_start_time_seconds gauge\nfsmirror_start_time_seconds %s\n",
		formatFloat(float64(st.Started.UnixNano())/1e9))
	for _, m := range mirrorMetrics {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for i := range st.Syncs {
			s := &st.Syncs[i]
			for j := range s.Destinations {
				d := &s.Destinations[j]
				fmt.Fprintf(&b, "%s{sync=%s,destination=%s,source=%s} %s\n", m.name,
					labelValue(s.Name), labelValue(d.Destination), labelValue(d.Source), formatFloat(m.value(s, d)))
			}
		}
	}
	io.WriteString(w, b.String())
}

// labelValue quotes a label value: backslash, double quote and newline
// escaped.
func labelValue(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// serveMetrics serves /metrics of in on addr, and logs the address it is
// bound to (port 0 picks one).
func serveMetrics(addr string, in *instance) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, setupErr("--metrics: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		st := in.status(ctx)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, st)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "fsmirror: metrics at /metrics\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	in.log.Info("serving metrics on http://" + ln.Addr().String() + "/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
