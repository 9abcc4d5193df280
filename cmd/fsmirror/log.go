package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// logFlags are the root's logging flags, for every command.
type logFlags struct {
	format string // text or json
}

func (l *logFlags) check() error {
	switch l.format {
	case "text", "json":
		return nil
	}
	return setupErr("--log-format must be text or json, not %q", l.format)
}

// newLogger returns the logger of the messages fsmirror writes to w
// (stderr): with format "json", one JSON object a line (slog's); else one
// line of text a message, "fsmirror: MESSAGE key=value...", the way
// fsmirror has always written them. Debug messages (each op with -v in
// run, the watcher's events with --debug-events) are shown only if debug.
func newLogger(w io.Writer, format string, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(&textHandler{w: w, mu: &sync.Mutex{}, level: level})
}

// textHandler writes "fsmirror: [SYNC: ]MESSAGE key=value...": the sync's
// name, when there is one, leads, so that the lines of one sync are easy
// to pick out; the time is left to whoever keeps the log (journald).
type textHandler struct {
	w      io.Writer
	mu     *sync.Mutex
	level  slog.Level
	prefix string // "NAME: " of the sync attribute
	attrs  string // " key=value" of the other attributes
	group  string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("fsmirror: ")
	b.WriteString(h.prefix)
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	for _, a := range attrs {
		if a.Key == "sync" && h.group == "" {
			c.prefix += a.Value.String() + ": "
			continue
		}
		appendAttr(&b, h.group, a)
	}
	c.attrs += b.String()
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group += name + "."
	return &c
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			appendAttr(b, group+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") || !strconv.CanBackquote(v) {
		v = strconv.Quote(v)
	}
	fmt.Fprintf(b, " %s%s=%s", group, a.Key, v)
}
