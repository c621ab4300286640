package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/sensetest"
)

// TestQUICFlowsHaveTheirOwnStreams: over QUIC each producer and consumer
// runs on a stream of its own, all on the client's one QUIC connection;
// many at once all deliver, and closing them closes their streams.
func TestQUICFlowsHaveTheirOwnStreams(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	c := dialQUIC(t, srv)
	ctx := testCtx(t, 60*time.Second)
	const producers, each = 24, 200
	var ps []*client.Producer
	for range producers {
		p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "flows"})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if n := client.Flows(c); n != producers {
		t.Fatalf("%d streams for %d producers", n, producers)
	}
	rs := newResults()
	var wg sync.WaitGroup
	for k, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p.Send(client.Event{Value: []byte(fmt.Sprintf("p%d-%d", k, i))}, rs.done(k*each+i))
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rs.check(t, producers*each)
	if n := client.Flows(c); n != 0 {
		t.Fatalf("%d streams left after every producer closed", n)
	}
	recs := consume(t, c, "flows", client.Earliest, producers*each)
	if len(recs) != producers*each {
		t.Fatalf("%d records", len(recs))
	}
	if n := client.Flows(c); n != 0 {
		t.Fatalf("%d streams left after the consumer closed", n)
	}
}

// TestQUICClientCloseEndsProducers: closing the client ends its QUIC
// connection; its producers report ErrClosed.
func TestQUICClientCloseEndsProducers(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	c := dialQUIC(t, srv)
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Produce(ctx, client.Event{Value: []byte("a")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	c.Close()
	if r := p.Produce(ctx, client.Event{Value: []byte("b")}); !errors.Is(r.Err, client.ErrClosed) {
		t.Fatalf("after Close: %+v, want ErrClosed", r)
	}
	p.Close()
}

// TestQUICTrust: the dev server's self-signed certificate is refused
// without a pin, with a message that says how to pin it; a wrong pin
// names both fingerprints; InsecureSkipVerify connects.
func TestQUICTrust(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	addr := srv.QUICAddr().String()
	dial := func(o client.Options) error {
		o.Transport, o.Addr = client.TransportQUIC, addr
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, o)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(client.Options{}); err == nil || !strings.Contains(err.Error(), "--server-fingerprint") {
		t.Fatalf("no pin: %v", err)
	}
	fp, _ := srv.QUICFingerprint()
	wrong := strings.Repeat("0", 64)
	if err := dial(client.Options{ServerFingerprint: wrong}); err == nil || !strings.Contains(err.Error(), fp) {
		t.Fatalf("wrong pin: %v", err)
	}
	if err := dial(client.Options{ServerFingerprint: strings.ToUpper(fp)}); err != nil {
		t.Fatalf("upper-case pin: %v", err)
	}
	if err := dial(client.Options{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if err := dial(client.Options{ServerFingerprint: "xyz"}); err == nil || !strings.Contains(err.Error(), "ServerFingerprint") {
		t.Fatalf("bad pin: %v", err)
	}
}

func TestTransportOption(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	if _, err := client.Dial(ctx, client.Options{Transport: "udp"}); err == nil || !strings.Contains(err.Error(), `"tcp", "quic" or "http"`) {
		t.Fatalf("udp: %v", err)
	}
	// QUIC with nobody listening fails within the dial timeout.
	_, err := client.Dial(ctx, client.Options{Transport: client.TransportQUIC, Addr: "127.0.0.1:1", InsecureSkipVerify: true, DialTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "QUIC") {
		t.Fatalf("nobody listening: %v", err)
	}
}
