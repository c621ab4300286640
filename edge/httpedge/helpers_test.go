package httpedge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/edge/httpedge"
)

// clients returns an HTTP/1.1 client and an HTTP/2 client with prior
// knowledge (h2c), by name.
func clients() map[string]*http.Client {
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	return map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{Protocols: h1}, Timeout: time.Minute},
		"HTTP/2.0": {Transport: &http.Transport{Protocols: h2c}, Timeout: time.Minute},
	}
}

// produceResponse is a POST's JSON answer.
type produceResponse struct {
	Stored  int `json:"stored"`
	Refused int `json:"refused"`
	Results []struct {
		Partition *int32 `json:"partition"`
		Offset    *int64 `json:"offset"`
		Error     string `json:"error"`
		Message   string `json:"message"`
		Retriable bool   `json:"retriable"`
	} `json:"results"`
	Error string `json:"error"` // a request refused whole
	Line  int    `json:"line"`
	// Message of a request refused whole.
	Message string `json:"message"`
}

// post sends body to the pipeline's events endpoint and decodes the answer.
func post(t *testing.T, c *http.Client, base, pipeline, contentType string, body io.Reader, hdr map[string]string) (*http.Response, produceResponse) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/v1/pipelines/"+pipeline+"/events", body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var pr produceResponse
	if err := json.Unmarshal(raw, &pr); err != nil {
		t.Fatalf("status %d, body not JSON: %v\n%s", resp.StatusCode, err, raw)
	}
	return resp, pr
}

// fetch reads records with a GET.
func fetch(t *testing.T, c *http.Client, base, pipeline, query string) (int, httpedge.FetchResponse) {
	t.Helper()
	resp, err := c.Get(base + "/v1/pipelines/" + pipeline + "/events?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var fr httpedge.FetchResponse
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &fr); err != nil {
			t.Fatalf("GET: %v\n%s", err, raw)
		}
	}
	return resp.StatusCode, fr
}

func base(a net.Addr) string { return "http://" + a.String() }

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost,
// and its key, to dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sense test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// ndjson joins lines into an NDJSON body.
func ndjson(lines ...string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}
