package receiver

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/fsmirror/fsmirror/wire"
)

// The files of a receiver's key directory.
const (
	KeyFile  = "key.pem"  // the private key, owner-only
	CertFile = "cert.pem" // the self-signed certificate
)

// Init makes a new key and self-signed certificate in dir (created,
// owner-only, if missing), unless the key is there already, and returns
// the fingerprint clients pin. created says whether a new key was made.
// An existing key is never replaced: every client pins it.
func Init(dir string) (fingerprint string, created bool, err error) {
	keyFile, certFile := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	if _, err := os.Stat(keyFile); err == nil {
		_, fp, err := LoadCert(keyFile, certFile)
		return fp, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", false, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", false, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "fsmirror receiver " + host},
		NotBefore:    now.Add(-time.Hour),
		// Clients check the pinned key, not dates: a certificate that
		// never expires saves a renewal that would change nothing.
		NotAfter:    now.AddDate(100, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return "", false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", false, err
	}
	// The certificate first: a key without its certificate would be kept
	// by the next Init and be of no use.
	if err := writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", false, err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", false, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", false, err
	}
	return wire.Fingerprint(cert), true, nil
}

// writeNew writes a file under a temporary name and renames it into place,
// so that a crash leaves no half-written key.
func writeNew(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// LoadCert loads a key and its certificate, and returns them with the
// fingerprint clients pin.
func LoadCert(keyFile, certFile string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w (make them with `fsmirror serve init`)", err)
		}
		return tls.Certificate{}, "", fmt.Errorf("load key: %w", err)
	}
	return cert, wire.Fingerprint(cert.Leaf), nil
}
