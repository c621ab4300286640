package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
)

// TestClusterKillCoordinatorMidTransaction: three `sense serve` processes;
// a franz-go transaction (transaction version 2: each partition's leader
// adds its partition at the coordinator) holds records in three
// partitions when the node that coordinates transactions, the leader of
// __offsets found with `sense cluster status --json`, is killed with
// SIGKILL. The producer's commit then succeeds at the new coordinator,
// read_committed sees every record of the transaction and of the next one,
// and nothing else.
func TestClusterKillCoordinatorMidTransaction(t *testing.T) {
	nodes, seeds := startProcessClusterOf(t, `jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: ledger, partitions: 1}]
kafka: {group_initial_rebalance_delay: 0s}
`, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("killed-coordinator"),
		kgo.DefaultProduceTopic("ledger"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RetryTimeout(time.Minute), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var want []string
	txn := func(prefix string, n int, before func()) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			if err := p.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			want = append(want, v)
		}
		before()
		if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit %s: %v", prefix, err)
		}
	}
	killed := -1
	txn("cut", 9, func() {
		killed = leaderIn(t, nodes, "__offsets", -1)
		nodes[killed].kill()
		t.Logf("killed n%d, the coordinator, with a transaction of 9 records open", killed+1)
	})
	txn("next", 3, func() {})
	var alive []string
	for i, s := range seeds {
		if i != killed {
			alive = append(alive, s)
		}
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(alive...), kgo.ConsumeTopics("ledger"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for len(got) < len(want) && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Anything more would come in the same fetches.
	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	rd.PollFetches(wctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	wcancel()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v\nwant %v", got, want)
	}
}

// leaderIn returns the index of the node that leads the raft group key,
// other than skip (-1: any), as a live node's `sense cluster status
// --json` says.
func leaderIn(t *testing.T, nodes []*node, key string, skip int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if i == skip {
				continue
			}
			out, err := n.sense("", "cluster", "status", "--json")
			if err != nil {
				continue
			}
			var ci admin.ClusterInfo
			if err := json.Unmarshal([]byte(out), &ci); err != nil {
				t.Fatalf("cluster status --json printed %q: %v", out, err)
			}
			for _, b := range ci.Buffers {
				var l int
				if b.Key == key && strings.HasPrefix(b.Leader, "n") {
					fmt.Sscanf(b.Leader, "n%d", &l)
					if l-1 != skip {
						return l - 1
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no leader of %s within 30s", key)
	return -1
}
