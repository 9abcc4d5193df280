// Package remote is the Target for a destination on another machine, where
// an fsmirror agent applies ops (see package wire). The connection to the
// agent is made by a Dialer: SSH runs `fsmirror agent` through the system
// ssh.
//
// A broken connection fails the requests in flight with an error wrapping
// fsmirror.ErrTargetDown; Ping makes a new one. The live mirror pings a
// target that went down until it is back, then sends what changed meanwhile.
package remote

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/wire"
)

// Dialer connects to an agent.
type Dialer interface {
	// Dial returns a new connection to the agent.
	Dial(ctx context.Context) (io.ReadWriteCloser, error)
	// Greeted is told whether the agent answered the handshake on a
	// connection Dial made (err nil), and returns the error to report
	// otherwise, which may say better why (the agent is not installed,
	// ssh could not log in).
	Greeted(conn io.ReadWriteCloser, err error) error
	// String names the destination for messages.
	String() string
}

// Target is a remote destination.
type Target struct {
	d Dialer
	o wire.ClientOptions

	mu       sync.Mutex
	c        *wire.Client
	sent     int64 // bytes sent on connections that are gone
	received int64
}

var (
	_ fsmirror.Target = (*Target)(nil)
	_ fsmirror.Hasher = (*Target)(nil)
	_ fsmirror.Pinger = (*Target)(nil)
)

// New connects to the agent that d reaches. Its error (no agent on the far
// side, no login, another protocol version) says what to do.
func New(ctx context.Context, d Dialer, o wire.ClientOptions) (*Target, error) {
	t := &Target{d: d, o: o}
	c, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	t.c = c
	return t, nil
}

func (t *Target) connect(ctx context.Context) (*wire.Client, error) {
	conn, err := t.d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	c, err := wire.NewClient(ctx, conn, t.o)
	if err := t.d.Greeted(conn, err); err != nil {
		return nil, err
	}
	return c, nil
}

// client returns the connection, or an ErrTargetDown error if it is gone.
func (t *Target) client() (*wire.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil, fmt.Errorf("%w: %s: not connected", fsmirror.ErrTargetDown, t.d)
	}
	if err := t.c.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", t.d, err)
	}
	return t.c, nil
}

// Ping checks the connection and, if it is gone, makes a new one.
func (t *Target) Ping(ctx context.Context) error {
	t.mu.Lock()
	old := t.c
	t.mu.Unlock()
	if old != nil && old.Err() == nil {
		if _, err := old.Lstat(ctx, ""); err == nil || old.Err() == nil {
			return nil
		}
	}
	c, err := t.connect(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", fsmirror.ErrTargetDown, err)
	}
	t.mu.Lock()
	if t.c != nil {
		t.sent += t.c.BytesSent()
		t.received += t.c.BytesReceived()
		t.c.Close()
	}
	t.c = c
	t.mu.Unlock()
	return nil
}

// BytesSent is the number of bytes sent to the agent so far, on every
// connection.
func (t *Target) BytesSent() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.sent
	if t.c != nil {
		n += t.c.BytesSent()
	}
	return n
}

// String names the destination.
func (t *Target) String() string { return t.d.String() }

// ReadDir lists dir on the far side.
func (t *Target) ReadDir(ctx context.Context, dir string) ([]fsmirror.Entry, error) {
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	return c.ReadDir(ctx, dir)
}

// Lstat describes path on the far side.
func (t *Target) Lstat(ctx context.Context, path string) (fsmirror.Entry, error) {
	c, err := t.client()
	if err != nil {
		return fsmirror.Entry{}, err
	}
	return c.Lstat(ctx, path)
}

// Hash hashes the file at path where it is.
func (t *Target) Hash(ctx context.Context, path string) ([]byte, error) {
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	return c.Hash(ctx, path)
}

// Apply makes op true on the far side.
func (t *Target) Apply(ctx context.Context, op *fsmirror.Op) error {
	c, err := t.client()
	if err != nil {
		return err
	}
	return c.Apply(ctx, op)
}

// Close ends the connection.
func (t *Target) Close() error {
	t.mu.Lock()
	c := t.c
	t.c = nil
	t.mu.Unlock()
	if c == nil {
		return nil
	}
	err := c.Close()
	t.mu.Lock()
	t.sent += c.BytesSent()
	t.received += c.BytesReceived()
	t.mu.Unlock()
	return err
}
