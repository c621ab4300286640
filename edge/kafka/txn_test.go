package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/sensetest"
)

// readAll reads every record of topic's partitions from the start up to
// the offsets latestOffsets gives, with the isolation level asked for, and
// returns their values in offset order per partition.
func readAll(t *testing.T, ctx context.Context, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	var out []string
	// Read until a fetch round brings nothing new for a while: the test
	// knows what it wrote, and compares.
	idle := 0
	for idle < 5 && ctx.Err() == nil {
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

// A transactional producer commits one transaction over two partitions and
// aborts another: read_committed sees the committed records only,
// read_uncommitted sees both; the LSO reaches the high watermark once both
// ended.
func TestTransactionsCommitAbort(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: tx, partitions: 2}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := client(t, addr, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	run := func(prefix string, commit bool) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Value: fmt.Appendf(nil, "%s-%02d", prefix, i), Partition: int32(i % 2)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", prefix, err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
	}
	run("a", true)
	run("b", false)
	run("c", true)
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
	if got := readAll(t, ctx, addr, "tx", true); !slices.Equal(got, want) {
		t.Fatalf("read_committed got %d records %v\nwant %d", len(got), got, len(want))
	}
	if got := readAll(t, ctx, addr, "tx", false); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted got %d records %v\nwant %d", len(got), got, len(all))
	}
}

// kconn is a raw Kafka connection for tests that need to control which
// request goes on which connection.
type kconn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func dialKafka(t testing.TB, addr string) *kconn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &kconn{t: t, c: c}
}

// send writes a request without reading its response.
func (k *kconn) send(req kmsg.Request, version int16) {
	k.t.Helper()
	k.corr++
	if _, err := k.c.Write(rawRequest(req, version, k.corr)); err != nil {
		k.t.Fatal(err)
	}
}

// recv reads the next response into resp (of the version sent).
func (k *kconn) recv(resp kmsg.Response, version int16) {
	k.t.Helper()
	b := readResponse(k.t, k.c)[4:] // after the correlation id
	resp.SetVersion(version)
	if resp.IsFlexible() && resp.Key() != 18 {
		b = b[1:] // response header v1: its tagged fields (none)
	}
	if err := resp.ReadFrom(b); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kconn) do(req kmsg.Request, resp kmsg.Response, version int16) {
	k.t.Helper()
	k.send(req, version)
	k.recv(resp, version)
}

