package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeKeyPair writes a self-signed PEM certificate and its key to dir and
// returns their paths.
func writeKeyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "a")
	otherCert, _ := writeKeyPair(t, dir, "b")
	garbage := filepath.Join(dir, "garbage.pem")
	write(t, garbage, []byte("not PEM at all\n"))
	missing := filepath.Join(dir, "missing.pem")

	c := Config{TLS: TLS{CertFile: cert, KeyFile: key}}
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid pair: %v", err)
	}
	if !c.TLS.Enabled() || (TLS{}).Enabled() {
		t.Error("Enabled is wrong")
	}

	tests := []struct {
		name       string
		tls        TLS
		key, value string
		hint       string
	}{
		{"missing cert", TLS{CertFile: missing, KeyFile: key}, "tls.cert_file", missing, "cannot be read"},
		{"missing key", TLS{CertFile: cert, KeyFile: missing}, "tls.key_file", missing, "cannot be read"},
		{"cert not PEM", TLS{CertFile: garbage, KeyFile: key}, "tls.cert_file", garbage, "no PEM CERTIFICATE"},
		{"key not PEM", TLS{CertFile: cert, KeyFile: garbage}, "tls.key_file", garbage, "no PEM PRIVATE KEY"},
		{"key is a cert", TLS{CertFile: cert, KeyFile: otherCert}, "tls.key_file", otherCert, "no PEM PRIVATE KEY"},
		{"key of another cert", TLS{CertFile: otherCert, KeyFile: key}, "tls.key_file", key, "does not go with tls.cert_file " + otherCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{TLS: tt.tls}
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 || errs[0].Key != tt.key || errs[0].Value != tt.value || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("got %v; want one error on %s %q saying %q", err, tt.key, tt.value, tt.hint)
			}
		})
	}
	c = Config{TLS: TLS{CertFile: missing, KeyFile: key}}
	if err := c.Validate(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file's error does not wrap fs.ErrNotExist: %v", err)
	}

	// The section is read from the environment like any other.
	l, err := Load(nil, []string{"SENSE_TLS_CERT_FILE=" + cert, "SENSE_TLS_KEY_FILE=" + key,
		"SENSE_HTTP_MAX_BODY_BYTES=1MiB", "SENSE_HTTP_MAX_EVENTS_PER_REQUEST=7"})
	if err != nil {
		t.Fatal(err)
	}
	if l.TLS.CertFile != cert || l.TLS.KeyFile != key || l.HTTP.MaxBodyBytes != MiB || l.HTTP.MaxEventsPerRequest != 7 {
		t.Errorf("from the environment: tls %+v, http %+v", l.TLS, l.HTTP)
	}
}
