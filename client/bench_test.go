package client_test

import (
	"context"
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
