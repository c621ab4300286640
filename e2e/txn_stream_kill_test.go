package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A franz-go producer of transaction version 2 runs transactions back to
// back over three partitions (so its markers are made durable by its next
// transaction's group commits, after EndTxn answered: docs/kafka.md,
// "Transactions") while sense serve is killed with SIGKILL at a random
// moment, three times. Afterwards read_committed sees every transaction
// whole or not at all: every commit that was answered, none of the aborts,
// and nothing is left open (the last stable offsets are the high
// watermarks).
func TestKafkaTransactionStreamKill9(t *testing.T) { txnStreamKill(t, 2) }

// The same at transaction version 1 (the protocol librdkafka speaks): the
// markers carry the transaction's own epoch, which the next transaction
// keeps, and a start tells them apart by the partitions' ends stored with
// the decision.
func TestKafkaTransactionStreamKill9Version1(t *testing.T) { txnStreamKill(t, 1) }

func txnStreamKill(t *testing.T, version int) {
	t.Setenv("SENSE_KAFKA_TRANSACTION_VERSION", fmt.Sprint(version))
	n := startNode(t, t.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	const topic, tid, parts, perPart = "txn-stream", "txn-stream-tx", 3, 4
	adm, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	adm.Close()

	var (
		mu        sync.Mutex
		committed = map[string]bool{} // answered commits
		aborted   = map[string]bool{} // answered aborts, or never ended
	)
	// run runs transactions until one fails (the kill) and returns how
	// many it ended.
	run := func(ctx context.Context, cycle int, p *kgo.Client) int {
		for k := 0; ; k++ {
			label := fmt.Sprintf("c%d-t%d", cycle, k)
			if err := p.BeginTransaction(); err != nil {
				return k
			}
			// The first record alone, durable before the others are
			// sent: a kill often finds a transaction partly stored.
			if err := p.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-r0", label), Partition: 0}).FirstErr(); err != nil {
				mu.Lock()
				aborted[label] = true
				mu.Unlock()
				return k
			}
			for i := 1; i < parts*perPart; i++ {
				p.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-r%d", label, i), Partition: int32(i % parts)}, nil)
			}
			commit := k%4 != 3
			if err := p.Flush(ctx); err != nil {
				mu.Lock()
				aborted[label] = true
				mu.Unlock()
				return k
			}
			err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit))
			mu.Lock()
			switch {
			case err == nil && commit:
				committed[label] = true
			case err == nil:
				aborted[label] = true
			}
			mu.Unlock()
			if err != nil {
				return k
			}
		}
	}
	adds := &addPartitionsCounter{}
	for cycle := range 3 {
		done := make(chan int, 1)
		cctx, ccancel := context.WithCancel(ctx)
		p, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.TransactionalID(tid), kgo.DefaultProduceTopic(topic), kgo.WithHooks(adds),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(60*time.Second), kgo.ProducerLinger(0),
			kgo.RequestRetries(2), kgo.RetryTimeout(2*time.Second), kgo.RecordRetries(2), kgo.RecordDeliveryTimeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- run(cctx, cycle, p) }()
		time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
		n.kill()
		// What the producer was doing fails now, or once the node is
		// back (a request under way is retried until then).
		ccancel()
		n.start()
		select {
		case k := <-done:
			t.Logf("cycle %d: %d transactions ended before the kill", cycle, k)
			if k < 5 {
				t.Errorf("cycle %d: only %d transactions before the kill", cycle, k)
			}
		case <-time.After(30 * time.Second):
			logs, _ := os.ReadFile(n.stderrPath)
			t.Fatalf("the producer did not stop within 30 s of the kill and restart; the node's log:\n%s", logs)
		}
		// Closed once the node is back: a transactional client's Close
		// ends its transaction, which waits for a broker.
		p.Close()
	}
	// The transactional id is usable after the restarts.
	p, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.TransactionalID(tid), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range parts * perPart {
		p.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "final-r%d", i), Partition: int32(i % parts)}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	committed["final"] = true

	seen := map[string]int{}
	for _, v := range readTopic(t, ctx, n.kafka, topic, true) {
		seen[v[:strings.LastIndex(v, "-r")]]++
	}
	for label, c := range seen {
		if c != parts*perPart {
			t.Errorf("transaction %s: %d of its %d records visible to read_committed", label, c, parts*perPart)
		}
		if aborted[label] {
			t.Errorf("aborted transaction %s visible to read_committed", label)
		}
	}
	for label := range committed {
		if seen[label] == 0 {
			t.Errorf("committed transaction %s (its EndTxn answered) lost", label)
		}
	}
	if len(committed) < 10 {
		t.Errorf("only %d transactions committed", len(committed))
	}
	// Transaction version 1 adds partitions with AddPartitionsToTxn,
	// version 2 with its produces.
	if c := adds.n.Load(); (version == 1) != (c > 0) {
		t.Errorf("%d AddPartitionsToTxn at transaction version %d", c, version)
	}
	stableAtEnd(t, ctx, n.kafka, topic)
	n.noErrors()
}
