package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkTransactionalProduce compares, in one run on one dev node
// (fsync: always), franz-go producers writing 100-byte records to their own
// partition: non-transactional (idempotent, pipelined) against
// transactional, 100 records per transaction (begin, produce, commit). Four
// producers of each kind run at once, as an application's instances would.
// It reports the records/s of both and their ratio (the goal: at least
// 0.95).
func BenchmarkTransactionalProduce(b *testing.B) {
	addr := startTB(b, `
pipelines:
  - {name: bench-plain, partitions: 4}
  - {name: bench-txn, partitions: 4}
`)
	const producers, perTxn = 4, 100
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := make([]byte, 100)
	n := max(b.N, perTxn*producers)
	run := func(txn bool) float64 {
		topic := "bench-plain"
		if txn {
			topic = "bench-txn"
		}
		var wg sync.WaitGroup
		errs := make(chan error, producers)
		clients := make([]*kgo.Client, producers)
		for i := range producers {
			opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}
			if txn {
				opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano())))
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			clients[i] = cl
		}
		t0 := time.Now()
		for i, cl := range clients {
			wg.Go(func() {
				for sent := 0; sent < n/producers; sent += perTxn {
					if txn {
						if err := cl.BeginTransaction(); err != nil {
							errs <- fmt.Errorf("begin transaction: %w", err)
							return
						}
					}
					for range perTxn {
						cl.Produce(ctx, &kgo.Record{Value: value, Partition: int32(i)}, func(_ *kgo.Record, err error) {
							if err != nil {
								select {
								case errs <- fmt.Errorf("produce: %w", err):
								default:
								}
							}
						})
					}
					if txn {
						// franz-go ends a transaction only after its
						// records are flushed.
						if err := cl.Flush(ctx); err != nil {
							errs <- fmt.Errorf("flush: %w", err)
							return
						}
						if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
							errs <- fmt.Errorf("end transaction: %w", err)
							return
						}
					}
				}
				if err := cl.Flush(ctx); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		rate := float64(n/producers*producers) / time.Since(t0).Seconds()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		return rate
	}
	b.ReportAllocs()
	run(false) // warm up: connections, metadata, the first segments
	run(true)
	b.ResetTimer()
	plain := run(false)
	txn := run(true)
	b.ReportMetric(plain, "plain_rec/s")
	b.ReportMetric(txn, "txn_rec/s")
	b.ReportMetric(txn/plain, "txn/plain")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConsumeTransformProduce measures the latency of a record
// through a consume-transform-produce stage on one dev node (fsync:
// always): from its producer's send to its transformed copy read by a
// read_committed consumer of the output. The stage is transactional
// (franz-go GroupTransactSession: begin, produce, commit with the input
// offsets) or not (produce, wait, commit the offsets). b.N records go
// through each, one at a time, in four alternating rounds. It reports each
// median and their ratio (the goal: at most 2). franz-go's GroupTransactSession sleeps 500 ms after
// each committed transaction when the broker does not serve
// TxnOffsetCommit v3 (KIP-447); Sense serves it (docs/kafka.md,
// "Transactions"), so the session no longer sleeps.
func BenchmarkConsumeTransformProduce(b *testing.B) {
	addr := startTB(b, `
pipelines:
  - {name: ctp-in, partitions: 1}
  - {name: ctp-out, partitions: 1}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := max(b.N, 20)
	const rounds = 4
	run := func(txn bool, round int) []time.Duration {
		in, out := fmt.Sprintf("ctp-in-%d", round), fmt.Sprintf("ctp-out-%d", round)
		grp := fmt.Sprintf("ctp-%d", round)
		common := []kgo.Opt{kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.FetchMaxWait(10 * time.Millisecond), kgo.ProducerLinger(0)}
		src, err := kgo.NewClient(append(common, kgo.DefaultProduceTopic(in))...)
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		// Topics exist before the stage subscribes.
		for _, t := range []string{in, out} {
			if err := src.ProduceSync(ctx, &kgo.Record{Topic: t, Value: []byte("warm")}).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		stageOpts := append(common, kgo.ConsumerGroup(grp), kgo.ConsumeTopics(in), kgo.DefaultProduceTopic(out),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
		stop := make(chan struct{})
		var stageWG sync.WaitGroup
		ready := make(chan struct{})
		var readyOnce sync.Once
		if txn {
			sess, err := kgo.NewGroupTransactSession(append(stageOpts, kgo.TransactionalID(grp),
				kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { readyOnce.Do(func() { close(ready) }) }))...)
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			stageWG.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					pctx, pc := context.WithTimeout(ctx, 100*time.Millisecond)
					fs := sess.PollFetches(pctx)
					pc()
					var recs []*kgo.Record
					fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
					if len(recs) == 0 {
						continue
					}
					if err := sess.Begin(); err != nil {
						b.Error(err)
						return
					}
					for _, r := range recs {
						sess.Produce(ctx, &kgo.Record{Value: r.Value}, nil)
					}
					if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			cl, err := kgo.NewClient(append(stageOpts, kgo.DisableAutoCommit(),
				kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { readyOnce.Do(func() { close(ready) }) }))...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			stageWG.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					pctx, pc := context.WithTimeout(ctx, 100*time.Millisecond)
					fs := cl.PollFetches(pctx)
					pc()
					var recs []*kgo.Record
					fs.EachRecord(func(r *kgo.Record) { recs = append(recs, &kgo.Record{Value: r.Value}) })
					if len(recs) == 0 {
						continue
					}
					if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
						b.Error(err)
						return
					}
					if err := cl.CommitUncommittedOffsets(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		defer func() { close(stop); stageWG.Wait() }()
		select {
		case <-ready:
		case <-ctx.Done():
			b.Fatal("the stage never got its partition")
		}
		reader, err := kgo.NewClient(append(common, kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
		if err != nil {
			b.Fatal(err)
		}
		defer reader.Close()
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		reader.PollFetches(wctx)
		wcancel()
		var lat []time.Duration
		for i := range n {
			v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
			v = binary.BigEndian.AppendUint64(v, uint64(i))
			if err := src.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			for got := false; !got && ctx.Err() == nil; {
				fs := reader.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					if len(r.Value) == 16 && binary.BigEndian.Uint64(r.Value[8:]) == uint64(i) {
						lat = append(lat, time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
						got = true
					}
				})
			}
		}
		return lat
	}
	median := func(l []time.Duration) float64 {
		slices.Sort(l)
		return float64(l[len(l)/2].Microseconds()) / 1000
	}
	b.ReportAllocs()
	b.ResetTimer()
	// The two stages take turns, four rounds each, so that a change in
	// the machine's load (its CPU steal varies) weighs on both alike.
	var plainLat, txnLat []time.Duration
	n = max(n/rounds, 5)
	for r := range rounds {
		plainLat = append(plainLat, run(false, 2*r)...)
		txnLat = append(txnLat, run(true, 2*r+1)...)
	}
	plain, txn := median(plainLat), median(txnLat)
	b.ReportMetric(plain, "plain_p50_ms")
	b.ReportMetric(txn, "txn_p50_ms")
	b.ReportMetric(txn/plain, "txn/plain")
	b.ReportMetric(0, "ns/op")
}
