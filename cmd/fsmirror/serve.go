package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/fsmirror/fsmirror/receiver"
)

type serveFlags struct {
	listen      string
	root        string
	allow       []string
	clients     string
	key, cert   string
	maxConns    int
	idleTimeout time.Duration
	verbose     bool
}

// defaultKeyDir is where `serve init` puts the receiver's key: serve/ in
// the state directory (/var/lib/fsmirror/serve for root).
func defaultKeyDir() string {
	if d := defaultStateDir(); d != "" {
		return filepath.Join(d, "serve")
	}
	return ""
}

func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR --root DIR --allow NAME=TOKENFILE:SUBDIR...",
		Short: "A receiver for fsmirror:// destinations: TCP with TLS 1.3, a subtree of DIR per client",
		Long: `Receive mirrors from other hosts over TCP, with TLS 1.3, without SSH accounts.

Once, make the receiver's key and self-signed certificate:

  fsmirror serve init            # prints the fingerprint clients pin

Give each client a token (a file holding one line of at least 16 random
characters, e.g. head -c 32 /dev/urandom | base64 > alice.token) and the one
subtree of --root it may write, then serve:

  fsmirror serve --listen :7480 --root /srv/backup \
      --allow alice=/etc/fsmirror/alice.token:alice \
      --allow bob=/etc/fsmirror/bob.token:bob

A client mirrors with a copy of its token and the fingerprint:

  fsmirror watch /home 'fsmirror://backup.example:7480/home?fingerprint=HEX&token-file=alice.token'
  fsmirror watch --fingerprint HEX --token-file alice.token /home fsmirror://backup.example:7480/home

The path of the URL is a directory inside the client's subtree (/ is the subtree
itself), made on first use. A client can never read or write outside its
subtree: paths are resolved below it without following symlinks, and subtrees
may not nest. A wrong token is refused before any request is read, logged with
the peer's address, and counted: an address with 5 failures is refused outright,
then allowed one more try every 20s.

--clients FILE reads clients from a file instead, one NAME=TOKENFILE:SUBDIR a
line (token files relative to FILE's directory, # starts a comment).

Limits: --max-conns connections at once (more are closed at once), 15s to
complete the TLS handshake and present a token, frames of at most 1 MiB, 4096
requests in flight and 64 MiB of file content in memory per connection, one
connection per directory (a client that reconnects replaces its old one), and
--idle-timeout for a connection with no request open or a client that does not
read its answers (an idle client reconnects on its next change, without a full
compare).

When the receiver's disk is full, a write fails with "no space left on device"
and leaves nothing behind (files are written unnamed or under a temporary name
and only then take their name); a watching client keeps the work, asks the
receiver for free space with growing pauses, and sends it once there is room.

Running as root, clients' files keep their owners, modes and setuid bits: keep
--root out of other users' reach (mode 0700). Logs go to standard error;
SIGINT or SIGTERM stops it (a write cut short leaves no trace).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), f, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "listen on `ADDR` (host:port, or :port for every address) (required)")
	fl.StringVar(&f.root, "root", "", "the `DIR` below which each client has its subtree (required)")
	fl.StringArrayVar(&f.allow, "allow", nil, "`NAME=TOKENFILE:SUBDIR`: client NAME may write DIR/SUBDIR, with the token in TOKENFILE (repeatable)")
	fl.StringVar(&f.clients, "clients", "", "read clients from `FILE`, one NAME=TOKENFILE:SUBDIR a line")
	keyDir := defaultKeyDir()
	fl.StringVar(&f.key, "key", filepath.Join(keyDir, receiver.KeyFile), "the receiver's private key (`FILE`), made by serve init")
	fl.StringVar(&f.cert, "cert", filepath.Join(keyDir, receiver.CertFile), "the receiver's certificate (`FILE`), made by serve init")
	fl.IntVar(&f.maxConns, "max-conns", receiver.DefaultMaxConns, "serve at most `N` connections at once")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", receiver.DefaultIdleTimeout, "close a connection idle for this long (0: never)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log more: connections that fail before authenticating")
	cmd.AddCommand(newServeInitCmd(stdout, stderr))
	return cmd
}

func newServeInitCmd(stdout, stderr io.Writer) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init [--dir DIR]",
		Short: "Make the receiver's key and self-signed certificate, and print the fingerprint clients pin",
		Long: `Make a new private key (Ed25519) and a self-signed certificate for fsmirror serve
