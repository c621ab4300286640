package client_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

func dialHTTP(t testing.TB, srv *server.Server) *client.Client {
	t.Helper()
	return dialOpts(t, client.Options{Transport: client.TransportHTTP, Addr: srv.HTTPAddr().String()})
}

// TestHTTPAtLeastOnce: with AtLeastOnce a request whose answer was lost
// is resent, every event is acknowledged, and the cut request's events are
// stored twice: what the option trades for.
func TestHTTPAtLeastOnce(t *testing.T) {
	srv := sensetest.Start(t, "")
	c := dialHTTP(t, srv)
	ctx := testCtx(t, 30*time.Second)
	createPipeline(t, c, "alo", 1)
	var armed atomic.Bool
	armed.Store(true)
	client.SetCutHTTPAnswer(c, func() bool { return armed.CompareAndSwap(true, false) })
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "alo", AtLeastOnce: true, Linger: time.Hour, RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rs := newResults()
	for i := range 10 {
		p.Send(client.Event{Value: []byte(fmt.Sprint(i))}, rs.done(i))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	rs.check(t, 10)
	if recs := consume(t, c, "alo", client.Earliest, 20); len(recs) != 20 {
		t.Fatalf("%d records, want 20 (the first request stored twice)", len(recs))
	}
}

// fakeEdge answers /healthz and produce requests with the answers in
// order (the last one repeats), and counts the produce requests.
func fakeEdge(t *testing.T, answers ...func(w http.ResponseWriter)) (*client.Client, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok\n")
			return
		}
		if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != wire.BatchContentType {
			http.Error(w, "want HTTP/2 and the batch encoding, got "+r.Proto+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
			return
		}
		io.Copy(io.Discard, r.Body)
		k := int(n.Add(1)) - 1
		answers[min(k, len(answers)-1)](w)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return dialOpts(t, client.Options{Transport: client.TransportHTTP, Addr: srv.Listener.Addr().String()}), &n
}

func answer(status int, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestHTTPProduceAnswers: how the producer reads the edge's answers:
// 503 and 429 refusals are retried like NOT_READY and OVERLOADED, up to
// MaxRetries; per-event codes become the TCP errors; an answer that is
// not Sense's (a proxy's 502) is an unknown outcome, not resent.
func TestHTTPProduceAnswers(t *testing.T) {
	ok := answer(200, `{"stored":1,"refused":0,"results":[{"partition":3,"offset":42}]}`)
	notReady := answer(503, `{"error":"NOT_READY","message":"starting"}`)
	produce := func(c *client.Client, retries int) client.Result {
		p, err := c.NewProducer(testCtx(t, 10*time.Second), client.ProducerOptions{Pipeline: "x", MaxRetries: retries, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return p.Produce(testCtx(t, 10*time.Second), client.Event{Value: []byte("v")})
	}
	t.Run("503-then-200", func(t *testing.T) {
		c, n := fakeEdge(t, notReady, ok)
		if r := produce(c, 0); r.Err != nil || r.Partition != 3 || r.Offset != 42 || n.Load() != 2 {
			t.Fatalf("%+v after %d requests", r, n.Load())
		}
	})
	t.Run("503-no-retries", func(t *testing.T) {
		c, n := fakeEdge(t, notReady, ok)
		if r := produce(c, -1); !errors.Is(r.Err, result.ErrNotReady) || n.Load() != 1 {
			t.Fatalf("%+v after %d requests", r, n.Load())
		}
	})
	t.Run("429-plain", func(t *testing.T) {
		c, n := fakeEdge(t, func(w http.ResponseWriter) { http.Error(w, "slow down", http.StatusTooManyRequests) }, ok)
		if r := produce(c, 0); r.Err != nil || n.Load() != 2 {
			t.Fatalf("%+v after %d requests", r, n.Load())
		}
	})
	t.Run("per-event-code", func(t *testing.T) {
		c, _ := fakeEdge(t, answer(207, `{"stored":0,"refused":1,"results":[{"error":"INVALID_MASK","message":"m","retriable":false}]}`))
		if r := produce(c, 0); !errors.Is(r.Err, result.ErrInvalidMask) || result.CodeOf(r.Err) != result.InvalidMask || r.Offset != -1 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("proxy-502", func(t *testing.T) {
		c, n := fakeEdge(t, func(w http.ResponseWriter) { http.Error(w, "bad gateway", http.StatusBadGateway) }, ok)
		r := produce(c, 0)
		var ue *client.UnknownOutcomeError
		if !errors.As(r.Err, &ue) || ue.Events != 1 || n.Load() != 1 || !strings.Contains(r.Err.Error(), "AtLeastOnce") {
			t.Fatalf("%+v after %d requests", r, n.Load())
		}
	})
}

// TestHTTPNotSent: a request that never reached a server is not an
// unknown outcome: it is retried, and fails with a *ConnError.
func TestHTTPNotSent(t *testing.T) {
	srv := sensetest.Start(t, "")
	c := dialHTTP(t, srv)
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "gone", MaxRetries: 2, RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv.Shutdown(ctx)
	r := p.Produce(ctx, client.Event{Value: []byte("v")})
	var ce *client.ConnError
	if !errors.As(r.Err, &ce) || errors.Is(r.Err, client.ErrUnknownOutcome) {
		t.Fatalf("%+v, want a *ConnError", r)
	}
}

// TestHTTPConsumerStarts: over HTTP the consumer's From and Starts mean
// what they mean over TCP: Latest is the high watermark when it starts (no
// event stored after it is missed), an offset starts there, and Positions
// and HighWatermarks follow the records.
func TestHTTPConsumerStarts(t *testing.T) {
	srv := sensetest.Start(t, "")
	c := dialHTTP(t, srv)
	ctx := testCtx(t, 30*time.Second)
	createPipeline(t, c, "starts", 2)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "starts"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if r := p.Produce(ctx, client.Event{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); r.Err != nil || r.Offset != int64(i) {
				t.Fatalf("event %d: %+v", i, r)
			}
		}
	}
	send(0, 5)
	_, layout, err := c.Describe(ctx, "starts")
	if err != nil {
		t.Fatal(err)
	}
	part := int32(-1)
	for _, l := range layout {
		if l.HighWatermark == 5 {
			part = l.Partition
		}
	}
	latest, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "starts", From: client.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer latest.Close()
	if pos := latest.Positions(); pos[part] != 5 {
		t.Fatalf("positions from Latest: %v", pos)
	}
	send(5, 7)
	for want := 5; want < 7; want++ {
		r, err := latest.Next(ctx)
		if err != nil || r.Offset != int64(want) || string(r.Value) != fmt.Sprint(want) || r.Partition != part || r.Hub == "" {
			t.Fatalf("Latest: %+v, %v; want offset %d", r, err, want)
		}
	}
	if hw := latest.HighWatermarks(); hw[part] != 7 {
		t.Fatalf("high watermarks: %v", hw)
	}
	from3, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "starts", Partitions: []int32{part}, Starts: map[int32]int64{part: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer from3.Close()
	if r, err := from3.Next(ctx); err != nil || r.Offset != 3 {
		t.Fatalf("Starts 3: %+v, %v", r, err)
	}
	if got := from3.Partitions(); len(got) != 1 || got[0] != part {
		t.Fatalf("partitions %v", got)
	}
	from3.Close()
	if _, err := from3.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// Fetch is a GET.
	fr, err := c.Fetch(ctx, "starts", part, 4, 0)
	if err != nil || len(fr.Records) != 3 || fr.Records[0].Offset != 4 || fr.NextOffset != 7 || fr.HighWatermark != 7 {
		t.Fatalf("fetch: %+v, %v", fr, err)
	}
	if _, err := c.Fetch(ctx, "nope", 0, 0, 0); !errors.Is(err, result.ErrUnknownPipeline) {
		t.Fatalf("fetch of an unknown pipeline: %v", err)
	}
	if _, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "nope"}); err == nil {
		t.Fatal("consumer of an unknown pipeline")
	}
}

// TestHTTPS: with https:// and InsecureSkipVerify the client speaks HTTP/2
// over TLS; without trust it says how to give it.
func TestHTTPS(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		io.WriteString(w, "ok\n")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := "https://" + srv.Listener.Addr().String()
	ctx := testCtx(t, 10*time.Second)
	if _, err := client.Dial(ctx, client.Options{Transport: client.TransportHTTP, Addr: addr}); err == nil || !strings.Contains(err.Error(), "ServerFingerprint") {
		t.Fatalf("untrusted: %v", err)
	}
	c := dialOpts(t, client.Options{Transport: client.TransportHTTP, Addr: addr, InsecureSkipVerify: true})
	if _, err := c.Ping(ctx); err != nil || proto.Load() != "HTTP/2.0" {
		t.Fatalf("ping: %v over %v", err, proto.Load())
	}
	if _, err := client.Dial(ctx, client.Options{Transport: client.TransportHTTP, Addr: "127.0.0.1:1", DialTimeout: time.Second}); err == nil || !strings.Contains(err.Error(), "over HTTP") {
		t.Fatalf("nobody listening: %v", err)
	}
}
