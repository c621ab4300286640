package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlstest"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// logSink collects a server's log lines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// waitFor waits (at most 20s) until the log holds a line with every part.
func (l *logSink) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.mu.Lock()
		text := l.b.String()
		l.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q:\n%s", parts, text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tlsPKI is a CA with a server certificate and two clients' (one from
// another CA), in a temporary directory; the server's certificate files
// are at fixed paths so that a test can rotate them.
type tlsPKI struct {
	dir               string
	ca, other         *tlstest.CA
	server            *tlstest.Cert
	certFile, keyFile string // the server's, rotatable
	alice, mallory    *tlstest.Cert
}

func newPKI(t *testing.T) *tlsPKI {
	dir := t.TempDir()
	p := &tlsPKI{dir: dir, ca: tlstest.NewCA(t, dir, "ca"), other: tlstest.NewCA(t, dir, "other")}
	p.server = p.ca.Server(t, "server")
	p.certFile, p.keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	p.server.WriteTo(t, p.certFile, p.keyFile)
	p.alice = p.ca.Client(t, "alice")
	p.mallory = p.other.Client(t, "mallory")
	return p
}

// startTLS starts a dev-mode server on loopback with tls set as given, and
// returns it and its log.
func startTLS(t *testing.T, tlsCfg config.TLS) (*server.Server, *logSink) {
	t.Helper()
	cfg := &config.Config{TLS: tlsCfg}
	cfg.Node.DataDir = t.TempDir()
	cfg.Listeners = config.Listeners{Native: "127.0.0.1:0", HTTP: "127.0.0.1:0", Kafka: "127.0.0.1:0", QUIC: config.ListenerOff}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logSink{}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, logs
}

func dial(t *testing.T, o client.Options) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.DialTimeout = 10 * time.Second
	c, err := client.Dial(ctx, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestTLSNative: the native listener with client_auth require serves the
// Go client that presents a certificate of the client CA (produce and
// consume), and refuses, each with an error that says what to give, a
// client without a certificate, one with another CA's, and one speaking
// plain TCP, which gets a closed connection (logged by the server), not a
// hang.
func TestTLSNative(t *testing.T) {
	p := newPKI(t)
	srv, logs := startTLS(t, config.TLS{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.ca.CertFile,
		Native: config.ListenerTLS{Enabled: config.Bool(true), ClientAuth: config.ClientAuthRequire}})
	addr := srv.NativeAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := dial(t, client.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{p.alice.TLS()}}})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "secure"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	for i := range 10 {
		if r := pr.Produce(ctx, client.Event{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "secure", From: client.Earliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for i := range 10 {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("record %d: %q", i, r.Value)
		}
	}

	// No client certificate.
	_, err = dial(t, client.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: p.ca.Pool()}})
	if err == nil || !strings.Contains(err.Error(), "refused this client's certificate, or wants one") {
		t.Fatalf("without a client certificate: %v", err)
	}
	logs.waitFor(t, "TLS handshake failed", "listener=native", "requires a client certificate")
	// Another CA's certificate, presented whatever the server asks for.
	m := p.mallory.TLS()
	_, err = dial(t, client.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: p.ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &m, nil }}})
	if err == nil || !strings.Contains(err.Error(), "refused this client's certificate") {
		t.Fatalf("another CA's client certificate: %v", err)
	}
	logs.waitFor(t, "TLS handshake failed", "listener=native", "not signed by a CA in client_ca_file")
	// A client that does not trust the server.
	_, err = dial(t, client.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: p.other.Pool(), Certificates: []tls.Certificate{p.alice.TLS()}}})
	if err == nil || !strings.Contains(err.Error(), "server's certificate is not trusted") {
		t.Fatalf("a client without the server's CA: %v", err)
	}
	// Plain TCP: the connection is closed, and the error says to use TLS.
	_, err = dial(t, client.Options{Addr: addr})
	if err == nil || !strings.Contains(err.Error(), "connect with TLS") {
		t.Fatalf("plain TCP to a TLS listener: %v", err)
	}
	logs.waitFor(t, "TLS handshake failed", "listener=native", "does not speak TLS", "--tls")
	// The served client's subject is on its connection's log lines.
	logs.waitFor(t, "TLS client certificate verified", `client_cert="CN=alice"`)
}

