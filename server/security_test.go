package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/server"
	"github.com/sensehq/sense/vfs"
)

// secureNode is a dev-mode node with security enabled on loopback ports,
// which a test can stop and start again on the same data.
type secureNode struct {
	t    *testing.T
	cfg  *config.Config
	srv  *server.Server
	boot string // the bootstrap token
}

func startSecure(t *testing.T, timeout time.Duration) *secureNode {
	return startSecureWith(t, timeout, "")
}

// startSecureWith is startSecure with more configuration (YAML).
func startSecureWith(t *testing.T, timeout time.Duration, extra string) *secureNode {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("secure.yaml", []byte("security: {enabled: true, bootstrap_token_file: "+filepath.Join(dir, "boot.token")+"}\n"+extra))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node.DataDir = filepath.Join(dir, "data")
	cfg.Listeners.Native, cfg.Listeners.HTTP, cfg.Listeners.Kafka = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Listeners.QUIC = "127.0.0.1:0"
	cfg.Security.AuthTimeout = config.Duration(timeout)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n := &secureNode{t: t, cfg: cfg}
	n.start()
	tok, err := security.ReadTokenFile(cfg.Security.BootstrapTokenFile)
	if err != nil {
		t.Fatalf("the bootstrap token file was not written: %v", err)
	}
	n.boot = tok
	t.Cleanup(n.stop)
	return n
}

func (n *secureNode) start() {
	n.t.Helper()
	srv, err := server.Start(n.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
	// Later starts take the same ports.
	n.cfg.Listeners.Native = srv.NativeAddr().String()
	n.cfg.Listeners.HTTP = srv.HTTPAddr().String()
	n.cfg.Listeners.Kafka = srv.KafkaAddr().String()
	n.cfg.Listeners.QUIC = srv.QUICAddr().String()
}

func (n *secureNode) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.srv = nil
}

func (n *secureNode) dial(ctx context.Context, o client.Options) (*client.Client, error) {
	if o.Addr == "" {
		o.Addr = n.srv.NativeAddr().String()
	}
	if o.Transport == client.TransportQUIC {
		o.Addr = n.srv.QUICAddr().String()
		o.ServerFingerprint, _ = n.srv.QUICFingerprint()
	}
	if o.Transport == client.TransportHTTP {
		o.Addr = n.srv.HTTPAddr().String()
	}
	return client.Dial(ctx, o)
}

func (n *secureNode) admin(ctx context.Context, req admin.Request) admin.Response {
	n.t.Helper()
	c, err := n.dial(ctx, client.Options{Token: n.boot})
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Admin(ctx, req)
	if err != nil {
		n.t.Fatalf("%s: %v", req.Op(), err)
	}
	return resp
}

// produceOne produces one event with c and returns its error.
func produceOne(ctx context.Context, c *client.Client, pipeline string) error {
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline})
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Produce(ctx, client.Event{Value: []byte("v")}).Err
}

