package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// readValues reads every record value of one partition on one node, up to
// its high watermark, in offset order (control batches skipped).
func readValues(t *testing.T, s *server.Server, pipeline string, partition int32) []string {
	t.Helper()
	var out []string
	eachRecord(t, s, pipeline, partition, func(r *batch.Record) { out = append(out, string(r.Value)) })
	return out
}

// eachRecord calls fn with every record of one partition on one node, from
// its start to its high watermark, in offset order (control batches
// skipped).
func eachRecord(t *testing.T, s *server.Server, pipeline string, partition int32, fn func(r *batch.Record)) {
	t.Helper()
	eachRecordAt(t, s, pipeline, partition, func(_ int64, r *batch.Record) { fn(r) })
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

// TestClusterQuietLeaderLost: once a cluster is idle its raft groups go
// quiet (no heartbeats); then the node leading a buffer is cut off, and its
// quiet followers, which hear nothing either way, learn from liveness
// (their connections from it closed) that it is gone, elect another leader
// and take appends.
func TestClusterQuietLeaderLost(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: idle, partitions: 1}]
`, sensetest.WithLinks())
	old := c.Leader("idle", 0, 30*time.Second)
	if old < 0 {
		t.Fatal("no leader within 30s")
	}
	quiet := func() bool {
		for _, s := range c.Nodes {
			l, ok := s.Node.Leadership("idle", 0)
			q, isQ := l.(interface{ Quiet() bool })
			if !ok || !isQ || !q.Quiet() {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !quiet(); {
		if time.Now().After(deadline) {
			t.Fatal("the idle buffer is not quiet on every node after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if old = c.Leader("idle", 0, time.Second); old < 0 { // as of now
		t.Fatal("no leader")
	}
	t0 := time.Now()
	c.Isolate(old)
	other := (old + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(other)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "idle", MaxRetries: 200})
	if err != nil {
		t.Fatal(err)
	}
	var res client.Result
	done := make(chan struct{})
	p.Send(client.Event{Value: []byte("after")}, func(r client.Result) { res = r; close(done) })
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if res.Err != nil {
		t.Fatalf("append after the quiet leader was cut off: %v", res.Err)
	}
	t.Logf("an append was acknowledged %s after the quiet leader was cut off", time.Since(t0))
	l, _ := c.Nodes[other].Node.Leadership("idle", 0)
	if l.Leader() == fmt.Sprintf("n%d", old+1) || l.Leader() == "" {
		t.Fatalf("the majority's leader is %q", l.Leader())
	}
}
