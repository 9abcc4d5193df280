// Package receiver is the daemon side of fsmirror:// destinations (`fsmirror
// serve`): it accepts TCP connections, speaks TLS 1.3 with its own
// self-signed key (clients pin its fingerprint, see wire.ClientTLS), and
// serves the agent protocol of package wire on each connection, applying ops
// with a target/local Target.
//
// Every client is known by a token and may write one subtree of the root,
// and nothing else:
//   - the token comes right after the hello and before any request; an
//     unknown one is refused, logged with the peer's address, and counted
//     against that address, which is refused outright for a while after a
//     few failures;
//   - the client's Store is a local Target opened at ROOT/SUBDIR/PATH, where
//     SUBDIR is the client's and PATH the one it asked for, resolved without
//     following any symlink, so that a symlink planted in one subtree cannot
//     lead into another; from there, the local Target keeps every path
//     below (see target/local);
//   - subtrees never nest, so no client can plant anything on the way to
//     another's.
//
// One connection at a time writes a directory: a new connection to the same
// directory (a client reconnecting after its connection broke) closes the
// one before it and waits until none of its requests can still be applied,
// so that nothing old lands after the new connection's compare.
//
// A receiver bounds what clients can cost it: connections (MaxConns), the
// time to complete the handshake, the size of a frame (wire.MaxFrame), the
// requests in flight on one connection, and the time a connection may sit
// idle or stall a write (IdleTimeout). A client whose connection was closed
// as idle reconnects without fuss (wire.Client.ClosedIdle).
package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/target/local"
	"github.com/fsmirror/fsmirror/wire"
)

// Defaults of a Server's limits.
const (
	DefaultMaxConns         = 64
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultHandshakeTimeout = 15 * time.Second
)

// Server is a receiver. Set its fields before Serve; they must not change
// afterwards.
type Server struct {
	root    string
	clients []Client
	tls     *tls.Config

	// Version names the software in the protocol's hello.
	Version string
	// Logger receives a line per connection, refusal and failure; nil
	// logs nothing.
	Logger *slog.Logger
	// MaxConns bounds the connections served at once; one more is closed
	// as soon as it is accepted. 0 means DefaultMaxConns.
	MaxConns int
	// IdleTimeout closes a connection on which no request has been open
	// for that long, and one whose client has not read what it was sent
	// for that long. 0 means DefaultIdleTimeout; negative, never.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the time from accepting a connection to a
	// client authenticated. 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// FailBurst failed authentications from one address are allowed at
	// once, then one per FailEvery. 0 means 5 and 20s.
	FailBurst int
	FailEvery time.Duration

	limiter  failLimiter
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	sessions map[string]*session // by directory served
}

// session is the connection that writes one directory. A new connection
// to the same directory replaces it: the client reconnected after a
// connection broke, and the old one's requests must not land after the new
// one's.
type session struct {
	conn net.Conn
	done chan struct{} // closed once no request of conn can be applied any more
}

// replaceWait bounds the wait for a replaced connection's requests to end.
var replaceWait = 30 * time.Second

// New returns a receiver of the directory root for clients, with TLS
// certificate cert. The root must exist; clients' subtrees are made on their
// first connection.
func New(root string, clients []Client, cert tls.Certificate) (*Server, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s is not a directory", root)
	}
	if err := checkClients(clients); err != nil {
		return nil, err
	}
	return &Server{root: root, clients: clients, tls: wire.ServerTLS(cert), conns: map[net.Conn]struct{}{}, sessions: map[string]*session{}}, nil
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Serve accepts connections on ln and serves them until ctx ends; then it
// closes ln and every connection, waits for the requests in flight to end
// (a write cut short leaves no trace: see target/local), and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	burst, every := s.FailBurst, s.FailEvery
	if burst <= 0 {
		burst = 5
	}
	if every <= 0 {
		every = 20 * time.Second
	}
	s.limiter = failLimiter{burst: burst, every: every}
	slots := make(chan struct{}, maxConns)
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	defer stop()
	var err error
	for {
		var conn net.Conn
		conn, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors, for now: the connections being
				// served will give some back.
				s.log().Warn("accept failed; retrying", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			s.log().Warn("refused connection: too many connections", "remote", conn.RemoteAddr().String(), "max_conns", maxConns)
			conn.Close()
			continue
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		if ctx.Err() != nil { // AfterFunc ran before conn was known
			conn.Close()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			<-slots
		}()
	}
	stop()
	ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	wg.Wait()
	return err
}

