package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterReadAnywhere: reads work from any node, as produces do. Each
// of tangier's partitions (MA) has one replica, on n1 or n2; dakar (SN) is
// n3 alone and takes no payments. A consumer on any node reads every
// partition, live and from the start, through the node it dialled:
//
//   - n1 and n2 (MA) read each other's partitions whole;
//   - n3 (SN) receives only the records whose mask holds SN: the MA-only
//     records never reach it, in the answers or in the bytes it receives
//     from n1 and n2, and the offsets of what it reads are those of the
//     records on the replicas.
func TestClusterReadAnywhere(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA, nodes: [n1, n2]}
  - {name: dakar, jurisdiction: SN, nodes: [n3], policy: {deny_pipelines: [payments]}}
pipelines: [{name: payments, partitions: 4, replication: 1}]
`)
	recvFrom12 := func() uint64 {
		var sum uint64
		for _, ps := range c.Nodes[2].PeerStats() {
			if ps.ID == "n1" || ps.ID == "n2" {
				sum += ps.RecvBytes
			}
		}
		return sum
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Consumers that start at the end before anything is produced: they
	// wait on the replicas, through their node.
	live := make([]*client.Consumer, 3)
	for i := range live {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// Until every replica is open and heard of, a subscription is
		// refused with NOT_READY (retriable).
		for deadline := time.Now().Add(30 * time.Second); ; {
			live[i], err = cl.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "payments", From: client.Latest})
			if err == nil {
				break
			}
			if result.CodeOf(err) != result.NotReady || time.Now().After(deadline) {
				t.Fatalf("consumer on n%d: %v", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		defer live[i].Close()
	}

	before := recvFrom12()
	// Both kinds interleave within requests, so batches hold both; each
	// MA-only value is 2 KiB, so that their bytes would show.
	pad := strings.Repeat("m", 2048)
	var maOnly, both []string
	for round := range 20 {
		maOnly = append(maOnly, produceTo(t, c.NativeAddr(round%2), fmt.Sprintf("ma%d%s", round, pad), "MA", 50)...)
		both = append(both, produceTo(t, c.NativeAddr(round%2), fmt.Sprintf("both%d", round), "MA,SN", 50)...)
	}
	want := map[int][]string{0: append(slices.Clone(maOnly), both...), 1: append(slices.Clone(maOnly), both...), 2: both}

	readAll := func(cs *client.Consumer, n int) map[string]client.Record {
		t.Helper()
		got := map[string]client.Record{}
		for len(got) < n {
			r, err := cs.NextWithin(ctx, 10*time.Second)
			if err != nil {
				t.Fatalf("after %d of %d records: %v", len(got), n, err)
			}
			if _, dup := got[string(r.Value)]; dup {
				t.Fatalf("%.12s... read twice: at %d/%d and %d/%d", r.Value, got[string(r.Value)].Partition, got[string(r.Value)].Offset, r.Partition, r.Offset)
			}
			got[string(r.Value)] = r
		}
		// Nothing more comes.
		if r, err := cs.NextWithin(ctx, 500*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
			t.Fatalf("after the %d records: %.12s... at %d/%d, %v; want none", n, r.Value, r.Partition, r.Offset, err)
		}
		return got
	}
	check := func(what string, i int, got map[string]client.Record) {
		t.Helper()
		if len(got) != len(want[i]) {
			t.Fatalf("%s on n%d: %d records, want %d", what, i+1, len(got), len(want[i]))
		}
		for _, v := range want[i] {
			if _, ok := got[v]; !ok {
				t.Fatalf("%s on n%d: %.12s... missing", what, i+1, v)
			}
		}
	}
	var fromLeader map[string]client.Record
	for i, cs := range live {
		got := readAll(cs, len(want[i]))
		check("live consumer", i, got)
		if i == 0 {
			fromLeader = got
		}
	}
	// From the start, on n3: the same records at the same offsets as on
	// n1, which read half of them from its own replicas.
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cs, err := cl.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "payments", From: client.Earliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := readAll(cs, len(both))
	check("consumer from the start", 2, got)
	for v, r := range got {
		if o := fromLeader[v]; o.Partition != r.Partition || o.Offset != r.Offset {
			t.Fatalf("%s at %d/%d on n3, at %d/%d on n1", v, r.Partition, r.Offset, o.Partition, o.Offset)
		}
	}
	// n3 received the SN records (twice: live and from the start), none
	// of the 2 MiB of MA-only values.
	recv := recvFrom12() - before
	maBytes := uint64(len(maOnly) * len(pad))
	if recv > maBytes/4 {
		t.Fatalf("n3 (SN) received %d bytes from n1 and n2 while the MA-only values were %d bytes", recv, maBytes)
	}
	t.Logf("n3 received %d bytes from n1 and n2 (MA-only values: %d bytes)", recv, maBytes)

	// The audit of every node still finds every record in place, none
	// out of it.
	auditUntil(t, c, 30*time.Second, "audited", func(map[string]admin.AuditHub) bool { return true })
}
