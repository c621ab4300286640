package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/sensetest"
)

// requestCounter is a kgo hook that counts the requests a client writes,
// by API key.
type requestCounter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (c *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int16]int{}
	}
	c.n[key]++
}

func (c *requestCounter) count(key kmsg.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[int16(key)]
}

// apiVersions asks addr for ApiVersions at version 3.
func apiVersions(t *testing.T, addr string) *kmsg.ApiVersionsResponse {
	t.Helper()
	k := dialKafka(t, addr)
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "sense-test", "1"
	resp := kmsg.NewPtrApiVersionsResponse()
	k.do(req, resp, 3)
	if resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions v3: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp
}

// finalizedTV returns the level of transaction.version that an ApiVersions
// response finalizes (0 when none), and the max versions of Produce,
// EndTxn and TxnOffsetCommit it advertises.
func finalizedTV(resp *kmsg.ApiVersionsResponse) (level int16, produce, endTxn, txnOffsetCommit int16) {
	if resp.FinalizedFeaturesEpoch >= 0 {
		for _, f := range resp.FinalizedFeatures {
			if f.Name == "transaction.version" {
				level = f.MaxVersionLevel
			}
		}
	}
	for _, k := range resp.ApiKeys {
		switch kmsg.Key(k.ApiKey) {
		case kmsg.Produce:
			produce = k.MaxVersion
		case kmsg.EndTxn:
			endTxn = k.MaxVersion
		case kmsg.TxnOffsetCommit:
			txnOffsetCommit = k.MaxVersion
		}
	}
	return
}

// transactions runs three transactions of a franz-go producer over two
// partitions of topic (commit, abort, commit) and checks what
// read_committed and read_uncommitted consumers see. It returns the
// producer's epoch after each transaction and the requests it sent.
func transactions(t *testing.T, ctx context.Context, addr, topic, id string) ([]int16, *requestCounter) {
	t.Helper()
	counter := &requestCounter{}
	p := client(t, addr, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(counter))
	var epochs []int16
	for _, tx := range []struct {
		prefix string
		commit bool
	}{{"a", true}, {"b", false}, {"c", true}} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Value: fmt.Appendf(nil, "%s-%02d", tx.prefix, i), Partition: int32(i % 2)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", tx.prefix, err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(tx.commit)); err != nil {
			t.Fatalf("end %s: %v", tx.prefix, err)
		}
		_, epoch, err := p.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, epoch)
	}
	var want, all []string
	for _, pre := range []string{"a", "b", "c"} {
		for i := range 10 {
			v := fmt.Sprintf("%s-%02d", pre, i)
			all = append(all, v)
			if pre != "b" {
				want = append(want, v)
			}
		}
	}
	if got := readAll(t, ctx, addr, topic, true); !slices.Equal(got, want) {
		t.Fatalf("read_committed got %d records %v\nwant %d", len(got), got, len(want))
	}
	if got := readAll(t, ctx, addr, topic, false); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted got %d records %v\nwant %d", len(got), got, len(all))
	}
	return epochs, counter
}

// On a node alone transaction version 2 is in effect: ApiVersions
// finalizes it, and franz-go runs KIP-890 part 2: no AddPartitionsToTxn
// (the produce adds the partition), and every EndTxn bumps the epoch.
func TestTransactionVersion2(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: tv2, partitions: 2}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	level, produce, endTxn, toc := finalizedTV(apiVersions(t, addr))
	if level != 2 || produce < 12 || endTxn < 5 || toc < 5 {
		t.Fatalf("transaction.version %d, Produce %d, EndTxn %d, TxnOffsetCommit %d: want 2, 12, 5, 5", level, produce, endTxn, toc)
	}
	epochs, counter := transactions(t, ctx, addr, "tv2", "tv2-1")
	if n := counter.count(kmsg.AddPartitionsToTxn); n != 0 {
		t.Errorf("the producer sent %d AddPartitionsToTxn; under transaction version 2 the produce adds the partition", n)
	}
	if n := counter.count(kmsg.EndTxn); n != 3 {
		t.Errorf("%d EndTxn, want 3", n)
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] != epochs[i-1]+1 {
			t.Fatalf("epochs after each transaction %v: want one more each time", epochs)
		}
	}
}