// TestTLSSharedCertKeepsMeaning: a config naming only the shared
// certificate serves HTTPS, and the native and Kafka listeners stay plain
// TCP, as before TLS came to them.
func TestTLSSharedCertKeepsMeaning(t *testing.T) {
	p := newPKI(t)
	srv, _ := startTLS(t, config.TLS{CertFile: p.certFile, KeyFile: p.keyFile})
	c, err := dial(t, client.Options{Addr: srv.NativeAddr().String()})
	if err != nil {
		t.Fatalf("plain native client with only tls.cert_file set: %v", err)
	}
	c.Close()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + srv.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over HTTPS: %s", resp.Status)
	}
}

// TestTLSHTTPMutual: HTTPS with client_auth require: a client with a
// certificate of the client CA produces (HTTP/2) and reads back; one
// without is refused in the handshake, and the server logs why.
func TestTLSHTTPMutual(t *testing.T) {
	p := newPKI(t)
	srv, _ := startTLS(t, config.TLS{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.ca.CertFile})
	base := "https://" + srv.HTTPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := dial(t, client.Options{Transport: client.TransportHTTP, Addr: base,
		TLSConfig: &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{p.alice.TLS()}}})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "web", AtLeastOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := pr.Produce(ctx, client.Event{Value: []byte("over mTLS")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	pr.Close()

	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{p.alice.TLS()}}}}
	defer hc.CloseIdleConnections()
	body := strings.NewReader(`{"value": "ndjson over mTLS"}` + "\n")
	resp, err := hc.Post(base+"/v1/pipelines/web/events", "application/x-ndjson", body)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("POST over mTLS: %s %s: %s", resp.Proto, resp.Status, out)
	}
	var res struct {
		Results []struct {
			Offset int64 `json:"offset"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Results) != 1 {
		t.Fatalf("POST answer %s: %v", out, err)
	}

	anon := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}}}
	defer anon.CloseIdleConnections()
	if resp, err := anon.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %s", resp.Status)
	} else if !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("a client without a certificate: %v, want a TLS alert saying a certificate is required", err)
	}
}

// TestTLSReload: the certificate files are rotated and the server reloads
// them (what SIGHUP does): a new connection gets the new certificate, a
// connection made before keeps working, and a broken file keeps the
// current certificate with an error naming the file.
func TestTLSReload(t *testing.T) {
	p := newPKI(t)
	srv, logs := startTLS(t, config.TLS{CertFile: p.certFile, KeyFile: p.keyFile,
		Native: config.ListenerTLS{Enabled: config.Bool(true)}, Kafka: config.ListenerTLS{Enabled: config.Bool(true)}})
	addr := srv.NativeAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serialAt := func(addr string) string {
		t.Helper()
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"}}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if s := serialAt(addr); s != p.server.Leaf.SerialNumber.String() {
		t.Fatalf("serial %s before the rotation", s)
	}
	c, err := dial(t, client.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: p.ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "rotate"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if r := pr.Produce(ctx, client.Event{Value: []byte("before")}); r.Err != nil {
		t.Fatal(r.Err)
	}

	// A half-written rotation: the key is not the certificate's.
	next := p.ca.Server(t, "server-next")
	next.WriteTo(t, p.certFile, filepath.Join(p.dir, "unused.key"))
	if err := srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), p.keyFile) {
		t.Fatalf("ReloadTLS with a mismatched key: %v", err)
	}
	logs.waitFor(t, "TLS certificate reload failed", "previous certificate stays in use")
	if s := serialAt(addr); s != p.server.Leaf.SerialNumber.String() {
		t.Fatal("a failed reload changed the certificate")
	}

	next.WriteTo(t, p.certFile, p.keyFile)
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{addr, srv.KafkaAddr().String()} {
		if s := serialAt(a); s != next.Leaf.SerialNumber.String() {
			t.Fatalf("%s: serial %s after the rotation, want %s", a, s, next.Leaf.SerialNumber)
		}
	}
	if r := pr.Produce(ctx, client.Event{Value: []byte("after")}); r.Err != nil {
		t.Fatalf("the connection made before the rotation: %v", r.Err)
	}
	// Reload (SIGHUP's) does it too.
	third := p.ca.Server(t, "server-third")
	third.WriteTo(t, p.certFile, p.keyFile)
	cfg := &config.Config{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if s := serialAt(addr); s != third.Leaf.SerialNumber.String() {
		t.Fatal("Reload did not reload the certificate")
	}
}

// TestTLSCluster: three nodes whose transport speaks mutual TLS form a
// cluster and replicate; a node whose certificate names another node id
// never gets a frame accepted by the others, which go on without it.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "cluster ca")
	certs := []*tlstest.Cert{ca.Node(t, "n1"), ca.Node(t, "n2"), ca.Node(t, "n3")}
	c := sensetest.StartCluster(t, 3, "jurisdictions: [MA]\nhubs: [{name: tangier, jurisdiction: MA}]\npipelines: [{name: payments, partitions: 1, replication: 3}]\n",
		sensetest.WithNodeConfig(func(i int, cfg *config.Config) {
			cfg.Cluster.TLS = config.ClusterTLS{CertFile: certs[i].CertFile, KeyFile: certs[i].KeyFile, CAFile: ca.CertFile}
		}))
	produceAndCheck(t, c, "payments", 3)

	// n3 restarts with a certificate naming n9 (the config check that a
	// node's own certificate names it is bypassed, as a forged or
	// misissued certificate would be).
	c.Stop(2)
	wrong := ca.Node(t, "n9")
	c.Config(2).Cluster.TLS.CertFile, c.Config(2).Cluster.TLS.KeyFile = wrong.CertFile, wrong.KeyFile
	// Frames the stopped n3 sent before it stopped may still be on their
	// way (read from the socket after Stop returned): count from once
	// n1 and n2 have read them all, when their counts stand still.
	before := [2]uint64{recvFrom(c.Nodes[0], "n3"), recvFrom(c.Nodes[1], "n3")}
	for still, tries := 0, 0; still < 3; tries++ {
		if tries == 100 {
			t.Fatalf("n1 and n2 still count frames from n3 10s after it stopped (%v)", before)
		}
		time.Sleep(100 * time.Millisecond)
		now := [2]uint64{recvFrom(c.Nodes[0], "n3"), recvFrom(c.Nodes[1], "n3")}
		if now == before {
			still++
		} else {
			still, before = 0, now
		}
	}
	c.Start(2)
	produceAndCheck(t, c, "payments", 2)
	time.Sleep(500 * time.Millisecond) // n3 keeps dialing meanwhile; what is checked is what never arrived
	for i := range 2 {
		if got := recvFrom(c.Nodes[i], "n3"); got != before[i] {
			t.Fatalf("n%d accepted %d frames from n3, whose certificate names n9", i+1, got-before[i])
		}
	}
	if _, h, _ := c.Nodes[2].Node.Offsets("payments", 0); h > 0 {
		// Its log restarted from its own disk; what matters is that it
		// did not catch up on the events produced while it was refused.
		_, lead, _ := c.Nodes[0].Node.Offsets("payments", 0)
		if h >= lead {
			t.Fatalf("n3 holds the log up to %d, as the others (%d): it was replicated to", h, lead)
		}
	}
}

// recvFrom returns the frames srv accepted from peer id.
func recvFrom(srv *server.Server, id string) uint64 {
	for _, s := range srv.PeerStats() {
		if s.ID == id {
			return s.RecvFrames
		}
	}
	return 0
}

// produceAndCheck produces 20 events to partition 0 of pipeline through
// the first node and waits until the first `nodes` nodes hold them all.
func produceAndCheck(t *testing.T, c *sensetest.Cluster, pipeline string, nodes int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if l := c.Leader(pipeline, 0, 30*time.Second); l < 0 {
		t.Fatal("no leader within 30s")
	}
	cl, err := dial(t, client.Options{Addr: c.NativeAddr(0)})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var last int64
	for i := range 20 {
		r := pr.Produce(ctx, client.Event{Value: fmt.Appendf(nil, "e%d", i)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		last = r.Offset
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range nodes {
		for {
			if _, h, _ := c.Nodes[i].Node.Offsets(pipeline, 0); h > last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d never held offset %d", i+1, last)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestTLSQUICMutualCertificateUser: QUIC asks for client certificates as
// the native listener's settings say, and with security.certificate_user
// cn a verified certificate authenticates its connection, over QUIC and
// over native TLS alike, as the user its CN names: alice, granted the
// pipeline, produces and reads; bob, authenticated the same way but
// granted nothing, is refused UNAUTHORIZED; a certificate of another CA,
// or none, does not get a connection.
func TestTLSQUICMutualCertificateUser(t *testing.T) {
	p := newPKI(t)
	bob := p.ca.Client(t, "bob")
	cfg := &config.Config{TLS: config.TLS{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.ca.CertFile,
		Native: config.ListenerTLS{Enabled: config.Bool(true), ClientAuth: config.ClientAuthRequire}}}
	cfg.Node.DataDir = t.TempDir()
	cfg.Listeners = config.Listeners{Native: "127.0.0.1:0", HTTP: "127.0.0.1:0", Kafka: "127.0.0.1:0", QUIC: "127.0.0.1:0"}
	boot := filepath.Join(t.TempDir(), "boot.token")
	cfg.Security = config.Security{Enabled: true, BootstrapTokenFile: boot, CertificateUser: "cn"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := security.ReadTokenFile(boot)
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(c *tlstest.Cert) *tls.Config {
		conf := &tls.Config{RootCAs: p.ca.Pool()}
		if c != nil {
			conf.Certificates = []tls.Certificate{c.TLS()}
		}
		return conf
	}
	admin0, err := dial(t, client.Options{Addr: srv.NativeAddr().String(), Token: tok, TLSConfig: withCert(p.alice)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin0.Admin(ctx, admin.CreateACLs{ACLs: []admin.ACLInfo{
		{Principal: "User:alice", ResourceType: "pipeline", Name: "secure", Operation: "all"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []struct {
		name string
		o    func(*tls.Config) client.Options
	}{
		{"quic", func(c *tls.Config) client.Options {
			return client.Options{Transport: client.TransportQUIC, Addr: srv.QUICAddr().String(), TLSConfig: c}
		}},
		{"native TLS", func(c *tls.Config) client.Options {
			return client.Options{Addr: srv.NativeAddr().String(), TLSConfig: c}
		}},
	} {
		c, err := dial(t, tr.o(withCert(p.alice)))
		if err != nil {
			t.Fatalf("%s as alice: %v", tr.name, err)
		}
		pr, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "secure"})
		if err != nil {
			t.Fatalf("%s as alice: %v", tr.name, err)
		}
		if r := pr.Produce(ctx, client.Event{Key: []byte("k"), Value: []byte(tr.name)}); r.Err != nil {
			t.Fatalf("%s: alice's produce: %v", tr.name, r.Err)
		}
		pr.Close()
		c, err = dial(t, tr.o(withCert(bob)))
		if err != nil {
			t.Fatalf("%s as bob: %v", tr.name, err)
		}
		err = func() error {
			pr, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "secure"})
			if err != nil {
				return err
			}
			defer pr.Close()
			return pr.Produce(ctx, client.Event{Key: []byte("k"), Value: []byte("bob")}).Err
		}()
		if result.CodeOf(err) != result.Unauthorized {
			t.Fatalf("%s: bob's produce: %v, want UNAUTHORIZED", tr.name, err)
		}
		m := p.mallory.TLS()
		foreign := &tls.Config{RootCAs: p.ca.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &m, nil }}
		if _, err := dial(t, tr.o(foreign)); err == nil {
			t.Fatalf("%s with another CA's certificate: connected", tr.name)
		}
		if _, err := dial(t, tr.o(withCert(nil))); err == nil {
			t.Fatalf("%s without a certificate: connected", tr.name)
		}
	}
}