// initProducer sends a raw InitProducerId (version 1, timeout 60 s) for
// transactional id id and returns the producer id and epoch.
func (k *kconn) initProducer(id string) (int64, int16) {
	k.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = kmsg.StringPtr(id)
	req.TransactionTimeoutMillis = 60000
	resp := kmsg.NewPtrInitProducerIDResponse()
	k.do(req, resp, 1)
	if resp.ErrorCode != 0 {
		k.t.Fatalf("InitProducerId %s: %v", id, kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// txnBatch is a transactional batch of one record.
func txnBatch(pid int64, epoch int16, seq int32, value string) []byte {
	var b batch.Builder
	b.Reset(pid, epoch, seq)
	b.Add(time.Now().UnixMilli(), nil, []byte(value))
	p := append([]byte(nil), b.Finish()...)
	binary.BigEndian.PutUint16(p[batch.OffAttributes:], batch.AttrTransactional)
	binary.BigEndian.PutUint32(p[batch.OffCRC:], batch.Checksum(p[batch.OffAttributes:]))
	return p
}

// The anomaly Jepsen found in Kafka's transaction protocol (analysis of
// Bufstream 0.1, 2024): an EndTxn delayed on one connection must not end
// a later transaction of the same producer. Here the producer's
// EndTxn(commit) of its first transaction is held in a proxy; the producer
// gives up on it, aborts that transaction on another connection, begins a
// second and writes to it; then the held commit arrives. It must be
// refused (INVALID_TXN_STATE), and the second transaction's outcome be the
// one its producer asks for (abort): read_committed sees neither.
func TestDelayedEndTxnFenced(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: fence, partitions: 1}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gate := sensetest.NewGate(t, addr)
	// The producer's connection to the coordinator, as a client keeps one,
	// through the proxy; its produce connection to the partition leader.
	a := dialKafka(t, gate.Addr())
	pc := dialKafka(t, addr)
	const tid, topic = "fenced-producer", "fence"

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorType = tid, 1
	fcr := kmsg.NewPtrFindCoordinatorResponse()
	a.do(fc, fcr, 2)
	if fcr.ErrorCode != 0 {
		t.Fatalf("FindCoordinator: %v", kerr.ErrorForCode(fcr.ErrorCode))
	}
	pid, epoch := a.initProducer(tid)

	addPartition := func(k *kconn) {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = tid, pid, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrAddPartitionsToTxnResponse()
		k.do(req, resp, 2)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(code))
		}
	}
	produce := func(seq int32, value string) {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = 0, txnBatch(pid, epoch, seq, value)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrProduceResponse()
		pc.do(req, resp, 7)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce %s: %v", value, kerr.ErrorForCode(code))
		}
	}
	endTxn := func(k *kconn, commit bool) int16 {
		t.Helper()
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = tid, pid, epoch, commit
		resp := kmsg.NewPtrEndTxnResponse()
		k.do(req, resp, 2)
		return resp.ErrorCode
	}

	// Transaction 1, begun on connection a.
	addPartition(a)
	produce(0, "first")
	// Its EndTxn(commit) is held in the proxy.
	gate.Hold()
	commit := kmsg.NewPtrEndTxnRequest()
	commit.TransactionalID, commit.ProducerID, commit.ProducerEpoch, commit.Commit = tid, pid, epoch, true
	a.send(commit, 2)
	// The producer gives up on it, connects again (as a client whose
	// request timed out does), aborts transaction 1 and begins
	// transaction 2 on the new connection.
	b := dialKafka(t, addr)
	if code := endTxn(b, false); code != 0 {
		t.Fatalf("abort of transaction 1: %v", kerr.ErrorForCode(code))
	}
	addPartition(b)
	produce(1, "second")
	// The delayed commit arrives now.
	gate.Release()
	late := kmsg.NewPtrEndTxnResponse()
	a.recv(late, 2)
	if late.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("the delayed EndTxn(commit) answered %v, want INVALID_TXN_STATE", kerr.ErrorForCode(late.ErrorCode))
	}
	// Transaction 2 ends as its producer asks: aborted.
	if code := endTxn(b, false); code != 0 {
		t.Fatalf("abort of transaction 2: %v (the delayed commit ended it?)", kerr.ErrorForCode(code))
	}
	if got := readAll(t, ctx, addr, topic, true); len(got) != 0 {
		t.Fatalf("read_committed sees %v; both transactions were aborted", got)
	}
	if got := readAll(t, ctx, addr, topic, false); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("read_uncommitted sees %v", got)
	}
}

// A consume-transform-produce ETL in franz-go's GroupTransactSession, two
// members, one killed in the middle of a transaction (its records written,
// not committed): the other takes its partitions over from the group's
// committed offsets. Every input record appears exactly once in the
// output read with read_committed; the group's committed offsets are the
// input's ends; the aborted transactions (the killed member's, timed out,
// and one aborted on purpose) are invisible to read_committed and visible
// to read_uncommitted.
func TestTransactionalETLMemberKilled(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: etl-in, partitions: 1}
  - {name: etl-out, partitions: 1}
