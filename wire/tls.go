package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Over TCP (`fsmirror serve`), the protocol runs inside TLS 1.3. There is no
// certificate authority: the receiver makes its own key and self-signed
// certificate, and clients pin the key by its fingerprint, as SSH pins host
// keys. A certificate renewed with the same key keeps its fingerprint.

// Fingerprint returns the fingerprint that pins cert's key: the SHA-256 of
// its SubjectPublicKeyInfo, as 64 lowercase hex digits.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint checks a fingerprint as a person may paste it (upper or
// lower case, with or without colons) and returns it as Fingerprint prints
// it.
func ParseFingerprint(s string) (string, error) {
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("bad fingerprint %q: want the 64 hex digits that `fsmirror serve init` prints", s)
	}
	return s, nil
}

// ErrFingerprint is wrapped by the error of a TLS handshake with a server
// whose key is not the pinned one.
var ErrFingerprint = errors.New("the receiver's key does not match the pinned fingerprint")

// ClientTLS returns the TLS configuration of a client that trusts exactly
// the server whose key has fingerprint fp (as ParseFingerprint returns it).
// TLS 1.3 proves that the server holds the private key of the certificate it
// shows, so checking the certificate's key is enough.
func ClientTLS(fp string) *tls.Config {
	want, _ := hex.DecodeString(fp)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// No CA and no host name to check: the pin below is the check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: it showed no certificate", ErrFingerprint)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("%w: it has %s, the pin is %s; if the receiver's key was made again, pin the fingerprint that `fsmirror serve init` prints there, else someone may be in the middle",
					ErrFingerprint, hex.EncodeToString(got[:]), fp)
			}
			return nil
		},
	}
}

// ServerTLS returns the TLS configuration of a receiver with certificate
// cert: TLS 1.3 only.
func ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
}
