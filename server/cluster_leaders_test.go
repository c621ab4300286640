package server_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/sensetest"
)

// leaderTerm is a buffer's leader and raft term.
type leaderTerm struct {
	leader string
	term   uint64
}

// leaderViews asks every running node of c for its cluster status and
// returns, per buffer, the live leader (the node that says it leads it;
// the highest term wins if two do), each node's record of the cluster
// metadata's leaders (nil for a stopped node), and each node's routing
// table version.
func leaderViews(t *testing.T, c *sensetest.Cluster) (live map[string]leaderTerm, metas []map[string]leaderTerm, versions []uint64) {
	t.Helper()
	live = map[string]leaderTerm{}
	metas = make([]map[string]leaderTerm, len(c.Nodes))
	versions = make([]uint64, len(c.Nodes))
	for i, s := range c.Nodes {
		if s == nil {
			continue
		}
		resp, err := adminAt(t, c, i, admin.ClusterStatus{})
		if err != nil || resp.Cluster == nil {
			t.Fatalf("cluster status of n%d: %v", i+1, err)
		}
		ci := resp.Cluster
		metas[i] = map[string]leaderTerm{}
		for _, b := range ci.Buffers {
			if b.Key == "__meta" || b.Key == "__offsets" {
				continue
			}
			if b.MetaLeader != "" {
				metas[i][b.Key] = leaderTerm{b.MetaLeader, b.MetaTerm}
			}
			if b.Held && b.Leader == ci.Self && b.Term > live[b.Key].term {
				live[b.Key] = leaderTerm{b.Leader, b.Term}
			}
		}
		for _, nd := range ci.Nodes {
			if nd.ID == ci.Self {
				versions[i] = nd.TableVersion
			}
		}
	}
	return live, metas, versions
}

// kafkaLeaders asks node i's Kafka listener for the metadata of a topic
// and returns each partition's leader (broker id), leader epoch and error.
func kafkaLeaders(ctx context.Context, t *testing.T, c *sensetest.Cluster, i int, topic string) map[int32]kmsg.MetadataResponseTopicPartition {
	t.Helper()
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()[i]))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := kc.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatalf("Kafka Metadata from n%d: %v", i+1, err)
	}
	out := map[int32]kmsg.MetadataResponseTopicPartition{}
	for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
		for _, p := range tp.Partitions {
			out[p.Partition] = p
		}
	}
	return out
}

