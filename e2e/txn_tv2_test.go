package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// addPartitionsCounter counts the AddPartitionsToTxn requests a kgo client
// writes.
type addPartitionsCounter struct{ n atomic.Int64 }

func (c *addPartitionsCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 24 && err == nil {
		c.n.Add(1)
	}
}

// readTopic reads every record of topic from the start with the isolation
// level asked for, until a few polls bring nothing, and returns the
// values sorted.
func readTopic(t *testing.T, ctx context.Context, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for idle := 0; idle < 5 && ctx.Err() == nil; {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)); n++ })
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	slices.Sort(out)
	return out
}

// stableAtEnd checks that every partition of topic holds records and that
// its last stable offset is its high watermark: no transaction is left
// open.
func stableAtEnd(t *testing.T, ctx context.Context, addr, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ka := kadm.NewClient(cl)
	hw, err := ka.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lso, err := ka.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset != o.Offset || o.Offset == 0 {
			t.Errorf("partition %d: last stable offset %d, high watermark %d (a transaction left open, or no records)", o.Partition, l.Offset, o.Offset)
		}
	})
}

// A franz-go producer runs transaction version 2 (KIP-890 part 2: its
// produces add their partitions, no AddPartitionsToTxn) against sense
// serve, which is killed with SIGKILL while the producer's second
// transaction has stored its records. After the restart that transaction
// is aborted (read_committed sees the first transaction only, the last
// stable offsets are the high watermarks again), and a new producer of the
// same transactional id commits a third.
func TestKafkaTransactionVersion2KilledMidway(t *testing.T) {
	n := startNode(t, t.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const topic, tid = "tv2-kill", "tv2-kill-tx"
	adm, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	adm.Close()

	counter := &addPartitionsCounter{}
	run := func(p *kgo.Client, prefix string, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i), Partition: int32(i % 2)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", prefix, err)
			}
		}
		if commit {
			if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatalf("commit %s: %v", prefix, err)
			}
		}
	}
	newProducer := func() *kgo.Client {
		p, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.TransactionalID(tid), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(counter), kgo.TransactionTimeout(60*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newProducer()
	run(p, "a", true)
	_, e1, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run(p, "b", false) // stored, not ended
	n.kill()
	p.Close()
	n.start()

	p = newProducer()
	defer p.Close()
	run(p, "c", true)
	_, e3, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e3 <= e1 {
		t.Errorf("epoch %d after the restart, %d before: not bumped", e3, e1)
	}
	if c := counter.n.Load(); c != 0 {
		t.Errorf("%d AddPartitionsToTxn: the producers did not run transaction version 2", c)
	}
	var committed, all []string
	for _, pre := range []string{"a", "b", "c"} {
		for i := range 10 {
			v := fmt.Sprintf("%s-%d", pre, i)
			all = append(all, v)
			if pre != "b" {
				committed = append(committed, v)
			}
		}
	}
	slices.Sort(committed)
	slices.Sort(all)
	if got := readTopic(t, ctx, n.kafka, topic, true); !slices.Equal(got, committed) {
		t.Fatalf("read_committed sees %v\nwant %v", got, committed)
	}
	if got := readTopic(t, ctx, n.kafka, topic, false); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted sees %v\nwant %v", got, all)
	}
	stableAtEnd(t, ctx, n.kafka, topic)
	n.noErrors()
}
