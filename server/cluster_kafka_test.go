package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

const kafkaClusterBody = `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: payments, partitions: 1}]
kafka: {group_initial_rebalance_delay: 0s}
`

// TestClusterKafkaFailover: franz-go against three nodes. Metadata names
// every node as a broker and each partition's raft leader; an idempotent
// acks=all producer and a consumer group work; then the node that
// coordinates the group (it leads the replicated committed offsets) stops,
// the producer goes on through the other two, and a new member of the
// group resumes exactly at the committed offsets: nothing consumed twice,
// nothing missing.
func TestClusterKafkaFailover(t *testing.T) {
	c := sensetest.StartCluster(t, 3, kafkaClusterBody)
	for p := range int32(3) {
		if c.Leader("payments", p, 30*time.Second) < 0 {
			t.Fatalf("partition %d has no leader after 30s", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Metadata: three brokers, every partition led by the node whose raft
	// group leads it.
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	var md kadm.Metadata
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err = ka.Metadata(ctx, "payments")
		// A partition between two leaders (an election under way) is
		// named with leader -1, as Kafka names one: read again.
		if err == nil && len(md.Brokers) == 3 && md.Topics["payments"].Err == nil &&
			!slices.ContainsFunc(md.Topics["payments"].Partitions.Sorted(), func(p kadm.PartitionDetail) bool { return p.Leader < 0 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata after 30s: %d brokers, err %v, topic %+v", len(md.Brokers), err, md.Topics["payments"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range md.Brokers {
		if want := c.KafkaAddrs()[b.NodeID]; fmt.Sprintf("%s:%d", b.Host, b.Port) != want {
			t.Fatalf("broker %d at %s:%d, want %s", b.NodeID, b.Host, b.Port, want)
		}
	}
	for _, p := range md.Topics["payments"].Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("partition %d replicas %v, want 3", p.Partition, p.Replicas)
		}
		l, ok := c.Nodes[p.Leader].Node.Leadership("payments", p.Partition)
		if !ok || !l.IsLeader() && p.Leader >= 0 {
			// Leadership may move between the two reads; only a claim that
			// names a non-leader with no election since is wrong.
			if ll := c.Leader("payments", p.Partition, time.Second); ll != int(p.Leader) {
				t.Fatalf("metadata names broker %d leader of partition %d; node n%d leads it", p.Leader, p.Partition, ll+1)
			}
		}
	}

	produce := func(from, n int) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0), kgo.RetryTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var rs []*kgo.Record
		for i := from; i < from+n; i++ {
			rs = append(rs, &kgo.Record{Topic: "payments", Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i))})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce %d..%d: %v", from, from+n-1, err)
		}
	}
	consume := func(want int) map[string]int {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("payments"),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		got := map[string]int{}
		n := 0
		for n < want {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d records before the deadline", n, want)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				got[string(r.Value)]++
				n++
			})
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		// Nothing more than wanted: a short extra poll finds nothing.
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer pcancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
		return got
	}
	check := func(got map[string]int, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if got[strconv.Itoa(i)] != 1 {
				t.Fatalf("record %d consumed %d times, want once", i, got[strconv.Itoa(i)])
			}
		}
		if len(got) != n {
			t.Fatalf("consumed %d distinct records, want %d (%d..%d)", len(got), n, from, from+n-1)
		}
	}

	produce(0, 300)
	check(consume(300), 0, 300)

	// Stop the group's coordinator: the leader of the committed offsets.
	cs := ka.FindGroupCoordinators(ctx, "g1")
	coord := -1
	cs.Each(func(r kadm.FindCoordinatorResponse) {
		if r.Err == nil {
			coord = int(r.NodeID)
		}
	})
	if coord < 0 {
		t.Fatalf("no coordinator for g1: %+v", cs)
	}
	adm.Close()
	c.Stop(coord)

	produce(300, 300)
	check(consume(300), 300, 300)

	// The node comes back and catches up; the group stays where it was.
	c.Start(coord)
	produce(600, 50)
	check(consume(50), 600, 50)
}

// TestClusterNoEventByteOutsideHub: hub tangier (MA) is on n1 and n2, hub
// dakar (SN) on n3 alone. 4 MiB of MA-only events produced through n1 are
// replicated to n2, and n3, outside their jurisdiction, receives none of
// their bytes: what reaches it from n1 and n2 over the whole run (raft
// traffic of the committed offsets and of dakar's own buffers, node info)
// stays far below the events' size, while n2 receives at least all of it.
func TestClusterNoEventByteOutsideHub(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA, nodes: [n1, n2]}
  - {name: dakar, jurisdiction: SN, nodes: [n3]}
