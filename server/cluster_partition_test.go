package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// readValues reads every record value of one partition on one node, up to
// its high watermark, in offset order (control batches skipped).
func readValues(t *testing.T, s *server.Server, pipeline string, partition int32) []string {
	t.Helper()
	var out []string
	off := int64(0)
	for {
		_, hw, code := s.Node.Offsets(pipeline, partition)
		if code != result.OK {
			t.Fatalf("offsets of %s/%d: %s", pipeline, partition, code)
		}
		if off >= hw {
			return out
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, _, _, code := s.Node.Fetch(ctx, pipeline, partition, off, 1<<20, nil)
		cancel()
		if code != result.OK {
			t.Fatalf("fetch %s/%d at %d: %s", pipeline, partition, off, code)
		}
		for len(b) > 0 {
			h, err := batch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Attributes&batch.AttrControl == 0 {
				it, err := batch.NewIter(b[:h.Size()])
				if err != nil {
					t.Fatal(err)
				}
				for it.Next() {
					out = append(out, string(it.Record().Value))
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
			off = h.NextOffset()
			b = b[h.Size():]
		}
	}
}

// TestClusterPartitionIsolatesLeader: the leader of a one-partition
// pipeline is cut off from both other nodes. Appends made on it are never
// acknowledged; the two others elect a leader and acknowledge appends made
// through them; once the links heal, every node holds the same log: every
// acknowledged event exactly once, in one order, and none of the events the
// isolated leader took but could not commit.
func TestClusterPartitionIsolatesLeader(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: orders, partitions: 1}]
`, sensetest.WithLinks())
	// partitions: 1 per lane gives 3 buffers; partition 0 is the low lane,
	// where events without a priority go.
	old := c.Leader("orders", 0, 30*time.Second)
	if old < 0 {
		t.Fatal("no leader within 30s")
	}
	other := (old + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]int{}
	var failed []string
	send := func(p *client.Producer, prefix string, n int) {
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			p.Send(client.Event{Value: []byte(v)}, func(r client.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					failed = append(failed, v)
					return
				}
				acked[v]++
			})
		}
	}
	producer := func(at int, retries int) *client.Producer {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(at)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "orders", MaxRetries: retries})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := producer(old, 10)
	send(before, "before", 200)
	if err := before.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	c.Isolate(old)
	onOld := producer(old, -1) // no retries: a refusal is final
	send(onOld, "isolated", 100)
	// The isolated leader cannot commit: none of these is acknowledged,
	// whether it still thinks it leads (the appends wait) or has stepped
	// down (CheckQuorum; they are refused).
	majority := producer(other, 100)
	send(majority, "majority", 300)
	if err := majority.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Every append made on the isolated node ends while it is isolated:
	// refused at once, or once its leader notices it lost its quorum.
	if err := onOld.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	isolatedFailed := 0
	for _, v := range failed {
		if len(v) > 8 && v[:8] == "isolated" {
			isolatedFailed++
		}
	}
	for v := range acked {
		if len(v) > 8 && v[:8] == "isolated" {
			t.Fatalf("%s was acknowledged by an isolated node", v)
		}
	}
	if isolatedFailed != 100 {
		t.Fatalf("%d of the 100 appends on the isolated node were refused; the rest were neither refused nor acknowledged", isolatedFailed)
	}
	mu.Unlock()
	newLeader := c.Leader("orders", 0, 30*time.Second)
	if newLeader == old || newLeader < 0 {
		// Leader() may still see the old one claim it; ask the majority.
		l, _ := c.Nodes[other].Node.Leadership("orders", 0)
		if l.Leader() == "" || l.Leader() == fmt.Sprintf("n%d", old+1) {
			t.Fatalf("the majority has no leader of its own (it sees %q)", l.Leader())
		}
	}

	c.Rejoin(old)
	mu.Lock()
	wantAcked := len(acked)
	mu.Unlock()

	// Convergence: the same high watermark and the same values on all
	// three nodes.
	var logs [3][]string
	for deadline := time.Now().Add(30 * time.Second); ; {
		same := true
		for i, s := range c.Nodes {
			logs[i] = readValues(t, s, "orders", 0)
			same = same && fmt.Sprint(logs[i]) == fmt.Sprint(logs[0])
		}
		if same && len(logs[0]) >= wantAcked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs differ 30s after healing: %d, %d, %d records", len(logs[0]), len(logs[1]), len(logs[2]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := map[string]int{}
	for _, v := range logs[0] {
		got[v]++
	}
	mu.Lock()
	defer mu.Unlock()
	for v := range acked {
		if got[v] != 1 {
			t.Fatalf("acknowledged %s is stored %d times", v, got[v])
		}
	}
	for v, n := range got {
		if len(v) > 8 && v[:8] == "isolated" {
			t.Fatalf("%s, never acknowledged, is in the log after healing (%d times)", v, n)
		}
		if n != 1 {
			t.Fatalf("%s stored %d times", v, n)
		}
	}
	t.Logf("%d acknowledged, %d refused while isolated; %d records on every node", len(acked), len(failed), len(logs[0]))
}
