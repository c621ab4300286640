package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
)

// BenchmarkProduce sends b.N events of 100-byte values from one producer
// (default options: idempotent, 2ms linger, 1000 events per request, 4 in
// flight) to an in-process dev-mode server over loopback, with the
// default durability (fsync always), and reports events/s. Allocations
// are the client's and the in-process server's together.
func BenchmarkProduce(b *testing.B) {
	c := dial(b, start(b, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	// Create the pipeline and warm up outside the timing.
	if r := p.Produce(ctx, client.Event{Value: make([]byte, 100)}); r.Err != nil {
		b.Fatal(r.Err)
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	done := func(r client.Result) {
		if r.Err != nil && failed.Add(1) == 1 {
			firstErr.Store(r.Err)
		}
	}
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		p.Send(client.Event{Value: value}, done)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d events failed, first: %v", n, firstErr.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkProduceLatency offers events open-loop at a fixed rate (one
// producer, 100-byte values, fsync always) and reports acknowledgement
// latency percentiles measured from each event's intended send time, so a
// stall is charged to every event it delays (no coordinated omission).
// Linger 0 is the client's default (2ms); the linger=off cases turn it off
// (-1). Run with -benchtime=Nx to choose how many events.
func BenchmarkProduceLatency(b *testing.B) {
	for _, tc := range []struct {
		rate   int
		linger time.Duration
	}{{100_000, 0}, {850_000, 0}, {100_000, -1}, {850_000, -1}} {
		rate := tc.rate
		linger := "2ms"
		if tc.linger < 0 {
			linger = "off"
		}
		b.Run(fmt.Sprintf("rate=%d/linger=%s", rate, linger), func(b *testing.B) {
			c := dial(b, start(b, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "lat", Linger: tc.linger})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			value := make([]byte, 100)
			p.Produce(ctx, client.Event{Value: value})
			b.ResetTimer()
			t0 := time.Now()
			lat, failed := sendOpenLoop(b, ctx, p, value, b.N, rate)
			elapsed := time.Since(t0)
			b.StopTimer()
			if failed > 0 {
				b.Fatalf("%d events failed", failed)
			}
			pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(0.999), "p999-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
		})
	}
}

// sendOpenLoop sends n events of value at perSecond from p, each at its
// intended time (late ones at once), flushes, and returns each event's
// acknowledgement latency from its intended time, sorted, and how many
// failed.
func sendOpenLoop(b *testing.B, ctx context.Context, p *client.Producer, value []byte, n, perSecond int) ([]time.Duration, int64) {
	b.Helper()
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	interval := time.Second / time.Duration(perSecond)
	t0 := time.Now()
	for i := range n {
		intended := t0.Add(time.Duration(i) * interval)
		if d := time.Until(intended); d > 200*time.Microsecond {
			time.Sleep(d)
		}
		p.Send(client.Event{Value: value}, func(r client.Result) {
			if r.Err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(intended)
		})
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	return lat, failed.Load()
}