// TestSecurityNodeAlone runs a node alone with security enabled: users
// created with the bootstrap token authenticate with every mechanism on
// the native protocol, QUIC, HTTP and Kafka; wrong passwords, unknown
// users, expired and tampered tokens are refused with a clear message;
// the users survive a restart.
func TestSecurityNodeAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := startSecure(t, 10*time.Second)
	n.admin(ctx, admin.CreateUser{User: "alice", Password: "s3cret"})
	n.admin(ctx, admin.CreateUser{User: "bob", Password: "pw256", Mechanism: security.ScramSHA256})
	// Authorization is TestACLMatrix's: here every user may use every
	// pipeline and group, alice administers, and bob may not produce to
	// bob-denied* (checked again after a restart).
	acls := []admin.ACLInfo{
		{Principal: "User:*", ResourceType: "pipeline", Name: "*", Operation: "all"},
		{Principal: "User:*", ResourceType: "group", Name: "*", Operation: "all"},
		{Principal: "User:*", ResourceType: "cluster", Operation: "describe"},
		{Principal: "User:alice", ResourceType: "cluster", Operation: "all"},
		{Principal: "User:bob", ResourceType: "pipeline", Pattern: "prefixed", Name: "bob-denied", Operation: "produce", Permission: "deny"},
	}
	n.admin(ctx, admin.CreateACLs{ACLs: acls})
	if us := n.admin(ctx, admin.ListUsers{}).Users; len(us) != 2 || us[0].Name != "alice" || len(us[0].Mechanisms) != 2 {
		t.Fatalf("users: %+v", us)
	}
	tok := n.admin(ctx, admin.CreateToken{User: "alice", TTL: "1h"}).Token
	if tok == nil || !security.IsToken(tok.Token) {
		t.Fatalf("token: %+v", tok)
	}

	t.Run("native", func(t *testing.T) {
		for _, o := range []client.Options{
			{User: "alice", Password: "s3cret"},
			{User: "alice", Password: "s3cret", Mechanism: security.ScramSHA256},
			{User: "alice", Password: "s3cret", Mechanism: security.Plain},
			{User: "bob", Password: "pw256", Mechanism: security.ScramSHA256},
			{Token: tok.Token},
			{Token: tok.Token, Transport: client.TransportQUIC},
			{User: "alice", Password: "s3cret", Transport: client.TransportQUIC},
			{Token: tok.Token, Transport: client.TransportHTTP},
			{User: "alice", Password: "s3cret", Transport: client.TransportHTTP},
		} {
			c, err := n.dial(ctx, o)
			if err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
			if err := produceOne(ctx, c, "secure"); err != nil {
				t.Fatalf("%+v: produce: %v", o, err)
			}
			c.Close()
		}
		for _, c := range []struct {
			o    client.Options
			want string
		}{
			{client.Options{User: "alice", Password: "wrong"}, "unknown user or wrong password"},
			{client.Options{User: "nobody", Password: "x"}, "unknown user or wrong password"},
			{client.Options{User: "bob", Password: "pw256"}, "unknown user or wrong password"}, // no SCRAM-SHA-512 credential
			{client.Options{User: "alice", Password: "wrong", Mechanism: security.Plain}, "unknown user or wrong password"},
			{client.Options{Token: expiredToken(t, n)}, "expired at"},
			{client.Options{Token: tamper(tok.Token)}, "signature does not match"},
			{client.Options{Token: "not-a-token"}, "malformed"},
			{client.Options{User: "alice", Password: "wrong", Transport: client.TransportQUIC}, "unknown user or wrong password"},
		} {
			cl, err := n.dial(ctx, c.o)
			if err == nil {
				cl.Close()
				t.Fatalf("%+v: authenticated", c.o)
			}
			if !errors.Is(err, result.ErrAuthenticationFailed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%+v: %v, want AUTHENTICATION_FAILED saying %q", c.o, err, c.want)
			}
		}
		// No credentials: the first request is refused and the
		// connection closed.
		cl, err := n.dial(ctx, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Admin(ctx, admin.ListPipelines{})
		cl.Close()
		if !errors.Is(err, result.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "before authentication") {
			t.Fatalf("unauthenticated request: %v", err)
		}
	})

	t.Run("http", func(t *testing.T) {
		base := "http://" + n.srv.HTTPAddr().String()
		do := func(auth, path string) (int, http.Header, map[string]string) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(`{"value":"x"}`+"\n"))
			if path == "/healthz" {
				req.Method = http.MethodGet
			}
			req.Header.Set("Content-Type", "application/x-ndjson")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var m map[string]string
			json.Unmarshal(body, &m)
			return resp.StatusCode, resp.Header, m
		}
		if st, _, _ := do("", "/healthz"); st != 200 {
			t.Fatalf("/healthz without credentials: %d", st)
		}
		if st, _, _ := do("Bearer "+tok.Token, "/v1/pipelines/secure/events"); st != 200 {
			t.Fatalf("produce with a token: %d", st)
		}
		for _, c := range []struct{ auth, want string }{
			{"", "requires authentication"},
			{"Bearer " + expiredToken(t, n), "expired at"},
			{"Bearer " + tamper(tok.Token), "signature does not match"},
			{"Bearer nope", "malformed"},
			{"Digest x", "neither Bearer nor Basic"},
		} {
			st, h, m := do(c.auth, "/v1/pipelines/secure/events")
			if st != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") ||
				m["error"] != "AUTHENTICATION_FAILED" || !strings.Contains(m["message"], c.want) {
				t.Fatalf("%q: %d %v %v, want 401 saying %q", c.auth, st, h.Get("WWW-Authenticate"), m, c.want)
			}
		}
	})

	t.Run("kafka", func(t *testing.T) {
		addr := n.srv.KafkaAddr().String()
		for _, mech := range []sasl.Mechanism{
			scram.Auth{User: "alice", Pass: "s3cret"}.AsSha512Mechanism(),
			scram.Auth{User: "alice", Pass: "s3cret"}.AsSha256Mechanism(),
			plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism(),
			plain.Auth{User: security.TokenUser, Pass: tok.Token}.AsMechanism(),
		} {
			topic := "sasl-" + strings.ToLower(strings.ReplaceAll(mech.Name(), "-", ""))
			kafkaRoundTrip(t, ctx, addr, topic, mech)
		}
		for _, c := range []struct {
			mech sasl.Mechanism
			want string
		}{
			{scram.Auth{User: "alice", Pass: "nope"}.AsSha512Mechanism(), "unknown user or wrong password"},
			{scram.Auth{User: "ghost", Pass: "x"}.AsSha256Mechanism(), "unknown user or wrong password"},
			{plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(), "unknown user or wrong password"},
			{plain.Auth{User: security.TokenUser, Pass: expiredToken(t, n)}.AsMechanism(), "expired at"},
			{plain.Auth{User: security.TokenUser, Pass: tamper(tok.Token)}.AsMechanism(), "signature does not match"},
		} {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(c.mech), kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			err = cl.Ping(ctx)
			cl.Close()
			if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED saying %q", c.mech.Name(), err, c.want)
			}
		}
		// Without SASL: an error, never a hang.
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
		cl.Close()
		if err == nil {
			t.Fatal("a Kafka client without SASL got metadata")
		}
		// A request before authentication gets ILLEGAL_SASL_STATE where
		// its response has a top-level error code, and the connection is
		// closed.
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(1)
		nc.Write(kafkaFrame(req, 7))
		nc.SetReadDeadline(time.Now().Add(time.Minute))
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.SetVersion(1)
		if err := readKafkaResponse(nc, resp); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("InitProducerId before authentication: error %d, want ILLEGAL_SASL_STATE", resp.ErrorCode)
		}
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection stayed open after a request before authentication")
		}
	})

	t.Run("audit", func(t *testing.T) {
		resp := n.admin(ctx, admin.SecurityAudit{})
		var ok, refused int
		edges := map[string]bool{}
		for _, e := range resp.SecurityEvents {
			edges[e.Edge] = true
			if e.Success {
				ok++
			} else {
				refused++
			}
		}
		for _, e := range []string{"native", "quic", "http", "kafka"} {
			if !edges[e] {
				t.Errorf("no event of edge %s in the security audit log", e)
			}
		}
		if ok == 0 || refused == 0 {
			t.Fatalf("%d successes, %d refusals", ok, refused)
		}
	})

	// The users and the token key survive a restart.
	n.stop()
	n.start()
	c, err := n.dial(ctx, client.Options{User: "bob", Password: "pw256", Mechanism: security.ScramSHA256})
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	// So do the ACLs, enforced.
	if err := produceOne(ctx, c, "bob-denied-1"); result.CodeOf(err) != result.Unauthorized {
		t.Fatalf("bob produces to bob-denied-1 after a restart: %v", err)
	}
	c.Close()
	if got := n.admin(ctx, admin.ListACLs{}).ACLs; len(got) != len(acls) {
		t.Fatalf("after a restart: %d ACLs, want %d: %+v", len(got), len(acls), got)
	}
	c, err = n.dial(ctx, client.Options{Token: tok.Token})
	if err != nil {
		t.Fatalf("the token after a restart: %v", err)
	}
	// Deleting a user revokes its tokens.
	if _, err := c.Admin(ctx, admin.DeleteUser{User: "alice"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := n.dial(ctx, client.Options{Token: tok.Token}); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("a deleted user's token: %v", err)
	}
}

