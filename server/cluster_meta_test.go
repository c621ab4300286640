package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
func adminAt(t *testing.T, c *sensetest.Cluster, i int, req admin.Request) (admin.Response, error) {
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
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := adminAt(t, c, 0, admin.ClusterStatus{})
		if err == nil {
			for _, b := range resp.Cluster.Buffers {
				if b.Key == "__meta" && b.Leader != "" {
					var i int
					fmt.Sscanf(b.Leader, "n%d", &i)
					return i - 1
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no metadata leader within 20s")
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