in DIR, and print the fingerprint of the key on standard output: the SHA-256 of
the certificate's public key, 64 hex digits, which clients pin with
?fingerprint= or --fingerprint. No certificate authority is involved.

An existing key is kept (every client pins it): init then prints its
fingerprint again. To replace the key, remove DIR/key.pem first, and give
clients the new fingerprint.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return setupErr("serve init: no directory for the key: give --dir")
			}
			fp, created, err := receiver.Init(dir)
			if err != nil {
				return setupErr("serve init: %v", err)
			}
			if created {
				fmt.Fprintf(stderr, "fsmirror: made a new key and certificate in %s\n", dir)
			} else {
				fmt.Fprintf(stderr, "fsmirror: %s already holds a key; its fingerprint:\n", dir)
			}
			fmt.Fprintln(stdout, fp)
			fmt.Fprintf(stderr, "fsmirror: clients pin it: fsmirror://HOST:PORT/PATH?fingerprint=%s&token-file=FILE\n", fp)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultKeyDir(), "make the key in `DIR`")
	return cmd
}

func runServe(ctx context.Context, f serveFlags, stderr io.Writer) error {
	if f.listen == "" || f.root == "" {
		return setupErr("serve: --listen and --root are required (see 'fsmirror serve --help')")
	}
	if f.maxConns < 1 || f.idleTimeout < 0 {
		return setupErr("serve: --max-conns must be at least 1 and --idle-timeout not negative")
	}
	var clients []receiver.Client
	for _, a := range f.allow {
		c, err := receiver.ParseAllow(a, "")
		if err != nil {
			return setupErr("serve: --allow: %v", err)
		}
		clients = append(clients, c)
	}
	if f.clients != "" {
		cs, err := receiver.ReadClients(f.clients)
		if err != nil {
			return setupErr("serve: --clients: %v", err)
		}
		clients = append(clients, cs...)
	}
	cert, fp, err := receiver.LoadCert(f.key, f.cert)
	if err != nil {
		return setupErr("serve: %v", err)
	}
	root, err := filepath.Abs(f.root)
	if err != nil {
		return setupErr("serve: --root: %v", err)
	}
	srv, err := receiver.New(root, clients, cert)
	if err != nil {
		return setupErr("serve: %v", err)
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv.Logger, srv.Version, srv.MaxConns = log, versionString(), f.maxConns
	srv.IdleTimeout = f.idleTimeout
	if f.idleTimeout == 0 {
		srv.IdleTimeout = -1
	}
	warnExposed(log, f.key, "the private key")
	for _, c := range clients {
		warnExposed(log, c.TokenFile, "the token of client "+c.Name)
	}
	if fi, err := os.Stat(root); err == nil && unix.Geteuid() == 0 && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the root is open to other users, and clients' files keep their owners and setuid bits: chmod 700 it", "root", root, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return setupErr("serve: %v", err)
	}
	var names []string
	for _, c := range clients {
		names = append(names, c.Name+" → "+filepath.Join(root, c.Subdir))
	}
	fmt.Fprintf(stderr, "fsmirror: serving on %s to %d clients (%s); key fingerprint %s\n",
		ln.Addr(), len(clients), strings.Join(names, ", "), fp)
	if err := srv.Serve(ctx, ln); err != nil {
		return &exitError{code: exitPartial, err: fmt.Errorf("serve: %w", err)}
	}
	return nil
}

// warnExposed logs a warning if the secret in file can be read by users
// other than its owner.
func warnExposed(log *slog.Logger, file, what string) {
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("other users can read "+what+": chmod 600 it", "file", file, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}