pipelines: [{name: payments, partitions: 1, default_jurisdiction: MA}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recv := func(at int, from ...string) uint64 {
		var sum uint64
		for _, ps := range c.Nodes[at].PeerStats() {
			if slices.Contains(from, ps.ID) {
				sum += ps.RecvBytes
			}
		}
		return sum
	}
	// First the links to n3 carry their usual traffic (node info, the
	// committed offsets' raft group), so that the count below is of a
	// working link, not of one not dialed yet.
	for deadline := time.Now().Add(30 * time.Second); ; {
		heard := 0
		for _, ps := range c.Nodes[2].PeerStats() {
			if ps.RecvFrames > 0 {
				heard++
			}
		}
		if heard == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 heard from %d of n1 and n2 within 30s", heard)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n3Before, n2Before := recv(2, "n1", "n2"), recv(1, "n1")
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments", MaxRetries: 50})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 4096, 1024
	value := bytes.Repeat([]byte("m"), size)
	var mu sync.Mutex
	acked, errs := 0, []error{}
	for i := range n {
		p.Send(client.Event{Key: []byte(strconv.Itoa(i)), Value: value}, func(r client.Result) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil {
				errs = append(errs, r.Err)
				return
			}
			acked++
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if acked != n {
		t.Fatalf("%d of %d events acknowledged; errors %v", acked, n, errs)
	}
	mu.Unlock()
	events := uint64(n * size)
	if got := recv(1, "n1") - n2Before; got < events {
		t.Fatalf("n2, a tangier replica, received %d bytes from n1 meanwhile; the events alone are %d", got, events)
	}
	if got := recv(2, "n1", "n2") - n3Before; got >= events/8 {
		t.Fatalf("n3 (dakar, SN) received %d bytes from tangier's nodes while %d bytes of MA-only events were produced: event bytes left their jurisdiction", got, events)
	}
	t.Logf("while producing, n2 received %d bytes from n1 and n3 %d from n1 and n2 (events: %d)", recv(1, "n1")-n2Before, recv(2, "n1", "n2")-n3Before, events)
}

// TestClusterDeleteRecords: DeleteRecords (kadm) against three nodes, up
// to the high watermark of a replicated partition: the leader answers the
// new start, and every replica's start moves there (the trim is a raft
// entry), so a consumer from the start of any node reads nothing older.
func TestClusterDeleteRecords(t *testing.T) {
	c := sensetest.StartCluster(t, 3, kafkaClusterBody)
	if c.Leader("payments", 0, 30*time.Second) < 0 {
		t.Fatal("partition 0 has no leader after 30s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range 50 {
		rs = append(rs, &kgo.Record{Topic: "payments", Partition: 0, Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The end: 50 records, and the control batches raft's own entries
	// take offsets for.
	var end kadm.ListedOffset
	for i := 0; ; i++ { // a partition between leaders is named LEADER_NOT_AVAILABLE: read again
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "payments")
		if err == nil && ends.Error() == nil {
			end, _ = ends.Lookup("payments", 0)
			break
		}
		if i == 100 {
			t.Fatalf("list end offsets: %v %v", err, ends.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if end.Offset < 50 {
		t.Fatalf("partition 0 ends at %d after 50 records", end.Offset)
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "payments", Partition: 0, At: -1, LeaderEpoch: -1})
	var r kadm.DeleteRecordsResponse
	for i := 0; ; i++ { // a follower still catching up answers REQUEST_TIMED_OUT: retried
		resp, err := kadm.NewClient(cl).DeleteRecords(ctx, os)
		if err == nil {
			r, _ = resp.Lookup("payments", 0)
			if r.Err == nil {
				break
			}
		}
		if i == 100 {
			t.Fatalf("delete records: %v %v", err, r.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.LowWatermark != end.Offset {
		t.Fatalf("low watermark %d after deleting to the high watermark, want %d", r.LowWatermark, end.Offset)
	}
	for i, n := range c.Nodes {
		for try := 0; ; try++ {
			start, hw, code := n.Node.Offsets("payments", 0)
			// The trim is itself an entry of the log: the high watermark
			// passes it.
			if code == result.OK && start == end.Offset && hw > start {
				break
			}
			if try == 100 {
				t.Fatalf("n%d: start %d, high watermark %d (%v); want the start at %d", i+1, start, hw, code, end.Offset)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
