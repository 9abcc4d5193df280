// Package remote is the Target for a destination on another machine, where
// an fsmirror agent applies ops (see package wire). The connection to the
// agent is made by a Dialer: SSH runs `fsmirror agent` through the system
// ssh.
//
// A broken connection fails the requests in flight with an error wrapping
// fsmirror.ErrTargetDown; Ping makes a new one. The live mirror pings a
// target that went down until it is back, then sends what changed meanwhile.
// A connection that the far side closed because it was idle, with nothing
// in flight, is made again on the next request without any of that: nothing
// is in doubt.
//
// A destination whose filesystem is full (ENOSPC, EDQUOT) is treated as
// down too, so that a live mirror keeps the work and waits instead of
// failing path after path: Ping answers only once the far side reports room
// for what failed (see full.go).
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

	dialMu sync.Mutex // held while a new connection is made
	full   fullState

	mu   sync.Mutex
	c    *wire.Client
	sent int64 // bytes sent on connections that are gone
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

func (t *Target) current() *wire.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

// client returns the connection, or an ErrTargetDown error if it is gone.
// One that the far side closed as idle is made again first.
func (t *Target) client(ctx context.Context) (*wire.Client, error) {
	c := t.current()
	if c == nil {
		return nil, fmt.Errorf("%w: %s: not connected", fsmirror.ErrTargetDown, t.d)
	}
	if err := c.Err(); err != nil {
		if !c.ClosedIdle() {
			return nil, fmt.Errorf("%s: %w", t.d, err)
		}
		if err := t.reconnect(ctx, c); err != nil {
			return nil, err
		}
		if c = t.current(); c == nil {
			return nil, fmt.Errorf("%w: %s: closed", fsmirror.ErrTargetDown, t.d)
		}
	}
	return c, nil
}

// reconnect replaces the connection old with a new one, unless another
// goroutine already has.
func (t *Target) reconnect(ctx context.Context, old *wire.Client) error {
	t.dialMu.Lock()
	defer t.dialMu.Unlock()
	if cur := t.current(); cur != old && cur != nil && cur.Err() == nil {
		return nil // replaced meanwhile
	}
	c, err := t.connect(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", fsmirror.ErrTargetDown, err)
	}
	t.mu.Lock()
	if t.c != old { // closed meanwhile
		t.mu.Unlock()
		c.Close()
		return fmt.Errorf("%w: %s: closed", fsmirror.ErrTargetDown, t.d)
	}
	if t.c != nil {
		t.sent += t.c.BytesSent()
		t.c.Close()
	}
	t.c = c
	t.mu.Unlock()
	return nil
}

// Ping checks the connection and, if it is gone, makes a new one. While the
// destination is full, it fails until the far side has room again.
func (t *Target) Ping(ctx context.Context) error {
	old := t.current()
	alive := false
	if old != nil && old.Err() == nil {
		_, err := old.Lstat(ctx, "")
		alive = err == nil || old.Err() == nil
	}
	if !alive {
		if err := t.reconnect(ctx, old); err != nil {
			return err
		}
	}
	return t.full.check(ctx, t.current(), t.d.String())
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
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.ReadDir(ctx, dir)
}

// Lstat describes path on the far side.
func (t *Target) Lstat(ctx context.Context, path string) (fsmirror.Entry, error) {
	c, err := t.client(ctx)
	if err != nil {
		return fsmirror.Entry{}, err
	}
	return c.Lstat(ctx, path)
}

// Hash hashes the file at path where it is.
func (t *Target) Hash(ctx context.Context, path string) ([]byte, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Hash(ctx, path)
}

// Apply makes op true on the far side.
func (t *Target) Apply(ctx context.Context, op *fsmirror.Op) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	err = c.Apply(ctx, op)
	if err == nil {
		if op.Kind == fsmirror.OpWrite {
			t.full.wrote()
		}
		return nil
	}
	if isFull(err) {
		t.full.set(op)
		return fmt.Errorf("%w: %s is full (%w)", fsmirror.ErrTargetDown, t.d, err)
	}
	return err
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
	t.mu.Unlock()
	return err
}
