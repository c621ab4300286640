package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/sensetest"
)

// BenchmarkTransports compares the native protocol over TCP and over QUIC,
// and the HTTP edge (h2c, native batch encoding), in the same run, against
// one in-process dev-mode server (fsync always) on loopback, with 100-byte
// values:
//
//   - events/s: b.N events per transport, sent as fast as acknowledged by
//     4 producers of one client (default options; over TCP they share the
//     client's connection, over QUIC each has its own stream, over HTTP
//     each POSTs on the client's one HTTP/2 connection);
//   - p99-ms: acknowledgement latency of one producer offering events
//     open-loop at 50,000/s (min(b.N, 25,000) events), measured from each
//     event's intended send time.
//
// The quic/tcp and http/tcp metrics are the ratios (above 1 means QUIC or
// HTTP is higher).
func BenchmarkTransports(b *testing.B) {
	srv := sensetest.Start(b, "", sensetest.WithQUIC())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fp, _ := srv.QUICFingerprint()
	clients := []struct {
		name string
		c    *client.Client
	}{
		{"tcp", dialOpts(b, client.Options{Addr: srv.NativeAddr().String()})},
		{"quic", dialOpts(b, client.Options{Transport: client.TransportQUIC, Addr: srv.QUICAddr().String(), ServerFingerprint: fp})},
		{"http", dialOpts(b, client.Options{Transport: client.TransportHTTP, Addr: srv.HTTPAddr().String()})},
	}
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	rate := map[string]float64{}
	p99 := map[string]float64{}
	b.ResetTimer()
	for _, tc := range clients {
		rate[tc.name] = benchRate(b, ctx, tc.c, tc.name, value)
		p99[tc.name] = benchP99(b, ctx, tc.c, tc.name, value, min(b.N, 25_000), 50_000)
	}
	b.StopTimer()
	b.ReportMetric(rate["tcp"], "tcp-events/s")
	b.ReportMetric(rate["quic"], "quic-events/s")
	b.ReportMetric(rate["http"], "http-events/s")
	b.ReportMetric(rate["quic"]/rate["tcp"], "quic/tcp-events")
	b.ReportMetric(rate["http"]/rate["tcp"], "http/tcp-events")
	b.ReportMetric(p99["tcp"], "tcp-p99-ms")
	b.ReportMetric(p99["quic"], "quic-p99-ms")
	b.ReportMetric(p99["http"], "http-p99-ms")
	b.ReportMetric(p99["quic"]/p99["tcp"], "quic/tcp-p99")
	b.ReportMetric(p99["http"]/p99["tcp"], "http/tcp-p99")
}

// benchRate sends n events from 4 producers and returns events/s.
func benchRate(b *testing.B, ctx context.Context, c *client.Client, pipeline string, value []byte) float64 {
	const producers = 4
	var ps []*client.Producer
	for range producers {
		p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "rate-" + pipeline})
		if err != nil {
			b.Fatal(err)
		}
		if r := p.Produce(ctx, client.Event{Value: value}); r.Err != nil {
			b.Fatal(r.Err)
		}
		ps = append(ps, p)
	}
	var failed atomic.Int64
	done := func(r client.Result) {
		if r.Err != nil {
			failed.Add(1)
		}
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for k, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < b.N; i += producers {
				p.Send(client.Event{Value: value}, done)
			}
			if err := p.Flush(ctx); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	for _, p := range ps {
		p.Close()
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%s: %d events failed", pipeline, n)
	}
	return float64(b.N) / elapsed.Seconds()
}

// benchP99 offers n events open-loop at perSecond from one producer and
// returns the 99th percentile of acknowledgement latency in ms.
func benchP99(b *testing.B, ctx context.Context, c *client.Client, pipeline string, value []byte, n, perSecond int) float64 {
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "lat-" + pipeline})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if r := p.Produce(ctx, client.Event{Value: value}); r.Err != nil {
		b.Fatal(r.Err)
	}
	lat, failed := sendOpenLoop(b, ctx, p, value, n, perSecond)
	if failed > 0 {
		b.Fatalf("%s: %d events failed", pipeline, failed)
	}
	return float64(lat[int(0.99*float64(n-1))]) / 1e6
}