// With kafka.transaction_version 1 the versions before KIP-890 part 2 are
// served, as before it: franz-go adds partitions with AddPartitionsToTxn
// and keeps its epoch.
func TestTransactionVersion1(t *testing.T) {
	addr, _ := startWith(t, `
pipelines:
  - {name: tv1, partitions: 2}
`, kafka.Options{AutoCreateTopics: true, TransactionVersion: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	level, produce, endTxn, toc := finalizedTV(apiVersions(t, addr))
	if level != 1 || produce != 8 || endTxn != 2 || toc != 3 {
		t.Fatalf("transaction.version %d, Produce %d, EndTxn %d, TxnOffsetCommit %d: want 1, 8, 2, 3", level, produce, endTxn, toc)
	}
	epochs, counter := transactions(t, ctx, addr, "tv1", "tv1-1")
	if n := counter.count(kmsg.AddPartitionsToTxn); n == 0 {
		t.Error("no AddPartitionsToTxn under transaction version 1")
	}
	if epochs[0] != epochs[len(epochs)-1] {
		t.Errorf("epochs %v: the epoch changed under transaction version 1", epochs)
	}
}

// A consume-transform-produce stage in franz-go's GroupTransactSession
// under transaction version 2: no AddPartitionsToTxn nor AddOffsetsToTxn
// (the produce and TxnOffsetCommit v5 add them), every input record once
// in the read_committed output, and the group's offsets committed with
// the transactions.
func TestTransactionVersion2GroupTransactSession(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: g2-in, partitions: 1}
  - {name: g2-out, partitions: 1}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := client(t, addr, kgo.DefaultProduceTopic("g2-in"))
	counter := &requestCounter{}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(addr), kgo.TransactionalID("g2-tx"),
		kgo.ConsumerGroup("g2-g"), kgo.ConsumeTopics("g2-in"), kgo.DefaultProduceTopic("g2-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond), kgo.WithHooks(counter))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	const n = 5
	var want []string
	for i := range n {
		v := fmt.Sprintf("v-%d", i)
		want = append(want, v+"!")
		if err := src.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for len(recs) == 0 && ctx.Err() == nil {
			sess.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			sess.Produce(ctx, &kgo.Record{Value: append(r.Value, '!')}, nil)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("transaction %d: committed %v, %v", i, committed, err)
		}
	}
	if a, o := counter.count(kmsg.AddPartitionsToTxn), counter.count(kmsg.AddOffsetsToTxn); a != 0 || o != 0 {
		t.Errorf("%d AddPartitionsToTxn and %d AddOffsetsToTxn under transaction version 2, want none", a, o)
	}
	if counter.count(kmsg.TxnOffsetCommit) == 0 {
		t.Error("no TxnOffsetCommit")
	}
	if got := readAll(t, ctx, addr, "g2-out", true); !slices.Equal(got, want) {
		t.Errorf("read_committed %v, want %v", got, want)
	}
	// The group's committed offset is past every input record (a client
	// retries UNSTABLE_OFFSET_COMMIT, and so does this test).
	var off int64 = -1
	code := int16(-1)
	for deadline := time.Now().Add(5 * time.Second); off != n && time.Now().Before(deadline); {
		oreq := kmsg.NewPtrOffsetFetchRequest()
		oreq.Group, oreq.RequireStable = "g2-g", true
		oresp := kmsg.NewPtrOffsetFetchResponse()
		dialKafka(t, addr).do(oreq, oresp, 7)
		off, code = -1, 0
		for _, tp := range oresp.Topics {
			for _, p := range tp.Partitions {
				if tp.Topic == "g2-in" {
					off, code = p.Offset, p.ErrorCode
				}
			}
		}
		if off != n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if off != n {
		t.Errorf("the group's committed offset %d (%v), want %d", off, kerr.ErrorForCode(code), n)
	}
}

// The delayed EndTxn under transaction version 2 (the anomaly of
// TestDelayedEndTxnFenced): transaction 1's EndTxn(commit), held in a
// proxy, arrives after its producer aborted transaction 1 (the epoch
// bumped) and began transaction 2 by producing at the new epoch. It is
// refused, and transaction 2 ends as its producer asks. The produces add
// their partition themselves (Produce v12); a retry of the abort is
// answered with the same new epoch; a produce at the old epoch is fenced.
func TestDelayedEndTxnFencedTV2(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: fence2, partitions: 1}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gate := sensetest.NewGate(t, addr)
	a := dialKafka(t, gate.Addr())
	pc := dialKafka(t, addr)
	const tid, topic = "fenced-producer-2", "fence2"

	pid, e0 := a.initProducer(tid)

	produce := func(epoch int16, value string) int16 {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = 0, txnBatch(pid, epoch, 0, value)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrProduceResponse()
		pc.do(req, resp, 12)
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	endTxn := func(k *kconn, epoch int16, commit bool) *kmsg.EndTxnResponse {
		t.Helper()
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = tid, pid, epoch, commit
		resp := kmsg.NewPtrEndTxnResponse()
		k.do(req, resp, 5)
		return resp
	}

	// Transaction 1, begun by its produce.
	if code := produce(e0, "first"); code != 0 {
		t.Fatalf("produce first: %v", kerr.ErrorForCode(code))
	}
	// Its EndTxn(commit) is held in the proxy.
	gate.Hold()
	commit := kmsg.NewPtrEndTxnRequest()
	commit.TransactionalID, commit.ProducerID, commit.ProducerEpoch, commit.Commit = tid, pid, e0, true
	a.send(commit, 5)
	// The producer aborts transaction 1 on another connection: the epoch
	// is bumped. A retry of the abort gets the same answer.
	b := dialKafka(t, addr)
	abort := endTxn(b, e0, false)
	if abort.ErrorCode != 0 || abort.ProducerID != pid || abort.ProducerEpoch != e0+1 {
		t.Fatalf("abort of transaction 1: %v, producer %d epoch %d", kerr.ErrorForCode(abort.ErrorCode), abort.ProducerID, abort.ProducerEpoch)
	}
	e1 := abort.ProducerEpoch
	if again := endTxn(b, e0, false); again.ErrorCode != 0 || again.ProducerEpoch != e1 {
		t.Fatalf("retried abort: %v, epoch %d, want %d", kerr.ErrorForCode(again.ErrorCode), again.ProducerEpoch, e1)
	}
	// A produce of transaction 1, late, is fenced; transaction 2 begins
	// with a produce at the new epoch (sequence 0 again).
	if code := produce(e0, "late"); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("a produce at the old epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
	if code := produce(e1, "second"); code != 0 {
		t.Fatalf("produce second: %v", kerr.ErrorForCode(code))
	}
	// The delayed commit arrives now: refused.
	gate.Release()
	late := kmsg.NewPtrEndTxnResponse()
	a.recv(late, 5)
	if late.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("the delayed EndTxn(commit) answered %v, want PRODUCER_FENCED", kerr.ErrorForCode(late.ErrorCode))
	}
	// Transaction 2 ends as its producer asks: aborted.
	if r := endTxn(b, e1, false); r.ErrorCode != 0 || r.ProducerEpoch != e1+1 {
		t.Fatalf("abort of transaction 2: %v, epoch %d (the delayed commit ended it?)", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
	}
	if got := readAll(t, ctx, addr, topic, true); len(got) != 0 {
		t.Fatalf("read_committed sees %v; both transactions were aborted", got)
	}
	if got := readAll(t, ctx, addr, topic, false); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("read_uncommitted sees %v", got)
	}
}
