package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/fsmirror/fsmirror/wire"
)

// TLS reaches the receiver of `fsmirror serve` over TCP and TLS 1.3, trusting
// exactly the receiver whose key has the pinned fingerprint (see
// wire.ClientTLS). Who the client is and where it writes travel in the
// wire.Auth of the connection's options.
type TLS struct {
	Addr        string // host:port
	Fingerprint string // as wire.ParseFingerprint returns it
	// Name names the destination in messages, e.g. fsmirror://host:port/dir.
	Name string
	// Timeout bounds the TCP connect and the TLS handshake; 0 means 30s.
	Timeout time.Duration
}

// Dial connects and completes the TLS handshake.
func (d *TLS) Dial(ctx context.Context) (io.ReadWriteCloser, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nd := net.Dialer{KeepAlive: 15 * time.Second}
	conn, err := nd.DialContext(ctx, "tcp", d.Addr)
	if err != nil {
		return nil, fmt.Errorf("receiver %s: %w", d, err)
	}
	tc := tls.Client(conn, wire.ClientTLS(d.Fingerprint))
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			err = fmt.Errorf("%w (it closed the connection: it may be at its --max-conns, or not an fsmirror receiver)", err)
		}
		return nil, fmt.Errorf("receiver %s: TLS handshake: %w", d, err)
	}
	return tc, nil
}

// Greeted names the receiver in the error of a failed handshake, which
// says why (a refused token, another protocol version).
func (d *TLS) Greeted(_ io.ReadWriteCloser, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("receiver %s: %w", d, err)
}

// String names the destination.
func (d *TLS) String() string {
	if d.Name != "" {
		return d.Name
	}
	return "fsmirror://" + d.Addr
}
