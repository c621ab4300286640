package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/batch"
	native "github.com/sensehq/sense/client"
	"github.com/sensehq/sense/sensetest"
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

// benchValues returns n distinct 100-byte values of random letters (not
// zeros, which would flatter any compression on the way).
func benchValues(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte('a' + r.IntN(26))
		}
		out[i] = v
	}
	return out
}

// p99 returns the 99th percentile of lat in milliseconds.
func p99(lat []time.Duration) float64 {
	slices.Sort(lat)
	return float64(lat[len(lat)*99/100]) / 1e6
}

// BenchmarkKafkaVsNative runs the workload through both protocols
// against one in-process dev node (fsync: always), one after the other in
// the same run: b.N records of 100 bytes from one franz-go producer
// (idempotent, acks=all, no compression, default linger and batching) to
// one partition, then b.N records read back by one franz-go consumer, then
// b.N events from one native producer (idempotent, default options) to
// its pipeline's low lane. It reports each side's records/s, the
// producers' p99 from each record's send to its acknowledgement (a closed
// loop at full speed: the figure includes queueing in the clients), and
// kafka/native, the ratio of produce rates.
func BenchmarkKafkaVsNative(b *testing.B) {
	srv := sensetest.Start(b, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	values := benchValues(1024)
	b.ReportAllocs()

	// Kafka producer.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr().String()), kgo.DefaultProduceTopic("kbench"),
		kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		b.Fatal(err)
	}
	defer kcl.Close()
	if err := kcl.ProduceSync(ctx, &kgo.Record{Value: values[0]}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	klat := make([]time.Duration, b.N)
	var kerrs atomic.Int64
	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		sent := time.Now()
		kcl.Produce(ctx, &kgo.Record{Value: values[i%len(values)]}, func(_ *kgo.Record, err error) {
			klat[i] = time.Since(sent)
			if err != nil {
				kerrs.Add(1)
			}
		})
	}
	if err := kcl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	kafkaRate := float64(b.N) / time.Since(t0).Seconds()
	b.StopTimer()
	if n := kerrs.Load(); n > 0 {
		b.Fatalf("%d Kafka produce errors", n)
	}

	// Kafka consumer: the b.N records (and the warm-up one) back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr().String()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"kbench": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	b.StartTimer()
	t1 := time.Now()
	got := 0
	for got < b.N+1 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("consumed %d of %d", got, b.N+1)
		}
		got += fs.NumRecords()
	}
	consumeRate := float64(got) / time.Since(t1).Seconds()
	b.StopTimer()

	// Native producer, same workload.
	nc, err := native.Dial(ctx, native.Options{Addr: srv.NativeAddr().String(), ClientID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	np, err := nc.NewProducer(ctx, native.ProducerOptions{Pipeline: "nbench"})
	if err != nil {
		b.Fatal(err)
	}
	defer np.Close()
	if r := np.Produce(ctx, native.Event{Value: values[0]}); r.Err != nil {
		b.Fatal(r.Err)
	}
	nlat := make([]time.Duration, b.N)
	var nerrs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(b.N)
	b.StartTimer()
	t2 := time.Now()
	for i := range b.N {
		sent := time.Now()
		np.Send(native.Event{Value: values[i%len(values)]}, func(r native.Result) {
			nlat[i] = time.Since(sent)
			if r.Err != nil {
				nerrs.Add(1)
			}
			wg.Done()
		})
	}
	if err := np.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	nativeRate := float64(b.N) / time.Since(t2).Seconds()
	b.StopTimer()
	if n := nerrs.Load(); n > 0 {
		b.Fatalf("%d native produce errors", n)
	}

	b.ReportMetric(kafkaRate, "kafka_produce_rec/s")
	b.ReportMetric(p99(klat), "kafka_produce_p99_ms")
	b.ReportMetric(consumeRate, "kafka_consume_rec/s")
	b.ReportMetric(nativeRate, "native_produce_rec/s")
	b.ReportMetric(p99(nlat), "native_produce_p99_ms")
	b.ReportMetric(kafkaRate/nativeRate, "kafka/native")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkKafkaProduceLatency paces a franz-go producer (idempotent,
// acks=all, no compression, no linger) at a fixed rate of 100-byte records
// to one partition of a dev node (fsync: always) and reports the p50 and
// p99 of each record's latency from the time it was due to be sent (open
// loop: a stall delays the records behind it, and that counts), with the
// native producer paced the same way in the same run.
func BenchmarkKafkaProduceLatency(b *testing.B) {
	for _, rate := range []int{100_000, 400_000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			srv := sensetest.Start(b, "")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			values := benchValues(1024)
			kcl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr().String()), kgo.DefaultProduceTopic("klat"),
				kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(0))
			if err != nil {
				b.Fatal(err)
			}
			defer kcl.Close()
			if err := kcl.ProduceSync(ctx, &kgo.Record{Value: values[0]}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			nc, err := native.Dial(ctx, native.Options{Addr: srv.NativeAddr().String(), ClientID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			np, err := nc.NewProducer(ctx, native.ProducerOptions{Pipeline: "nlat", Linger: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer np.Close()
			if r := np.Produce(ctx, native.Event{Value: values[0]}); r.Err != nil {
				b.Fatal(r.Err)
			}
			interval := time.Second / time.Duration(rate)
			pace := func(send func(i int, intended time.Time)) {
				t0 := time.Now()
				for i := range b.N {
					intended := t0.Add(time.Duration(i) * interval)
					if d := time.Until(intended); d > 200*time.Microsecond {
						time.Sleep(d)
					}
					send(i, intended)
				}
			}
			klat := make([]time.Duration, b.N)
			var failed atomic.Int64
			b.ResetTimer()
			pace(func(i int, intended time.Time) {
				kcl.Produce(ctx, &kgo.Record{Value: values[i%len(values)]}, func(_ *kgo.Record, err error) {
					klat[i] = time.Since(intended)
					if err != nil {
						failed.Add(1)
					}
				})
			})
			if err := kcl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			nlat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			wg.Add(b.N)
			pace(func(i int, intended time.Time) {
				np.Send(native.Event{Value: values[i%len(values)]}, func(r native.Result) {
					nlat[i] = time.Since(intended)
					if r.Err != nil {
						failed.Add(1)
					}
					wg.Done()
				})
			})
			if err := np.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d produce errors", n)
			}
			pct := func(lat []time.Duration, q float64) float64 {
				slices.Sort(lat)
				return float64(lat[int(float64(len(lat)-1)*q)]) / 1e6
			}
			b.ReportMetric(pct(klat, 0.5), "kafka_p50_ms")
			b.ReportMetric(pct(klat, 0.99), "kafka_p99_ms")
			b.ReportMetric(pct(nlat, 0.5), "native_p50_ms")
			b.ReportMetric(pct(nlat, 0.99), "native_p99_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkProduceRequest sends Produce requests (acks=1, one batch of
// one 100-byte record, not idempotent) one at a time over a socket to a
// dev node (fsync never) and reads each answer; one op is one request, at
// version 9 (flexible: franz-go, librdkafka 2.x on Kafka 3+ brokers, the
// Java client) and 7 (kafkajs, older librdkafka). The test side reuses its
// request bytes and read buffer, so the allocations reported are the
// server's per request.
func BenchmarkProduceRequest(b *testing.B) {
	for _, v := range []int16{9, 7} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) { benchProduceRequest(b, v) })
	}
}

func benchProduceRequest(b *testing.B, version int16) {
	addr := startTB(b, "durability: {fsync: never}\npipelines:\n  - {name: bench, partitions: 1}\n")
	k := dialKafka(b, addr)
	var bb batch.Builder
	bb.Reset(-1, -1, -1)
	bb.Add(time.Now().UnixMilli(), nil, make([]byte, 100))
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = 1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "bench"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, bb.Finish()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := rawRequest(req, version, 1)
	buf := make([]byte, 4096)
	round := func() []byte {
		if _, err := k.c.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(k.c, buf[:4]); err != nil {
			b.Fatal(err)
		}
		n := binary.BigEndian.Uint32(buf)
		if _, err := io.ReadFull(k.c, buf[:n]); err != nil {
			b.Fatal(err)
		}
		return buf[:n]
	}
	for range 100 {
		round()
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(version)
	hdr := 4 // the correlation id
	if resp.IsFlexible() {
		hdr++ // and the header's tags
	}
	if err := resp.ReadFrom(round()[hdr:]); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		b.Fatalf("produce answered %+v (%v)", resp, err)
	}
	b.ReportAllocs()
	cpu0 := sensetest.CPUTime()
	for b.Loop() {
		round()
	}
	sensetest.ReportCPU(b, cpu0)
}
