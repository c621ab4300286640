package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduce measures a franz-go idempotent producer (acks=all, the
// default) writing 100-byte records to one partition of a dev node
// (fsync: always), pipelined through the client's batching.
func BenchmarkProduce(b *testing.B) {
	srvAddr := startB(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srvAddr), kgo.DefaultProduceTopic("bench"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 100)}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	errs := make(chan error, 1)
	b.SetBytes(100)
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "records/s")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
