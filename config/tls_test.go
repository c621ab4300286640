package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/internal/tlstest"
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

// TestListenerTLS: the per-listener settings and their defaults. A config
// with only the shared certificate means what it always meant (HTTPS,
// native and Kafka plain); a listener turns TLS on by itself.
func TestListenerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srv := ca.Server(t, "server")
	other := ca.Server(t, "other")

	c := Config{TLS: TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if h, n, k := c.TLS.Listener(ListenerHTTP), c.TLS.Listener(ListenerNative), c.TLS.Listener(ListenerKafka); !h.Enabled || n.Enabled || k.Enabled ||
		h.CertFile != srv.CertFile || h.ClientAuth != ClientAuthNone {
		t.Fatalf("shared certificate only: http %+v, native %+v, kafka %+v; want HTTPS alone", h, n, k)
	}
	if c.TLS.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Errorf("handshake_timeout = %v", c.TLS.HandshakeTimeout)
	}

	yaml := fmt.Sprintf(`
tls:
  cert_file: %s
  key_file: %s
  client_ca_file: %s
  client_auth: verify_if_given
  http: {enabled: false}
  native: {enabled: true, client_auth: require}
  kafka: {cert_file: %s, key_file: %s, client_auth: none}
`, srv.CertFile, srv.KeyFile, ca.CertFile, other.CertFile, other.KeyFile)
	p, err := Parse("sense.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	h, n, k := p.TLS.Listener(ListenerHTTP), p.TLS.Listener(ListenerNative), p.TLS.Listener(ListenerKafka)
	if h.Enabled {
		t.Errorf("http: %+v, want off", h)
	}
	if !n.Enabled || n.CertFile != srv.CertFile || n.ClientCAFile != ca.CertFile || n.ClientAuth != ClientAuthRequire {
		t.Errorf("native: %+v", n)
	}
	if !k.Enabled || k.CertFile != other.CertFile || k.KeyFile != other.KeyFile || k.ClientAuth != ClientAuthNone {
		t.Errorf("kafka: %+v (its own cert_file turns it on)", k)
	}
	// A client CA alone means require.
	p, err = Parse("", []byte(fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s}\n", srv.CertFile, srv.KeyFile, ca.CertFile)))
	if err != nil {
		t.Fatal(err)
	}
	if a := p.TLS.Listener(ListenerHTTP).ClientAuth; a != ClientAuthRequire {
		t.Errorf("client_ca_file alone: client_auth %q, want require", a)
	}
	// The environment sets the listeners' settings too.
	l, err := Load(nil, []string{"SENSE_TLS_CERT_FILE=" + srv.CertFile, "SENSE_TLS_KEY_FILE=" + srv.KeyFile, "SENSE_TLS_KAFKA_ENABLED=true"})
	if err != nil {
		t.Fatal(err)
	}
	if !l.TLS.Listener(ListenerKafka).Enabled {
		t.Error("SENSE_TLS_KAFKA_ENABLED=true did not turn TLS on for Kafka")
	}

	bad := []struct {
		name, yaml, key, hint string
	}{
		{"enabled without a certificate", "tls: {native: {enabled: true}}\n", "tls.native.enabled", "has no certificate; set tls.cert_file and tls.key_file"},
		{"require without a CA", fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_auth: require}\n", srv.CertFile, srv.KeyFile), "tls.client_auth", "no CA file is given for the http listener"},
		{"listener policy without a CA", fmt.Sprintf("tls: {cert_file: %s, key_file: %s, kafka: {enabled: true, client_auth: verify_if_given}}\n", srv.CertFile, srv.KeyFile), "tls.kafka.client_auth", "no CA file"},
		{"unknown policy", "tls: {client_auth: always}\n", "tls.client_auth", "use none, verify_if_given or require"},
		{"listener half a pair", fmt.Sprintf("tls: {native: {cert_file: %s}}\n", srv.CertFile), "tls.native.key_file", "give the certificate's private key too"},
		{"CA not PEM", fmt.Sprintf("tls: {client_ca_file: %s}\n", srv.KeyFile), "tls.client_ca_file", "holds no PEM CERTIFICATE"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sense.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 || errs[0].Key != tt.key || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("got %v; want one error on %s saying %q", err, tt.key, tt.hint)
			}
		})
	}
}

// TestClusterTLS: the three files together, only in a cluster, and a
// certificate that names this node.
func TestClusterTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	n1, n2 := ca.Node(t, "n1"), ca.Node(t, "n2")
	cluster := func(tls string) string {
		return "node: {id: n1}\njurisdictions: [MA]\nhubs: [{name: h, jurisdiction: MA}]\ncluster: {peers: [{id: n1, addr: 127.0.0.1:7100}, {id: n2, addr: 127.0.0.1:7200}], tls: " + tls + "}\n"
	}
	c, err := Parse("", []byte(cluster(fmt.Sprintf("{cert_file: %s, key_file: %s, ca_file: %s}", n1.CertFile, n1.KeyFile, ca.CertFile))))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cluster.TLS.Enabled() {
		t.Fatal("cluster.tls not enabled")
	}
	bad := []struct {
		name, yaml, key, hint string
	}{
		{"another node's certificate", cluster(fmt.Sprintf("{cert_file: %s, key_file: %s, ca_file: %s}", n2.CertFile, n2.KeyFile, ca.CertFile)),
			"cluster.tls.cert_file", `names node(s) n2, localhost, not this node "n1"`},
		{"no CA", cluster(fmt.Sprintf("{cert_file: %s, key_file: %s}", n1.CertFile, n1.KeyFile)), "cluster.tls.ca_file", "needs cluster.tls.cert_file, key_file and ca_file together"},
		{"dev mode", fmt.Sprintf("cluster: {tls: {cert_file: %s, key_file: %s, ca_file: %s}}\n", n1.CertFile, n1.KeyFile, ca.CertFile), "cluster.tls", "cluster.peers is empty"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sense.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 || errs[0].Key != tt.key || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("got %v; want one error on %s saying %q", err, tt.key, tt.hint)
			}
		})
	}
}
