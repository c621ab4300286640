package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterProcessorDelete: a processor created on the node that leads
// the committed offsets runs on all three nodes (the log brings it to the
// others); deleted there, it stops on every node, its group's offsets are
// gone from every replica of the log and stay gone (no member of another
// node committed them back), and it writes no more.
func TestClusterProcessorDelete(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines:
  - {name: src, partitions: 1}
  - {name: dst, partitions: 1}
`)
	for _, p := range []string{"src", "dst"} {
		for part := range int32(3) {
			if c.Leader(p, part, 30*time.Second) < 0 {
				t.Fatalf("%s partition %d has no leader after 30s", p, part)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	call := func(i int, req admin.Request) (admin.Response, error) {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			return admin.Response{}, err
		}
		defer cl.Close()
		return cl.Admin(ctx, req)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	leader := -1
	waitUntil("a leader of the committed offsets", func() bool {
		for i, n := range c.Nodes {
			if n.Offsets.Ready() {
				leader = i
				return true
			}
		}
		return false
	})
	if _, err := call(leader, admin.CreateProcessor{Config: "processors:\n  - {name: copy, from: {pipeline: src}, sink: {type: pipeline, pipeline: dst}, batch: {linger: 2ms}}\n"}); err != nil {
		t.Fatal(err)
	}
	runsOn := func(i int) bool {
		resp, err := call(i, admin.ListProcessors{})
		if err != nil {
			return false
		}
		for _, p := range resp.Processors {
			if p.Name == "copy" {
				return true
			}
		}
		return false
	}
	waitUntil("the created processor on every node", func() bool { return runsOn(0) && runsOn(1) && runsOn(2) })
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(leader)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "src"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(n int) {
		errs := make(chan error, n)
		for k := range n {
			p.Send(client.Event{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte("v")}, func(r client.Result) { errs <- r.Err })
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	dstCount := func() int64 {
		_, layout, err := cl.Describe(ctx, "dst")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, l := range layout {
			n += l.HighWatermark - l.Start
		}
		return n
	}
	produce(600)
	waitUntil("the events copied", func() bool { return dstCount() >= 600 })
	if len(c.Nodes[leader].Offsets.Committed("processor.copy")) == 0 {
		t.Fatal("the processor committed no offsets")
	}
	other := (leader + 1) % 3
	if _, err := call(other, admin.DeleteProcessor{Processor: "copy"}); result.CodeOf(err) != result.NotLeader {
		t.Fatalf("delete on a node that does not lead the offsets: %v, want NOT_LEADER", err)
	}
	if !runsOn(other) {
		t.Fatal("a refused delete stopped the processor")
	}
	resp, err := call(leader, admin.DeleteProcessor{Processor: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Processors) != 1 || resp.Processors[0].State != "deleted" {
		t.Fatalf("delete answered %+v", resp.Processors)
	}
	waitUntil("the processor stopped on every node", func() bool { return !runsOn(0) && !runsOn(1) && !runsOn(2) })
	copied := dstCount()
	produce(300)
	time.Sleep(time.Second) // a member left running would copy and commit meanwhile
	for i, n := range c.Nodes {
		if got := n.Offsets.Committed("processor.copy"); len(got) != 0 {
			t.Fatalf("n%d still holds offsets of the deleted processor's group: %v", i+1, got)
		}
	}
	if now := dstCount(); now != copied {
		t.Fatalf("dst grew from %d to %d after the deletion", copied, now)
	}
}
