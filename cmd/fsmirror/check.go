package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fsmirror/fsmirror/target/all"
)

func newCheckCmd(a *app) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Check a config file and say what it would do",
		Long: `Read and check the config file FILE, as run would, and print for each sync
what it would watch, leave out and send where. Nothing is started, written
or connected to; the sources must exist.

` + configHelp + `

Exit status: 0 the config is good, 2 it has mistakes (each printed with its
file, line and key).`,
		Example: `  fsmirror check -c /etc/fsmirror/fsmirror.toml`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(f, a)
		},
	}
	f.registerConfig(cmd)
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "as run's --state-dir")
	return cmd
}

func runCheck(f runFlags, a *app) error {
	c, err := loadConfig(f.config, a.log)
	if err != nil {
		return err
	}
	sp, err := specs(c, f, a.log)
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	w := a.stdout
	stateDir := ""
	if len(sp) > 0 {
		stateDir = sp[0].f.stateDir
	}
	fmt.Fprintf(w, "%s: %d syncs; indexes in %s\n", f.config, len(sp), stateDir)
	for _, s := range sp {
		fmt.Fprintf(w, "\nsync %q (%s)\n", s.name, s.cfg.Where(""))
		describeSpec(w, &s)
	}
	fmt.Fprintf(w, "\nfsmirror: %s is good\n", f.config)
	return nil
}

// describeSpec prints what a sync would do.
func describeSpec(w io.Writer, s *syncSpec) {
	f := &s.f
	sources, err := planSources(s.srcs, s.dests, f.relative, s.opts)
	if err != nil { // checked by specs already
		fmt.Fprintf(w, "  error     %v\n", err)
		return
	}
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-9s %s\n", label, fmt.Sprintf(format, args...))
	}
	for _, src := range sources {
		line("watch", "%s", src.path)
		for _, m := range src.mirrors {
			line("  send to", "%s (%s)", m.p.dst, destKind(m.p.dst, s.opts))
		}
	}
	if pats := s.flt.Patterns(); len(pats) > 0 {
		line("exclude", "%s", strings.Join(pats, "  "))
	} else {
		line("exclude", "nothing")
	}
	if !f.size.IsZero() {
		line("size", "files of %s only; what the destination has under other files' names stays", f.size)
	}
	if f.noDelete {
		line("delete", "no: what the destination has and the source does not stays")
	} else {
		line("delete", "yes: what the destination has and the source does not is deleted")
	}
	delay := "at once"
	if f.delay > 0 {
		delay = "after " + f.delay.String() + " of quiet"
	}
	line("timing", "changes sent %s; a file open for writing waits at most %s", delay, f.maxDelay)
	if f.checksum {
		line("compare", "by content at start (checksum)")
	}
	if f.verifyOnStart {
		line("compare", "the whole destination at every start (verify-on-start)")
	}
	if f.rescanInterval > 0 {
		line("rescan", "the whole destination every %s", f.rescanInterval)
	}
}

// destKind says how a destination is reached.
func destKind(loc all.Location, o all.Options) string {
	switch loc.(type) {
	case all.Local:
		return "local directory"
	case all.Syncer:
		how := "rsync over ssh"
		if strings.HasPrefix(loc.String(), "rsync://") {
			how = "rsync daemon"
			if o.PasswordFile != "" {
				how += ", password in " + o.PasswordFile
			}
		}
		if o.Bwlimit != "" {
			how += ", bwlimit " + o.Bwlimit
		}
		return how
	}
	if strings.HasPrefix(loc.String(), "fsmirror://") {
		how := "fsmirror serve receiver, TLS"
		if o.TokenFile != "" {
			how += ", token in " + o.TokenFile
		}
		return how
	}
	how := "ssh, fsmirror agent on the far side"
	if o.SSH != "" {
		how += ", ssh command " + fmt.Sprintf("%q", o.SSH)
	}
	if o.Compress {
		how += ", compressed"
	}
	return how
}
