package receiver_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/fsmirror/fsmirror/receiver"
	"github.com/fsmirror/fsmirror/wire"
)

func tlsCertForTest(t *testing.T) tls.Certificate {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := receiver.Init(dir); err != nil {
		t.Fatal(err)
	}
	cert, _, err := receiver.LoadCert(filepath.Join(dir, receiver.KeyFile), filepath.Join(dir, receiver.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "key")
	fp, created, err := receiver.Init(dir)
	if err != nil || !created {
		t.Fatalf("Init: %v, created %v", err, created)
	}
	if _, err := wire.ParseFingerprint(fp); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, receiver.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	// A second Init keeps the key every client pins.
	again, created, err := receiver.Init(dir)
	if err != nil || created || again != fp {
		t.Fatalf("second Init: %s, created %v, %v; want the same fingerprint %s", again, created, err, fp)
	}
	cert, loaded, err := receiver.LoadCert(filepath.Join(dir, receiver.KeyFile), filepath.Join(dir, receiver.CertFile))
	if err != nil || loaded != fp || wire.Fingerprint(cert.Leaf) != fp {
		t.Fatalf("LoadCert: %s, %v; want %s", loaded, err, fp)
	}
}