// kafkaRoundTrip produces and consumes a record through franz-go with mech.
func kafkaRoundTrip(t *testing.T, ctx context.Context, addr, topic string, mech sasl.Mechanism) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(mech), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello " + mech.Name())}).FirstErr(); err != nil {
		t.Fatalf("%s: produce: %v", mech.Name(), err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%s: no record consumed: %v", mech.Name(), err)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("%s: fetch: %v", mech.Name(), e.Err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Value) != "hello "+mech.Name() {
				t.Fatalf("%s: consumed %q", mech.Name(), recs[0].Value)
			}
			return
		}
	}
}

// expiredToken signs a token for alice that expired an hour ago, with the
// node's own token key (read from its data directory).
func expiredToken(t *testing.T, n *secureNode) string {
	t.Helper()
	fs, err := security.OpenFileStore(vfs.Default, filepath.Join(n.cfg.Node.DataDir, security.FileName))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := security.SignToken(fs.TokenKey(), "alice", time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper changes the user of a token ("alice" to "alicf"), keeping its
// signature.
func tamper(tok string) string {
	signed, sig, _ := strings.Cut(strings.TrimPrefix(tok, "sense1."), ".")
	raw, _ := base64URL.DecodeString(signed)
	raw[len(raw)-1]++
	return "sense1." + base64URL.EncodeToString(raw) + "." + sig
}

// kafkaFrame frames a request (header v1, client id "t").
func kafkaFrame(req kmsg.Request, corr int32) []byte {
	var b []byte
	b = append(b, 0, 0, 0, 0)
	b = append(b, byte(req.Key()>>8), byte(req.Key()), byte(req.GetVersion()>>8), byte(req.GetVersion()))
	b = append(b, byte(corr>>24), byte(corr>>16), byte(corr>>8), byte(corr), 0, 1, 't')
	b = req.AppendTo(b)
	n := len(b) - 4
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return b
}

// readKafkaResponse reads one response (header v0) into resp.
func readKafkaResponse(nc net.Conn, resp kmsg.Response) error {
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		return err
	}
	n := int(sz[0])<<24 | int(sz[1])<<16 | int(sz[2])<<8 | int(sz[3])
	body := make([]byte, n)
	if _, err := io.ReadFull(nc, body); err != nil {
		return err
	}
	return resp.ReadFrom(body[4:])
}

// TestSecuritySlowClients: connections that do not authenticate within
// security.auth_timeout are closed, on the native protocol and Kafka, and a
// large request before authentication is refused before it is read.
func TestSecuritySlowClients(t *testing.T) {
	n := startSecure(t, 300*time.Millisecond)
	closed := func(name string, nc net.Conn) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(time.Minute)) // far beyond the server's
		_, err := io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the server did not close the connection", name)
		}
	}
	// Native: silent after connecting; HELLO but no AUTHENTICATE; half of
	// a SCRAM exchange.
	for i, send := range [][]byte{
		nil,
		wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "slow"}),
		wire.AppendAuthenticate(wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1}), 2,
			wire.Authenticate{Mechanism: security.ScramSHA256, Data: []byte("n,,n=alice,r=abc")}),
		{0, 0, 0x10}, // a partial frame header
	} {
		nc, err := net.Dial("tcp", n.srv.NativeAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(send)
		closed("native "+string(rune('0'+i)), nc)
		nc.Close()
	}
	// Native: a frame larger than the handshake's limit, before
	// authentication, is refused at once.
	nc, _ := net.Dial("tcp", n.srv.NativeAddr().String())
	nc.Write(wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1}))
	nc.Write([]byte{0, 0x10, 0, 0, byte(wire.TypeAuthenticate), 0, 0, 0, 0, 2})
	closed("native large", nc)
	nc.Close()
	// Kafka: silent; a partial request; a request size above 64 KiB.
	for i, send := range [][]byte{nil, {0, 0, 0, 40, 0, 18}, {0, 0x10, 0, 0}} {
		nc, err := net.Dial("tcp", n.srv.KafkaAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(send)
		closed("kafka "+string(rune('0'+i)), nc)
		nc.Close()
	}
	resp := n.admin(context.Background(), admin.SecurityAudit{})
	var timeouts int
	for _, e := range resp.SecurityEvents {
		if !e.Success && strings.Contains(e.Reason, "timed out") || strings.Contains(e.Reason, "no authentication within") {
			timeouts++
		}
	}
	if timeouts == 0 {
		t.Fatalf("no time-out in the security audit log: %+v", resp.SecurityEvents)
	}
}

var base64URL = base64RawURL()

func base64RawURL() *base64.Encoding { return base64.RawURLEncoding }
