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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// threeHubs is the cluster of the sovereignty tests: two hubs of MA and one
// of SN, each on all three nodes.
const sovereignHubs = `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakhla, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
pipelines: [{name: payments, partitions: 1}]
`

// adminAt runs one admin request on node i of c.
func adminAt(t testing.TB, c *sensetest.Cluster, i int, req admin.Request) (admin.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
	if err != nil {
		t.Fatalf("dial n%d: %v", i+1, err)
	}
	defer cl.Close()
	return cl.Admin(ctx, req)
}

// waitTables waits until every node routes with a table of version at
// least v and returns their hubs as each sees them.
func waitTables(t *testing.T, c *sensetest.Cluster, v uint64) [][]admin.HubInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	out := make([][]admin.HubInfo, len(c.Nodes))
	for i := range c.Nodes {
		for {
			resp, err := adminAt(t, c, i, admin.ListHubs{})
			if err == nil && resp.TableVersion >= v {
				out[i] = resp.Hubs
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d does not route with table version %d within 20s: %+v, %v", i+1, v, resp, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

// metaLeader returns the index of the node that leads the metadata log.
func metaLeader(t *testing.T, c *sensetest.Cluster) int {
	t.Helper()
	return groupLeader(t, c, "__meta")
}

// groupLeader returns the index of the node that leads the raft group key.
func groupLeader(t *testing.T, c *sensetest.Cluster, key string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := adminAt(t, c, 0, admin.ClusterStatus{})
		if err == nil {
			for _, b := range resp.Cluster.Buffers {
				if b.Key == key && b.Leader != "" {
					var i int
					fmt.Sscanf(b.Leader, "n%d", &i)
					return i - 1
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader of %s within 20s", key)
	return -1
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func deniedIn(hubs []admin.HubInfo, hub, pipeline string) bool {
	for _, h := range hubs {
		if h.Name == hub {
			return slices.Contains(h.Deny, pipeline)
		}
	}
	return false
}

// hubOf returns the hub of a pipeline's partition, from the node's layout.
func hubOf(t *testing.T, c *sensetest.Cluster, i int, pipeline string) map[int32]string {
	t.Helper()
	resp, err := adminAt(t, c, i, admin.DescribePipeline{Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]string{}
	for _, l := range resp.Layout {
		out[l.Partition] = l.Hub
	}
	return out
}

// TestClusterMetadataRouting: a hub policy changed on one node reaches
// every node's routing table through the metadata log; events produced on
// any node then avoid the hub, Kafka writes to its partitions are refused
// with POLICY_VIOLATION naming hub and policy, and an unknown hub is
// refused with the hubs named.
func TestClusterMetadataRouting(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	seeded := waitTables(t, c, 1)
	for i, hubs := range seeded {
		if len(hubs) != 3 || deniedIn(hubs, "tangier", "payments") {
			t.Fatalf("n%d after seeding: %+v", i+1, hubs)
		}
	}
	resp, err := adminAt(t, c, 1, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	if !deniedIn(resp.Hubs, "tangier", "payments") {
		t.Fatalf("n2 answered the policy change with %+v: it must route with it when it answers", resp.Hubs)
	}
	for i, hubs := range waitTables(t, c, resp.TableVersion) {
		if !deniedIn(hubs, "tangier", "payments") {
			t.Fatalf("n%d routes with table version >= %d but does not deny payments in tangier: %+v", i+1, resp.TableVersion, hubs)
		}
	}

	// Every MA event produced on any node lands in dakhla.
	hubs := hubOf(t, c, 0, "payments")
	for i := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := cl.Registry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ma, err := reg.Parse("MA")
		if err != nil {
			t.Fatal(err)
		}
		p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
		if err != nil {
			t.Fatal(err)
		}
		for k := range 50 {
			for _, prio := range []event.Priority{event.Low, event.Critical} {
				r := p.Produce(ctx, client.Event{Key: fmt.Appendf(nil, "k%d", k), Value: []byte("v"), Mask: ma, HasPriority: true, Priority: prio})
				if r.Err != nil {
					t.Fatalf("n%d: %v", i+1, r.Err)
				}
				if h := hubs[r.Partition]; h != "dakhla" {
					t.Fatalf("an MA event produced on n%d went to partition %d in hub %s; tangier denies payments, dakar is SN", i+1, r.Partition, h)
				}
			}
		}
		p.Close()
		cl.Close()
		cancel()
	}

	// A Kafka producer's batch for a tangier partition is refused.
	for part, h := range hubs {
		if h != "tangier" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, code, why := c.Nodes[0].Node.AppendRaw(ctx, "payments", part, kafkaBatch())
		cancel()
		if code != result.PolicyViolation || !containsAll(why, "tangier", "payments", "policy") {
			t.Fatalf("Kafka batch for tangier partition %d: %s %q; want POLICY_VIOLATION naming the hub, the pipeline and the policy", part, code, why)
		}
	}

	if _, err := adminAt(t, c, 2, admin.SetHubStatus{Hub: "nope", Status: "down"}); result.CodeOf(err) != result.InvalidRequest || !containsAll(err.Error(), "nope", "tangier") {
		t.Fatalf("status of an unknown hub: %v; want INVALID_REQUEST naming it and the hubs", err)
	}
}

// TestClusterStaleNodeRefuses: a follower of the metadata log is cut off
// from the others, and the two that still form a majority commit a change.
// Every node then either routes with the change or refuses new events
// (NOT_READY), within a bounded time: none routes by a table that misses a
// committed change. Once its links heal, every node routes with the change
// and takes events.
func TestClusterStaleNodeRefuses(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs, sensetest.WithLinks())
	resp, err := adminAt(t, c, 0, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	waitTables(t, c, resp.TableVersion)
	l := metaLeader(t, c)
	x, y := (l+1)%3, (l+2)%3
	for i := range c.Nodes {
		if f := c.Nodes[i].Node.Fenced(); f != "" {
			t.Fatalf("n%d refuses events before any fault: %s", i+1, f)
		}
	}
	c.Isolate(x)
	// The change n<x> misses: tangier may hold payments again.
	var v2 uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := adminAt(t, c, y, admin.SetHubPolicy{Hub: "tangier", Allow: []string{"payments"}})
		if err == nil {
			v2 = resp.TableVersion
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no change committed within 30s of the cut: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := []wireEvent{{key: "k", value: "v"}}
	behind := 0
	for i := range c.Nodes {
		deadline := time.Now().Add(15 * time.Second)
		for {
			got, err := adminAt(t, c, i, admin.ListHubs{})
			if err != nil {
				t.Fatal(err)
			}
			if got.TableVersion >= v2 {
				break
			}
			if c.Nodes[i].Node.Fenced() != "" {
				behind++
				if code := produceDirect(ctx, t, c.Nodes[i], "payments", ev)[0]; code != result.NotReady {
					t.Fatalf("n%d routes with version %d < %d and is fenced, yet an event produced on it got %s, want NOT_READY", i+1, got.TableVersion, v2, code)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d routes with version %d, misses the committed change of version %d, and still takes events 15s later", i+1, got.TableVersion, v2)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if behind != 1 {
		t.Fatalf("%d nodes missed the change; the cut-off n%d alone should have", behind, x+1)
	}
	c.Rejoin(x)
	for i, hubs := range waitTables(t, c, v2) {
		if deniedIn(hubs, "tangier", "payments") {
			t.Fatalf("n%d routes with version >= %d but still denies payments in tangier", i+1, v2)
		}
	}
	for i := range c.Nodes {
		deadline := time.Now().Add(15 * time.Second)
		for c.Nodes[i].Node.Fenced() != "" {
			if time.Now().After(deadline) {
				t.Fatalf("n%d still refuses events 15s after the link healed: %s", i+1, c.Nodes[i].Node.Fenced())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Buffers' leaders may still be settling: retriable codes are
		// retried, for a bounded time.
		for {
			code := produceDirect(ctx, t, c.Nodes[i], "payments", ev)[0]
			if code == result.OK {
				break
			}
			if !code.Retriable() || time.Now().After(deadline) {
				t.Fatalf("an event produced on n%d after the heal: %s", i+1, code)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

type wireEvent struct{ key, value string }

// produceDirect produces events through the node's own produce path and
// returns each one's result code.
func produceDirect(ctx context.Context, t *testing.T, s *server.Server, pipeline string, evs []wireEvent) []result.Code {
	t.Helper()
	req := &node.ProduceRequest{Pipeline: pipeline, ProducerID: -1}
	for _, e := range evs {
		req.Events = append(req.Events, node.Event{Key: []byte(e.key), Value: []byte(e.value)})
	}
	res := make([]node.Result, len(evs))
	if err := s.Node.Produce(ctx, req, res); err != nil {
		t.Fatal(err)
	}
	out := make([]result.Code, len(res))
	for i, r := range res {
		out[i] = r.Code
	}
	return out
}

// BenchmarkRoutingPropagation: hub policy changes, each proposed on the
// next of three in-process nodes in turn and waited for, then, per change,
// the time from the first node routing with it (the metadata leader, which
// applies a change as it commits it) to the last, and from its proposal to
// the last. Run with -benchtime=100x for the closing figure of 100 changes.
func BenchmarkRoutingPropagation(b *testing.B) {
	c := sensetest.StartCluster(b, 3, sovereignHubs)
	ctx := context.Background()
	var clients []*client.Client
	for i := range c.Nodes {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		clients = append(clients, cl)
	}
	if _, err := clients[0].Admin(ctx, admin.SetHubStatus{Hub: "dakar", Status: "up"}); err != nil {
		b.Fatal(err)
	}
	versions := make([]uint64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}}
		if i%2 == 1 {
			req = admin.SetHubPolicy{Hub: "tangier", Allow: []string{"payments"}}
		}
		resp, err := clients[i%3].Admin(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		versions = append(versions, resp.TableVersion)
	}
	b.StopTimer()
	last := versions[len(versions)-1]
	var hist [][]server.RoutingChange
	for i, s := range c.Nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			h := s.RoutingHistory()
			if len(h) > 0 && h[len(h)-1].Version >= last {
				hist = append(hist, h)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("n%d does not route with version %d after 10s", i+1, last)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var spread, total []time.Duration
	for _, v := range versions {
		var first, lastAt, proposed time.Time
		for _, h := range hist {
			for _, rc := range h {
				if rc.Version != v {
					continue
				}
				if first.IsZero() || rc.Routed.Before(first) {
					first = rc.Routed
				}
				if rc.Routed.After(lastAt) {
					lastAt = rc.Routed
				}
				proposed = rc.Proposed
			}
		}
		if first.IsZero() {
			continue // out of a node's history
		}
		spread = append(spread, lastAt.Sub(first))
		total = append(total, lastAt.Sub(proposed))
	}
	pct := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(spread, 0.5), "commit-to-all-p50-ms")
	b.ReportMetric(pct(spread, 0.99), "commit-to-all-p99-ms")
	b.ReportMetric(pct(total, 0.5), "proposed-to-all-p50-ms")
	b.ReportMetric(pct(total, 0.99), "proposed-to-all-p99-ms")
	b.ReportMetric(float64(len(spread)), "changes")
}

// TestClusterPipelinesThroughMetadata: pipelines created and deleted at run
// time go through the metadata log to every node: a Kafka CreateTopics on
// one node makes a topic every node serves with the same layout, produced
// to and read back with franz-go; an admin create on another node too; a
// node that was down when a pipeline was deleted deletes it when it comes
// back; a re-created pipeline starts empty.
func TestClusterPipelinesThroughMetadata(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()[0]), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(50))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, "orders"); err != nil {
		t.Fatalf("CreateTopics on n1: %v", err)
	}
	layout := func(i int, name string) []node.Partition {
		parts, code := c.Nodes[i].Node.Partitions(name)
		if code != result.OK {
			return nil
		}
		return parts
	}
	waitAll := func(what string, ok func(i int) bool) {
		t.Helper()
		for i := range c.Nodes {
			deadline := time.Now().Add(20 * time.Second)
			for !ok(i) {
				if time.Now().After(deadline) {
					t.Fatalf("n%d: %s not so after 20s", i+1, what)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	want := layout(0, "orders")
	if len(want) != 3 {
		t.Fatalf("orders on n1 has %d partitions, want 3", len(want))
	}
	waitAll("orders laid out as on n1", func(i int) bool {
		got := layout(i, "orders")
		if len(got) != len(want) {
			return false
		}
		for k := range got {
			if got[k].Buffer != want[k].Buffer {
				t.Fatalf("n%d lays orders out as %+v, n1 as %+v", i+1, got, want)
			}
		}
		return true
	})
	for k := range 30 {
		r := &kgo.Record{Topic: "orders", Partition: int32(k % 3), Value: fmt.Appendf(nil, "o%d", k)}
		if err := kc.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to orders: %v", err)
		}
	}
	if _, err := adminAt(t, c, 1, admin.CreatePipeline{Pipeline: "refunds", Partitions: 1, DefaultJurisdiction: "MA"}); err != nil {
		t.Fatalf("admin create on n2: %v", err)
	}
	waitAll("refunds exists", func(i int) bool { return len(layout(i, "refunds")) == 9 })
	if _, err := adminAt(t, c, 2, admin.CreatePipeline{Pipeline: "refunds"}); result.CodeOf(err) != result.PipelineExists {
		t.Fatalf("creating refunds again on n3: %v, want PIPELINE_EXISTS", err)
	}

	// n3 is down while orders is deleted; it deletes it when back.
	c.Stop(2)
	resp, err := adm.DeleteTopics(ctx, "orders")
	if err != nil || resp["orders"].Err != nil {
		t.Fatalf("DeleteTopics orders: %v %+v", err, resp)
	}
	c.Start(2)
	waitAll("orders gone", func(i int) bool { return layout(i, "orders") == nil })
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, "orders"); err != nil {
		t.Fatalf("CreateTopics orders again: %v", err)
	}
	waitAll("orders back, empty", func(i int) bool {
		parts := layout(i, "orders")
		if len(parts) != 3 {
			return false
		}
		for _, p := range parts {
			if p.HighWatermark != 0 {
				t.Fatalf("n%d: re-created orders partition %d holds offsets up to %d", i+1, p.Partition, p.HighWatermark)
			}
		}
		return true
	})
	// A node restarted keeps what it applied.
	c.Stop(1)
	c.Start(1)
	waitAll("refunds and orders after a restart", func(i int) bool {
		return len(layout(i, "refunds")) == 9 && len(layout(i, "orders")) == 3
	})
}

// TestClusterProducerIDsUnique: producer ids handed out by the three nodes
// of a cluster at once, across a block boundary, never repeat.
func TestClusterProducerIDsUnique(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Go(func() {
			for range 1500 {
				id, err := c.Nodes[i].Node.NewProducerID()
				if err != nil {
					t.Errorf("n%d: %v", i+1, err)
					return
				}
				mu.Lock()
				seen[id]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 4500 {
		for id, k := range seen {
			if k > 1 {
				t.Errorf("producer id %d handed out %d times", id, k)
			}
		}
		t.Fatalf("%d distinct ids of 4500 handed out", len(seen))
	}
}

// TestClusterMetadataLearner: with metadata voters n1, n2, n3, the fourth
// node follows the metadata log as a learner: it routes with every change,
// proposes changes like any node, never leads the log, and the voters go
// on without it.
func TestClusterMetadataLearner(t *testing.T) {
	c := sensetest.StartCluster(t, 4, sovereignHubs, sensetest.WithMetadataVoters("n1", "n2", "n3"))
	resp, err := adminAt(t, c, 3, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	if err != nil {
		t.Fatalf("a change proposed on the learner n4: %v", err)
	}
	waitTables(t, c, resp.TableVersion)
	st, err := adminAt(t, c, 3, admin.ClusterStatus{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.Cluster.Buffers {
		if b.Key == "__meta" && (b.Leader == "n4" || len(b.Replicas) != 4) {
			t.Fatalf("__meta as n4 sees it: %+v; n4 must hold a replica and never lead", b)
		}
	}
	for i := range 3 {
		l := metaLeader(t, c)
		if l == 3 {
			t.Fatal("the learner n4 leads the metadata log")
		}
		c.Stop(l)
		resp, err = adminAt(t, c, 3, admin.SetHubStatus{Hub: "dakhla", Status: []string{"draining", "up"}[i%2]})
		c.Start(l)
		if err != nil {
			t.Fatalf("a change with voter n%d down: %v", l+1, err)
		}
	}
	waitTables(t, c, resp.TableVersion)
	c.Stop(3)
	if _, err := adminAt(t, c, 0, admin.SetHubPolicy{Hub: "tangier", Allow: []string{"payments"}}); err != nil {
		t.Fatalf("a change with the learner down: %v", err)
	}
}