// waitKafkaBrokers waits until every node's Kafka Metadata lists every
// node as a broker. A node names a peer to Kafka clients once it has heard
// the peer's NodeInfo (every 500 ms, cluster.Members): a test that cuts a
// node off right after the cluster starts could otherwise leave it with a
// broker list that lacks the node a client is then sent to.
func waitKafkaBrokers(ctx context.Context, t *testing.T, c *sensetest.Cluster) {
	t.Helper()
	addrs := c.KafkaAddrs()
	for i, addr := range addrs {
		kc, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := kc.SeedBrokers()[0].Request(ctx, kmsg.NewPtrMetadataRequest())
			if err == nil && len(resp.(*kmsg.MetadataResponse).Brokers) == len(addrs) {
				break
			}
			if ctx.Err() != nil {
				kc.Close()
				t.Fatalf("n%d's Kafka Metadata does not list all %d nodes: %v", i+1, len(addrs), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		kc.Close()
	}
}

// TestClusterLeadersInMetadata: every buffer's leader reports itself to
// the cluster metadata: within a bounded wait every node's metadata names
// each buffer's live leader and term; Kafka Metadata on a node that holds
// no replica of a buffer names that leader and its term as the epoch (and
// no leader once that node is down); an idle cluster writes nothing to
// the metadata log; after the leader of a buffer stops, the new leader
// appears in the metadata with a higher term.
func TestClusterLeadersInMetadata(t *testing.T) {
	// tangier has a replica on every node; dakar's only replica is n3, so
	// n1 and n2 know its leader from the metadata alone.
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN, nodes: [n3]}
pipelines: [{name: payments, partitions: 1}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parts, _ := c.Nodes[0].Node.Partitions("payments")
	if len(parts) != 6 {
		t.Fatalf("payments has %d partitions, want 6 (2 hubs x 3 lanes)", len(parts))
	}
	keys := map[string]int32{} // buffer key -> Kafka partition
	hub := map[string]string{}
	for _, p := range parts {
		k := fmt.Sprintf("payments/%s/%d", p.Hub, p.Partition)
		keys[k], hub[k] = p.Partition, p.Hub
	}

	// agreed waits until every running node's metadata names the live
	// leader of every buffer that has one, and every buffer but those in
	// leaderless has one; it returns the live leaders.
	agreed := func(what string, leaderless map[string]bool) map[string]leaderTerm {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			live, metas, _ := leaderViews(t, c)
			why := ""
			for k := range keys {
				l, ok := live[k]
				if ok == leaderless[k] {
					why = fmt.Sprintf("%s: live leader %+v, want one: %v", k, l, !leaderless[k])
					break
				}
				for i, m := range metas {
					if m != nil && ok && m[k] != l {
						why = fmt.Sprintf("n%d's metadata says %s is led by %+v, live %+v", i+1, k, m[k], l)
					}
				}
			}
			if why == "" {
				return live
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not so after 30s: %s", what, why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	live := agreed("after start", nil)

	// n1 holds no replica of dakar's buffers: its Kafka Metadata names
	// n3 (broker 2) with the term the metadata recorded.
	for deadline := time.Now().Add(20 * time.Second); ; {
		md := kafkaLeaders(ctx, t, c, 0, "payments")
		why := ""
		for k, p := range keys {
			if hub[k] != "dakar" {
				continue
			}
			if mp := md[p]; mp.ErrorCode != 0 || mp.Leader != 2 || uint64(mp.LeaderEpoch) != live[k].term {
				why = fmt.Sprintf("partition %d (%s): leader %d epoch %d error %d, want broker 2 epoch %d", p, k, mp.Leader, mp.LeaderEpoch, mp.ErrorCode, live[k].term)
			}
		}
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kafka Metadata from n1 after 20s: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Idle: while no leader changes, the metadata log stays as it is.
	for attempt := 0; ; attempt++ {
		live0, _, v0 := leaderViews(t, c)
		time.Sleep(2 * time.Second) // four rounds of reports
		live1, _, v1 := leaderViews(t, c)
		if !maps.Equal(live0, live1) && attempt < 3 {
			continue // an election meanwhile (a loaded machine): look again
		}
		for i := range v0 {
			if v0[i] != v1[i] {
				t.Fatalf("idle cluster: table versions went from %v to %v (leaders %v -> %v)", v0, v1, live0, live1)
			}
		}
		break
	}

	// The leader of tangier's first buffer stops; another takes over at a
	// higher term and the metadata follows.
	var key string
	for k := range keys {
		if hub[k] == "tangier" && (key == "" || k < key) {
			key = k
		}
	}
	old := live[key]
	var stopped int
	fmt.Sscanf(old.leader, "n%d", &stopped)
	stopped--
	t.Logf("stopping %s, which leads %s at term %d", old.leader, key, old.term)
	c.Stop(stopped)
	leaderless := map[string]bool{}
	if stopped == 2 {
		for k := range keys {
			leaderless[k] = hub[k] == "dakar" // its only replica is down
		}
	}
	live = agreed(fmt.Sprintf("after %s stopped", old.leader), leaderless)
	if nl := live[key]; nl.leader == old.leader || nl.term <= old.term {
		t.Fatalf("%s: led by %+v before %s stopped, by %+v after", key, old, old.leader, nl)
	}
	if stopped == 2 {
		// dakar's leader is down: n1 says so rather than naming it.
		for deadline := time.Now().Add(20 * time.Second); ; {
			md := kafkaLeaders(ctx, t, c, 0, "payments")
			why := ""
			for k, p := range keys {
				if mp := md[p]; hub[k] == "dakar" && (mp.ErrorCode != kerr.LeaderNotAvailable.Code || mp.Leader != -1) {
					why = fmt.Sprintf("partition %d (%s): leader %d error %d, want LEADER_NOT_AVAILABLE", p, k, mp.Leader, mp.ErrorCode)
				}
			}
			if why == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Kafka Metadata from n1 with n3 down, after 20s: %s", why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
