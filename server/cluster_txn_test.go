package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/sensetest"
)

// Kafka transactions in a cluster of three: the coordinator is the leader
// of the replicated committed offsets, the markers go to each partition's
// leader, wherever it is. A committed transaction over three partitions is
// read back by read_committed, an aborted one is not. kadm describes and
// lists the transactional id (checkClusterTxnAdmin). At transaction
// version 2 (the default) franz-go sends no AddPartitionsToTxn: each
// partition's leader adds its partition at the coordinator (a cluster
// request when it is another node, which at least one of the three
// partitions' leaders is), and every EndTxn bumps the epoch; at version 1
// the client adds them itself and the epoch stays.
func TestClusterKafkaTransactions(t *testing.T) {
	for _, tv := range []int{2, 1} {
		t.Run(fmt.Sprintf("tv%d", tv), func(t *testing.T) { clusterKafkaTransactions(t, tv) })
	}
}

// apiCounter counts the requests a kgo client writes, by API key.
type apiCounter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (c *apiCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
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

func (c *apiCounter) count(key kmsg.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[int16(key)]
}

func clusterKafkaTransactions(t *testing.T, tv int) {
	body := strings.Replace(kafkaClusterBody, "kafka: {group_initial_rebalance_delay: 0s}",
		fmt.Sprintf("kafka: {group_initial_rebalance_delay: 0s, transaction_version: %d}", tv), 1)
	// The test needs a partition led by another node than the transaction
	// coordinator's (an add that goes through the cluster). On a loaded
	// machine one node sometimes wins every election: then the cluster is
	// stopped and another one started (at most five).
	var c *sensetest.Cluster
	for try := 0; ; try++ {
		c = sensetest.StartCluster(t, 3, body)
		leaders := map[int]bool{}
		for p := range int32(3) {
			l := c.Leader("payments", p, 30*time.Second)
			if l < 0 {
				t.Fatalf("partition %d has no leader after 30s", p)
			}
			leaders[l] = true
		}
		coord := groupLeader(t, c, "__offsets")
		delete(leaders, coord)
		if len(leaders) > 0 {
			break
		}
		if try == 4 {
			t.Fatalf("every partition led by the coordinator in %d clusters in a row", try+1)
		}
		t.Logf("every partition is led by n%d, the coordinator: another cluster", coord+1)
		for i := range 3 {
			c.Stop(i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	counter := &apiCounter{}
	p, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.TransactionalID("cluster-txn"),
		kgo.DefaultProduceTopic("payments"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(time.Minute),
		kgo.WithHooks(counter))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var epochs []int16
	for _, commit := range []bool{true, false} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 9 {
			r := &kgo.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, "%v-%d", commit, i)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end (commit %v): %v", commit, err)
		}
		_, epoch, err := p.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, epoch)
	}
	adds := counter.count(kmsg.AddPartitionsToTxn)
	switch {
	case tv == 2 && adds != 0:
		t.Errorf("the producer sent %d AddPartitionsToTxn; at transaction version 2 the produce adds the partition", adds)
	case tv == 2 && epochs[1] != epochs[0]+1:
		t.Errorf("epochs after each transaction %v: want one more each time", epochs)
	case tv == 1 && adds == 0:
		t.Error("the producer sent no AddPartitionsToTxn at transaction version 1")
	case tv == 1 && epochs[1] != epochs[0]:
		t.Errorf("epochs after each transaction %v: want the same at transaction version 1", epochs)
	}
	checkClusterTxnAdmin(t, ctx, p)
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.ConsumeTopics("payments"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for len(got) < 9 && ctx.Err() == nil {
		fs := rd.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Anything more (an aborted record) would come in the same fetches.
	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	rd.PollFetches(wctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	wcancel()
	slices.Sort(got)
	var want []string
	for i := range 9 {
		want = append(want, fmt.Sprintf("true-%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
}

// checkClusterTxnAdmin: kadm describes the transactional id at its
// coordinator and lists it once, merged over every node; a node that
// does not coordinate answers DescribeTransactions NOT_COORDINATOR and
// ListTransactions with no id, as a Kafka broker that leads none of the
// id's transaction log partitions.
func checkClusterTxnAdmin(t *testing.T, ctx context.Context, cl *kgo.Client) {
	t.Helper()
	adm := kadm.NewClient(cl)
	described, err := adm.DescribeTransactions(ctx, "cluster-txn")
	if err != nil {
		t.Fatal(err)
	}
	d := described["cluster-txn"]
	if d.Err != nil || d.State != "CompleteAbort" {
		t.Fatalf("described %+v, want CompleteAbort", d)
	}
	listed, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := listed["cluster-txn"]; len(listed) != 1 || !ok || l.Coordinator != d.Coordinator || l.ProducerID != d.ProducerID {
		t.Fatalf("listed %+v, want cluster-txn once, at broker %d", listed, d.Coordinator)
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, b := range brokers {
		if b.NodeID == d.Coordinator {
			continue
		}
		others++
		dreq := kmsg.NewPtrDescribeTransactionsRequest()
		dreq.TransactionalIDs = []string{"cluster-txn"}
		kr, err := cl.Broker(int(b.NodeID)).Request(ctx, dreq)
		if err != nil {
			t.Fatal(err)
		}
		if st := kr.(*kmsg.DescribeTransactionsResponse).TransactionStates; len(st) != 1 || st[0].ErrorCode != kerr.NotCoordinator.Code {
			t.Errorf("broker %d described %+v, want NOT_COORDINATOR", b.NodeID, st)
		}
		kr, err = cl.Broker(int(b.NodeID)).Request(ctx, kmsg.NewPtrListTransactionsRequest())
		if err != nil {
			t.Fatal(err)
		}
		if lr := kr.(*kmsg.ListTransactionsResponse); lr.ErrorCode != 0 || len(lr.TransactionStates) != 0 {
			t.Errorf("broker %d listed %+v, want nothing", b.NodeID, lr)
		}
	}
	if others != 2 {
		t.Errorf("%d brokers besides the coordinator, want 2", others)
	}
}

// TestClusterKafkaTransactionCoordinatorStops: a franz-go transaction of
// version 2 has stored records in three partitions when the node that
// coordinates transactions stops. As at a Kafka coordinator's failover,
// the transaction goes on at the new coordinator: the producer's commit
// succeeds there, read_committed sees every record of it, the producer's
// next transaction commits, and nothing is left open (read_committed
// reaches the next transaction's records). The same when the coordinator
// is cut off from the other nodes instead (its Kafka listener still
// answers clients; it can no longer write its log).
func TestClusterKafkaTransactionCoordinatorStops(t *testing.T) {
	t.Run("stopped", func(t *testing.T) { coordinatorStops(t, false) })
	t.Run("cut-off", func(t *testing.T) { coordinatorStops(t, true) })
}

func coordinatorStops(t *testing.T, cut bool) {
	c := sensetest.StartCluster(t, 3, kafkaClusterBody, sensetest.WithLinks())
	for p := range int32(3) {
		if c.Leader("payments", p, 30*time.Second) < 0 {
			t.Fatalf("partition %d has no leader after 30s", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	producer := func() *kgo.Client {
		p, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.TransactionalID("failover-txn"),
			kgo.DefaultProduceTopic("payments"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := producer()
	defer p.Close()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, "cut-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	coord := groupLeader(t, c, "__offsets")
	waitKafkaBrokers(ctx, t, c)
	if cut {
		c.Isolate(coord)
	} else {
		c.Stop(coord)
	}
	endCtx, endCancel := context.WithTimeout(ctx, time.Minute)
	endErr := p.EndTransaction(endCtx, kgo.TryCommit)
	endCancel()
	if endErr != nil {
		t.Fatalf("n%d, the coordinator, stopped or cut off (%v); the commit at the new coordinator: %v", coord+1, cut, endErr)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: int32(i), Value: fmt.Appendf(nil, "next-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce after the failover: %v", err)
		}
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after the failover: %v", err)
	}
	var alive []string
	for i, addr := range c.KafkaAddrs() {
		if i != coord {
			alive = append(alive, addr)
		}
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(alive...), kgo.ConsumeTopics("payments"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	first, next := 0, 0
	for next < 3 && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			switch {
			case strings.HasPrefix(string(r.Value), "cut-"):
				first++
			case strings.HasPrefix(string(r.Value), "next-"):
				next++
			}
		})
	}
	if next != 3 {
		t.Fatalf("read_committed saw %d of the next transaction's 3 records: the cut transaction is left open", next)
	}
	if first != 9 {
		t.Fatalf("the commit succeeded, and read_committed sees %d of its 9 records", first)
	}
}

// TestClusterOffsetCommitCoordinatorCutOff: the node that coordinates
// consumer groups is cut off from the other two right before a group's
// offsets are committed. The commit it was asked for cannot be written;
// it answers NOT_COORDINATOR (not UNKNOWN_SERVER_ERROR, which clients do
// not retry), so the client commits at the new coordinator, where the
// offsets then read back.
func TestClusterOffsetCommitCoordinatorCutOff(t *testing.T) {
	c := sensetest.StartCluster(t, 3, kafkaClusterBody, sensetest.WithLinks())
	for p := range int32(3) {
		if c.Leader("payments", p, 30*time.Second) < 0 {
			t.Fatalf("partition %d has no leader after 30s", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.RetryTimeout(time.Minute), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offsets := func(at int64) kadm.Offsets {
		var os kadm.Offsets
		for p := range int32(3) {
			os.Add(kadm.Offset{Topic: "payments", Partition: p, At: at + int64(p), LeaderEpoch: -1})
		}
		return os
	}
	// A first commit finds the coordinator.
	if err := adm.CommitAllOffsets(ctx, "cut-group", offsets(10)); err != nil {
		t.Fatal(err)
	}
	coord := groupLeader(t, c, "__offsets")
	waitKafkaBrokers(ctx, t, c)
	c.Isolate(coord)
	if err := adm.CommitAllOffsets(ctx, "cut-group", offsets(20)); err != nil {
		t.Fatalf("n%d, the coordinator, cut off; the commit: %v", coord+1, err)
	}
	got, err := adm.FetchOffsets(ctx, "cut-group")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		o, ok := got.Lookup("payments", p)
		if !ok || o.Err != nil || o.At != 20+int64(p) {
			t.Fatalf("partition %d: fetched %+v (found %v), want %d", p, o, ok, 20+p)
		}
	}
}
