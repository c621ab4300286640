package quicwire_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sensehq/sense/edge/native/wire/quicwire"
)

// selfSigned makes a throw-away certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quicwire test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// listen starts a bare QUIC listener (no Sense server) speaking the ALPN
// with cert, on a socket from ListenUDP.
func listen(t *testing.T, cert tls.Certificate) *quic.Listener {
	t.Helper()
	udp, err := quicwire.ListenUDP("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	ql, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicwire.ALPN}, MinVersion: tls.VersionTLS13},
		&quic.Config{MaxIdleTimeout: quicwire.DefaultIdleTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ql.Close()
		tr.Close()
		udp.Close()
	})
	return ql
}

func dial(t *testing.T, addr string, c *tls.Config) (*quic.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, addr, c, nil)
	if err == nil {
		t.Cleanup(func() { qc.CloseWithError(quicwire.ConnCodeClosed, "") })
	}
	return qc, err
}

func TestParseFingerprint(t *testing.T) {
	h := strings.Repeat("0a", 32)
	colons := strings.ToUpper(strings.TrimSuffix(strings.Repeat("0a:", 32), ":"))
	for _, in := range []string{h, colons, " " + h + "\n"} {
		if got, err := quicwire.ParseFingerprint(in); err != nil || got != h {
			t.Errorf("ParseFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "abc", strings.Repeat("0a", 31), strings.Repeat("0a", 33), strings.Repeat("zz", 32)} {
		if _, err := quicwire.ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", in)
		}
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the empty input.
	if got, want := quicwire.Fingerprint(nil), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Fatalf("Fingerprint(nil) = %s, want %s", got, want)
	}
	fp := quicwire.Fingerprint(selfSigned(t).Certificate[0])
	if got, err := quicwire.ParseFingerprint(strings.ToUpper(fp)); err != nil || got != fp {
		t.Fatalf("ParseFingerprint(Fingerprint) = %q, %v; want %q", got, err, fp)
	}
}

// TestClientTLSConfig: the base configuration is cloned, never changed,
// and its ServerName wins; a malformed pin is refused.
func TestClientTLSConfig(t *testing.T) {
	base := &tls.Config{ServerName: "sense.example", NextProtos: []string{"h2"}}
	c, err := quicwire.ClientTLS(base, "127.0.0.1", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "sense.example" || c.MinVersion != tls.VersionTLS13 || len(c.NextProtos) != 1 || c.NextProtos[0] != quicwire.ALPN || c.InsecureSkipVerify {
		t.Fatalf("config %+v", c)
	}
	if base.NextProtos[0] != "h2" || base.MinVersion != 0 {
		t.Fatal("ClientTLS changed its base configuration")
	}
	if c, _ := quicwire.ClientTLS(nil, "127.0.0.1", "", false); c.ServerName != "127.0.0.1" {
		t.Fatalf("ServerName %q", c.ServerName)
	}
	if _, err := quicwire.ClientTLS(nil, "127.0.0.1", "not-hex", false); err == nil {
		t.Fatal("a malformed fingerprint was accepted")
	}
}

// TestClientTLSHandshake: against a self-signed certificate, the right
// pin and insecure connect; a wrong pin and no trust at all are refused.
func TestClientTLSHandshake(t *testing.T) {
	cert := selfSigned(t)
	ql := listen(t, cert)
	go func() {
		for {
			if _, err := ql.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	addr := ql.Addr().String()
	fp := quicwire.Fingerprint(cert.Certificate[0])

	pinned, err := quicwire.ClientTLS(nil, "127.0.0.1", fp, false)
	if err != nil {
		t.Fatal(err)
	}
	qc, err := dial(t, addr, pinned)
	if err != nil {
		t.Fatalf("pinned: %v", err)
	}
	if st := qc.ConnectionState().TLS; st.NegotiatedProtocol != quicwire.ALPN || st.Version != tls.VersionTLS13 {
		t.Fatalf("ALPN %q, TLS version %#x", st.NegotiatedProtocol, st.Version)
	}

	wrong, _ := quicwire.ClientTLS(nil, "127.0.0.1", strings.Repeat("ab", 32), false)
	if _, err := dial(t, addr, wrong); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", err)
	}
	untrusted, _ := quicwire.ClientTLS(nil, "127.0.0.1", "", false)
	if _, err := dial(t, addr, untrusted); err == nil {
		t.Fatal("a self-signed certificate was trusted without a pin")
	}
	insecure, _ := quicwire.ClientTLS(nil, "127.0.0.1", "", true)
	if _, err := dial(t, addr, insecure); err != nil {
		t.Fatalf("insecure: %v", err)
	}
}

func TestFingerprintError(t *testing.T) {
	var err error = &quicwire.FingerprintError{Want: "aa", Got: "bb"}
	var fe *quicwire.FingerprintError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "bb") || !strings.Contains(err.Error(), "pinned aa") {
		t.Fatalf("%v", err)
	}
}

// TestStreamConn: CloseWrite delivers what was written then EOF, Close
// still delivers it, Abort fails the peer's reads with StreamCodeAborted,
// and the addresses are the connection's.
func TestStreamConn(t *testing.T) {
	cert := selfSigned(t)
	ql := listen(t, cert)
	pinned, _ := quicwire.ClientTLS(nil, "127.0.0.1", quicwire.Fingerprint(cert.Certificate[0]), false)
	qc, err := dial(t, ql.Addr().String(), pinned)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sqc, err := ql.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	open := func() (client, server *quicwire.StreamConn) {
		t.Helper()
		st, err := qc.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		client = quicwire.NewStreamConn(qc, st)
		client.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		sst, err := sqc.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		server = quicwire.NewStreamConn(sqc, sst)
		server.SetDeadline(time.Now().Add(10 * time.Second))
		return client, server
	}

	c, s := open()
	if c.LocalAddr().String() != qc.LocalAddr().String() || c.RemoteAddr().String() != ql.Addr().String() || c.Conn() != qc {
		t.Fatalf("addresses %v -> %v", c.LocalAddr(), c.RemoteAddr())
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(s); err != nil || string(b) != "hello" {
		t.Fatalf("server read %q, %v after CloseWrite", b, err)
	}
	if _, err := s.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
		t.Fatalf("client read %q, %v after the server's Close", b, err)
	}

	c, s = open()
	if _, err := io.ReadFull(s, make([]byte, 5)); err != nil {
		t.Fatalf("server read: %v", err)
	}
	c.Abort()
	var se *quic.StreamError
	if _, err := s.Read(make([]byte, 1)); !errors.As(err, &se) || se.ErrorCode != quicwire.StreamCodeAborted {
		t.Fatalf("read after Abort: %v, want a stream error with code %d", err, quicwire.StreamCodeAborted)
	}
}
