package tlsconf_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/internal/tlstest"
)

// syncBuffer is a log sink safe for the listener's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits (bounded) for the log to contain want.
func waitLog(t *testing.T, log *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoServer serves ln: each connection echoes what it reads, line by
// line, prefixed with the client certificate's CN ("-" for none).
func echoServer(t *testing.T, ln net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 256)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					who := "-"
					if id, ok := tlsconf.PeerIdentity(c); ok {
						who = id.Subject.CommonName
					}
					if _, err := c.Write(append([]byte(who+":"), buf[:n]...)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

type fixture struct {
	dir      string
	ca, evil *tlstest.CA
	server   *tlstest.Cert
	log      *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	return &fixture{dir: dir, ca: ca, evil: tlstest.NewCA(t, dir, "other ca"), server: ca.Server(t, "server"), log: &syncBuffer{}}
}

// listen starts an echo server with TLS from src and returns its address.
func (f *fixture) listen(t *testing.T, src *tlsconf.Source, auth tls.ClientAuthType, timeout time.Duration) string {
	t.Helper()
	cfg, err := src.ServerConfig(tlsconf.ServerOptions{ClientAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tlsconf.NewListener(raw, cfg, tlsconf.ListenerOptions{Name: "test", HandshakeTimeout: timeout, Hint: "use --tls",
		Logger: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	echoServer(t, ln)
	return raw.Addr().String()
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, nil
}

// roundTrip writes msg and reads the echo.
func roundTrip(c net.Conn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestServerTLSAndIdentity(t *testing.T) {
	f := newFixture(t)
	src, err := tlsconf.Load(tlsconf.Files{CertFile: f.server.CertFile, KeyFile: f.server.KeyFile, CAFile: f.ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	alice := f.ca.Client(t, "alice", tlstest.Email("alice@example.com"))
	mallory := f.evil.Client(t, "mallory")

	t.Run("require", func(t *testing.T) {
		addr := f.listen(t, src, tls.RequireAndVerifyClientCert, 0)
		c, err := dialTLS(t, addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{alice.TLS()}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := roundTrip(c, "hi"); err != nil || got != "alice:hi" {
			t.Fatalf("echo = %q, %v; want alice:hi", got, err)
		}
		// No certificate: the server refuses it, and says why.
		c, err = dialTLS(t, addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost"})
		if err == nil {
			_, err = roundTrip(c, "hi")
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
		waitLog(t, f.log, "requires a client certificate")
		// A certificate of another CA (sent even though the server's
		// request names its CAs, which a Certificates list would heed).
		mc := mallory.TLS()
		c, err = dialTLS(t, addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mc, nil }})
		if err == nil {
			_, err = roundTrip(c, "hi")
		}
		if err == nil {
			t.Fatal("a client with another CA's certificate was served")
		}
		waitLog(t, f.log, "not signed by a CA in client_ca_file")
	})
	t.Run("verify_if_given", func(t *testing.T) {
		addr := f.listen(t, src, tls.VerifyClientCertIfGiven, 0)
		c, err := dialTLS(t, addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := roundTrip(c, "anon"); err != nil || got != "-:anon" {
			t.Fatalf("echo = %q, %v; want -:anon", got, err)
		}
		c, err = dialTLS(t, addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{alice.TLS()}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := roundTrip(c, "hi"); err != nil || got != "alice:hi" {
			t.Fatalf("echo = %q, %v; want alice:hi", got, err)
		}
	})
}

// TestPlainClientClosed: a client that speaks plain TCP to a TLS listener
// gets its connection closed at once, not a hang, and the server logs why.
func TestPlainClientClosed(t *testing.T) {
	f := newFixture(t)
	src, err := tlsconf.Load(tlsconf.Files{CertFile: f.server.CertFile, KeyFile: f.server.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := f.listen(t, src, tls.NoClientCert, time.Minute)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // far above the expected; the test only bounds itself
	if _, err := c.Write([]byte("\x00\x00\x00\x10hello, plain text")); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a plain-text client's connection open")
	}
	waitLog(t, f.log, "does not speak TLS")
	waitLog(t, f.log, "use --tls")
}

// TestHandshakeTimeout: clients that connect and send nothing, or half a
// ClientHello, are disconnected after the handshake timeout, and their
// goroutines end.
func TestHandshakeTimeout(t *testing.T) {
	f := newFixture(t)
	src, err := tlsconf.Load(tlsconf.Files{CertFile: f.server.CertFile, KeyFile: f.server.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := f.listen(t, src, tls.NoClientCert, 200*time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 1 {
			// A TLS record header announcing 512 bytes, and 3 of them.
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01})
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a silent client's connection was never closed")
			}
		}
	}
	waitLog(t, f.log, "did not finish the TLS handshake within 200ms")
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the slow clients: the handshakes' goroutines did not end", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReload: a new certificate reaches new connections, an established
// connection keeps working, and a bad file keeps the old certificate.
func TestReload(t *testing.T) {
	f := newFixture(t)
	certFile, keyFile := filepath.Join(f.dir, "live.crt"), filepath.Join(f.dir, "live.key")
	f.server.WriteTo(t, certFile, keyFile)
	src, err := tlsconf.Load(tlsconf.Files{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := f.listen(t, src, tls.NoClientCert, 0)
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	client := &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost"}
	old, err := dialTLS(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if serial(old) != f.server.Leaf.SerialNumber.String() {
		t.Fatal("not the first certificate")
	}

	// A broken file: the reload fails, saying which file, and the old
	// certificate is still served.
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = src.Reload()
	if err == nil || !strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), "previous certificate stays in use") {
		t.Fatalf("Reload of a broken file = %v", err)
	}
	c, err := dialTLS(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if serial(c) != f.server.Leaf.SerialNumber.String() {
		t.Fatal("a failed reload changed the certificate")
	}

	rotated := f.ca.Server(t, "server-2")
	rotated.WriteTo(t, certFile, keyFile)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err = dialTLS(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if serial(c) != rotated.Leaf.SerialNumber.String() {
		t.Fatal("a new connection after the reload did not get the new certificate")
	}
	if got, err := roundTrip(old, "still"); err != nil || got != "-:still" {
		t.Fatalf("the connection made before the reload: %q, %v", got, err)
	}
}

func TestVerifyNode(t *testing.T) {
	f := newFixture(t)
	n1 := f.ca.Node(t, "n1")
	dns := f.ca.Issue(t, "x", tlstest.DNS("n2.example"), tlstest.Usage(x509.ExtKeyUsageClientAuth))
	alien := f.evil.Node(t, "n1")
	state := func(c *tlstest.Cert) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	}
	if ids, err := tlsconf.VerifyNode(state(n1), f.ca.Pool(), x509.ExtKeyUsageServerAuth, []string{"n1"}); err != nil || len(ids) != 1 {
		t.Fatalf("n1's own certificate: %v %v", ids, err)
	}
	if _, err := tlsconf.VerifyNode(state(n1), f.ca.Pool(), x509.ExtKeyUsageClientAuth, []string{"n2", "n3"}); !errors.Is(err, tlsconf.ErrWrongNode) ||
		!strings.Contains(err.Error(), "names node(s) n1") {
		t.Fatalf("n1's certificate for n2 or n3: %v", err)
	}
	if _, err := tlsconf.VerifyNode(state(dns), f.ca.Pool(), x509.ExtKeyUsageClientAuth, []string{"n2.example"}); err != nil {
		t.Fatalf("a DNS SAN equal to the id: %v", err)
	}
	if _, err := tlsconf.VerifyNode(state(dns), f.ca.Pool(), x509.ExtKeyUsageServerAuth, []string{"n2.example"}); err == nil {
		t.Fatal("a client-only certificate verified as a server's")
	}
	if _, err := tlsconf.VerifyNode(state(alien), f.ca.Pool(), x509.ExtKeyUsageServerAuth, []string{"n1"}); err == nil || !strings.Contains(err.Error(), "cluster.tls.ca_file") {
		t.Fatalf("another CA's certificate: %v", err)
	}
}