`)
	const in, out, grp, n = "etl-in", "etl-out", "etl", 3000
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// The input, and an aborted transaction already in the output.
	src := client(t, addr, kgo.DefaultProduceTopic(in))
	for i := 0; i < n; i += 100 {
		var rs []*kgo.Record
		for j := i; j < i+100; j++ {
			rs = append(rs, kgo.StringRecord(fmt.Sprintf("v-%05d", j)))
		}
		if err := src.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	poison := client(t, addr, kgo.TransactionalID("etl-poison"), kgo.DefaultProduceTopic(out))
	if err := poison.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := poison.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("poison-%d", i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := poison.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	var processed atomic.Int64
	var victim atomic.Int32 // the member killed: the first to go past n/3
	victim.Store(-1)
	member := func(i int, ks *killSwitch) error {
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(addr),
			kgo.Dialer(ks.dial),
			kgo.ClientID(fmt.Sprintf("etl-%d", i)),
			kgo.TransactionalID(fmt.Sprintf("etl-member-%d", i)),
			kgo.TransactionTimeout(4*time.Second),
			kgo.ConsumerGroup(grp),
			kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.SessionTimeout(3*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.RebalanceTimeout(10*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.FetchMaxPartitionBytes(4<<10),
			kgo.DefaultProduceTopic(out),
			kgo.RetryTimeout(10*time.Second),
		)
		if err != nil {
			return err
		}
		defer sess.Close()
		for ctx.Err() == nil {
			fs := sess.PollFetches(ctx)
			if ks.killed() {
				return nil
			}
			var recs []*kgo.Record
			fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
			if len(recs) == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				return fmt.Errorf("member %d begin: %w", i, err)
			}
			for _, r := range recs {
				sess.Produce(ctx, kgo.StringRecord("out-"+string(r.Value)), nil)
			}
			if processed.Load() >= n/3 && victim.CompareAndSwap(-1, int32(i)) {
				// Killed mid-transaction: its records are written (flush),
				// never committed; its connections die, it leaves nothing.
				sess.Client().Flush(ctx)
				ks.kill()
				return nil
			}
			committed, err := sess.End(ctx, kgo.TryCommit)
			if err != nil && ks.killed() {
				// The test ended (the output was complete) while this
				// transaction's answer was on its way: the kill cut it.
				return nil
			}
			if err != nil {
				return fmt.Errorf("member %d end: %w", i, err)
			}
			if committed {
				processed.Add(int64(len(recs)))
			}
		}
		return nil
	}
	errs := make(chan error, 2)
	k0, k1 := &killSwitch{}, &killSwitch{}
	go func() { errs <- member(0, k0) }()
	go func() { errs <- member(1, k1) }()

	// The output, read committed, until it holds every input once.
	reader := client(t, addr, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]int{}
	total := 0
	for ctx.Err() == nil && len(seen) < n {
		fs := reader.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	k0.kill()
	k1.kill()
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if victim.Load() < 0 {
		t.Fatal("no member was killed: the test did not test a takeover")
	}
	if len(seen) != n || total != n {
		t.Fatalf("read_committed: %d distinct records of %d, %d in all", len(seen), n, total)
	}
	for i := range n {
		if v := fmt.Sprintf("out-v-%05d", i); seen[v] != 1 {
			t.Fatalf("%s seen %d times", v, seen[v])
		}
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	check := client(t, addr)
	offs, err := committedOffsets(ctx2, check, grp)
	if err != nil {
		t.Fatal(err)
	}
	ends := latestOffsets(t, ctx2, check, in, 0, 1, 2)
	sum := int64(0)
	for p, end := range ends {
		sum += end
		if end > 0 && offs[p] != end {
			t.Fatalf("the group's committed offset of partition %d is %d, want %d (the input's end); all: %v", p, offs[p], end, offs)
		}
	}
	if sum != n {
		t.Fatalf("the input partitions end at %v, want %d records in all", ends, n)
	}
	unc := readAll(t, ctx2, addr, out, false)
	poisoned := 0
	for _, v := range unc {
		if strings.HasPrefix(v, "poison-") {
			poisoned++
		}
	}
	if poisoned != 10 || len(unc) <= n {
		t.Fatalf("read_uncommitted: %d records, %d of the aborted transaction; want more than %d, 10 of them", len(unc), poisoned, n)
	}
}

// A transactional batch the coordinator refuses (its partition was not
// added to the transaction) is answered with the refusal, on the
// connection's first Produce too, and the server goes on serving: such a
// refusal once panicked, filling a response that was not set up yet.
func TestTransactionalProduceRefused(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: refused, partitions: 2}
`)
	const tid, topic = "refused-producer", "refused"
	pid, epoch := dialKafka(t, addr).initProducer(tid)
	for i := range 2 {
		pc := dialKafka(t, addr) // a new connection: its first Produce
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for p := range int32(2) {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = p, txnBatch(pid, epoch, 0, "not added")
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrProduceResponse()
		pc.do(req, resp, 7)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("round %d: answer %+v", i, resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != kerr.InvalidTxnState.Code {
				t.Fatalf("round %d: partition %d answered %v, want INVALID_TXN_STATE", i, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
}