// writeTimeoutConn bounds every write: a client that stops reading
// what it asked for cannot hold a connection for ever.
type writeTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeTimeoutConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// serveConn serves one connection, from the TLS handshake to its end.
func (s *Server) serveConn(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	remote := raw.RemoteAddr().String()
	ip := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		ip = h
	}
	log := s.log().With("remote", remote)
	idle := s.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	handshake := s.HandshakeTimeout
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	var conn net.Conn = raw
	if idle > 0 {
		conn = &writeTimeoutConn{Conn: raw, timeout: max(idle, handshake)}
	}
	raw.SetDeadline(time.Now().Add(handshake))
	tc := tls.Server(conn, s.tls)
	hctx, cancel := context.WithTimeout(ctx, handshake)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		log.Info("TLS handshake failed", "err", err)
		return
	}
	var client *Client
	var store *local.Target
	var me *session
	var key string
	srv := &wire.Server{
		Version:     s.Version,
		IdleTimeout: max(idle, 0),
		Authenticate: func(_ context.Context, a wire.Auth) (wire.Store, error) {
			c, err := s.authenticate(ip, a.Token, log)
			if err != nil {
				return nil, err
			}
			path := c.Subdir
			if a.Path != "" {
				path = fsmirror.Join(c.Subdir, a.Path)
			}
			store, err = local.NewBelow(s.root, path, a.Create)
			if err != nil {
				log.Warn("client refused: cannot open its directory", "client", c.Name, "path", "/"+a.Path, "err", err)
				// In the client's terms: its subtree is its root.
				var errno syscall.Errno
				if !errors.As(err, &errno) {
					errno = syscall.EIO
				}
				var inner error = errno
				if errno == syscall.ENOTDIR {
					inner = fmt.Errorf("%w (or a symlink, which the receiver never follows)", errno)
				}
				return nil, &fsmirror.PathError{Op: "open destination directory", Path: a.Path, Err: inner}
			}
			me, key = &session{conn: raw, done: make(chan struct{})}, path
			if err := s.takeOver(key, me, c, log); err != nil {
				me = nil
				return nil, err
			}
			client = c
			raw.SetDeadline(time.Time{}) // from now on, the idle timeout
			log.Info("client connected", "client", c.Name, "path", "/"+path)
			return store, nil
		},
	}
	err = srv.Serve(ctx, tc, tc)
	if store != nil {
		store.Close()
	}
	if me != nil {
		close(me.done)
		s.mu.Lock()
		if s.sessions[key] == me {
			delete(s.sessions, key)
		}
		s.mu.Unlock()
	}
	switch {
	case client == nil:
		if err != nil {
			log.Debug("connection ended before authentication", "err", err)
		}
	case errors.Is(err, wire.ErrIdle):
		log.Info("closed idle connection", "client", client.Name, "idle", idle)
	case err != nil && ctx.Err() == nil:
		log.Warn("connection ended", "client", client.Name, "err", err)
	default:
		log.Info("client disconnected", "client", client.Name)
	}
}

// takeOver makes me the session of directory key, ending the one before it
// and waiting until none of its requests can be applied any more.
func (s *Server) takeOver(key string, me *session, c *Client, log *slog.Logger) error {
	s.mu.Lock()
	old := s.sessions[key]
	s.sessions[key] = me
	s.mu.Unlock()
	if old == nil {
		return nil
	}
	log.Info("a new connection replaces the one before it", "client", c.Name, "path", "/"+key, "old", old.conn.RemoteAddr().String())
	old.conn.Close()
	select {
	case <-old.done:
		return nil
	case <-time.After(replaceWait):
		s.mu.Lock()
		if s.sessions[key] == me {
			s.sessions[key] = old
		}
		s.mu.Unlock()
		close(me.done) // for a connection that replaced this one meanwhile
		return fmt.Errorf("the previous connection to %s is still applying requests after %v; try again later (%w)", "/"+key, replaceWait, syscall.EBUSY)
	}
}

// errUnknownToken is what a client with a wrong token is told: no more.
var errUnknownToken = fmt.Errorf("token refused: not one this receiver knows (%w)", syscall.EACCES)

// authenticate returns the client whose token it is, unless ip has failed
// too often lately.
func (s *Server) authenticate(ip, token string, log *slog.Logger) (*Client, error) {
	now := time.Now()
	if wait := s.limiter.blocked(ip, now); wait > 0 {
		log.Debug("client refused: too many failed attempts")
		return nil, fmt.Errorf("too many failed attempts from %s: try again in %v (%w)", ip, wait.Round(time.Second), syscall.EACCES)
	}
	c := lookup(s.clients, token)
	if c == nil {
		left := s.limiter.fail(ip, now)
		log.Warn("client refused: unknown token", "attempts_left", left)
		return nil, errUnknownToken
	}
	return c, nil
}
