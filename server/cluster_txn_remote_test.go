package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterRemoteReadIsolation: a partition with two replicas of three
// nodes, read through the node that holds none (a remote read). Committed,
// aborted and open transactions are written over Kafka; the committed read
// (Sense's own readers' default) sees only the committed records and
// nothing past the open transaction's first offset, its last stable
// offset as the replicas know it; the uncommitted read sees every record.
// Once the open transaction aborts, the committed read goes on to the
// commit written after it.
func TestClusterRemoteReadIsolation(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: payments, partitions: 1, replication: 2}]
kafka: {group_initial_rebalance_delay: 0s}
`)
	leader := c.Leader("payments", 0, 30*time.Second)
	if leader < 0 {
		t.Fatal("partition 0 has no leader after 30s")
	}
	l, _ := c.Nodes[leader].Node.Leadership("payments", 0)
	far := -1
	for i := range c.Nodes {
		if !slices.Contains(l.Replicas(), c.Config(i).Node.ID) {
			far = i
		}
	}
	if far < 0 {
		t.Fatalf("every node holds a replica of payments/0: %v", l.Replicas())
	}
	remote := c.Nodes[far].Node
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	producer := func(id string) *kgo.Client {
		p, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.TransactionalID(id),
			kgo.DefaultProduceTopic("payments"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	// txn writes n records prefixed by name in one transaction of p and
	// returns the first record's offset; end ends it (commit or abort)
	// unless nil.
	txn := func(p *kgo.Client, name string, n int, end *bool) int64 {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		first := int64(-1)
		for i := range n {
			r, err := p.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: fmt.Appendf(nil, "%s-%d", name, i)}).First()
			if err != nil {
				t.Fatalf("produce %s: %v", name, err)
			}
			if first < 0 {
				first = r.Offset
			}
		}
		if end != nil {
			if err := p.EndTransaction(ctx, kgo.TransactionEndTry(*end)); err != nil {
				t.Fatalf("end %s (commit %v): %v", name, *end, err)
			}
		}
		return first
	}
	commit, abort := true, false
	committer, aborter, opener := producer("remote-commit"), producer("remote-abort"), producer("remote-open")
	txn(committer, "committed", 3, &commit)
	txn(aborter, "aborted", 3, &abort)
	openFirst := txn(opener, "open", 2, nil)
	txn(committer, "later", 3, &commit)

	// Through the node that holds no replica.
	if lso, code := remote.StableOffset("payments", 0); code != result.OK || lso != openFirst {
		t.Fatalf("last stable offset through n%d: %d, %s; want %d (the open transaction's first offset)", far+1, lso, code, openFirst)
	}
	got, last := readRemote(t, remote, node.ReadCommitted)
	if want := []string{"committed-0", "committed-1", "committed-2"}; !slices.Equal(got, want) {
		t.Fatalf("read committed through n%d: %v, want %v", far+1, got, want)
	}
	if last >= openFirst {
		t.Fatalf("read committed through n%d reached offset %d, past the open transaction at %d", far+1, last, openFirst)
	}
	got, _ = readRemote(t, remote, node.ReadUncommitted)
	for _, prefix := range []string{"committed-", "aborted-", "open-", "later-"} {
		if n := len(slices.DeleteFunc(slices.Clone(got), func(v string) bool { return !strings.HasPrefix(v, prefix) })); n == 0 {
			t.Fatalf("read uncommitted through n%d: %v, no %s records", far+1, got, prefix)
		}
	}
	if len(got) != 11 {
		t.Fatalf("read uncommitted through n%d: %d records %v, want 11", far+1, len(got), got)
	}

	// The open transaction aborts: the later commit becomes visible.
	if err := opener.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	got, _ = readRemote(t, remote, node.ReadCommitted)
	if want := []string{"committed-0", "committed-1", "committed-2", "later-0", "later-1", "later-2"}; !slices.Equal(got, want) {
		t.Fatalf("read committed through n%d after the abort: %v, want %v", far+1, got, want)
	}
}

// readRemote reads payments/0 through n from its start with iso until a
// read waits a second for nothing, and returns the records' values and the
// last offset of the batches returned.
func readRemote(t *testing.T, n *node.Node, iso node.Isolation) ([]string, int64) {
	t.Helper()
	var got []string
	off, last := node.Earliest, int64(-1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b, at, _, code := n.FetchIsolated(ctx, "payments", 0, off, 1<<20, nil, iso)
		cancel()
		if code != result.OK {
			t.Fatalf("fetch at %d: %s", off, code)
		}
		if len(b) == 0 {
			return got, last
		}
		off = at
		for len(b) > 0 {
			h, err := batch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Attributes&batch.AttrControl == 0 && h.RecordCount > 0 {
				recs, err := batch.Decompress(nil, b[:h.Size()])
				if err != nil {
					t.Fatal(err)
				}
				it, err := batch.NewIterRecords(recs, h.RecordCount)
				if err != nil {
					t.Fatal(err)
				}
				for it.Next() {
					got = append(got, string(it.Record().Value))
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
			off, last = h.NextOffset(), h.NextOffset()-1
			b = b[h.Size():]
		}
	}
}
