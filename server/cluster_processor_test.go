package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterProcessorSurvivesNodeLoss: three nodes run a processor that
// copies src into dst (a pipeline sink), as members of one group whose
// coordinator is the node leading the committed offsets: they share src's
// partitions. That node stops mid-stream; the group moves to the new
// leader of the offsets, the others take the lost member's partitions
// over from the replicated offsets and intents, and dst ends with every
// event of src exactly once.
func TestClusterProcessorSurvivesNodeLoss(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines:
  - {name: src, partitions: 1}
  - {name: dst, partitions: 1}
processors:
  - name: copy
    from: {pipeline: src}
    sink: {type: pipeline, pipeline: dst}
    rate: 3000/s
    batch: {max_events: 100, linger: 2ms}
`)
	for _, p := range []string{"src", "dst"} {
		for part := range int32(3) {
			if c.Leader(p, part, 30*time.Second) < 0 {
				t.Fatalf("%s partition %d has no leader after 30s", p, part)
			}
		}
	}
	runner := func() int {
		for i, n := range c.Nodes {
			if n != nil && n.Offsets.Ready() {
				return i
			}
		}
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	produceVia := func(i, from, n int) {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "src"})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		errs := make(chan error, n)
		for k := from; k < from+n; k++ {
			p.Send(client.Event{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf("v%d", k))}, func(r client.Result) { errs <- r.Err })
		}
		for k := 0; k < n; k++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	status := func() string {
		var b strings.Builder
		for i, n := range c.Nodes {
			if n == nil {
				continue
			}
			cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
			if err != nil {
				continue
			}
			resp, err := cl.Admin(ctx, admin.DescribeProcessor{Processor: "copy"})
			cl.Close()
			if err != nil {
				fmt.Fprintf(&b, "n%d: %v\n", i+1, err)
				continue
			}
			fmt.Fprintf(&b, "n%d: %+v\n", i+1, resp.Processors[0])
		}
		return b.String()
	}
	readVia := func(i int, pipeline string) []client.Record {
		cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, layout, err := cl.Describe(ctx, pipeline)
		if err != nil {
			t.Fatal(err)
		}
		var out []client.Record
		for _, p := range layout {
			for off := p.Start; off < p.HighWatermark; {
				f, err := cl.Fetch(ctx, pipeline, p.Partition, off, 0)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, f.Records...)
				if f.NextOffset <= off {
					break
				}
				off = f.NextOffset
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for runner() < 0 {
		if time.Now().After(deadline) {
			t.Fatal("no node leads the committed offsets after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := runner()
	other := (first + 1) % 3
	produceVia(other, 0, 6000)
	// Stop the node running the processor while it is about halfway.
	deadline = time.Now().Add(time.Minute)
	for len(readVia(other, "dst")) < 2000 {
		if time.Now().After(deadline) {
			t.Fatalf("the processor did not copy 2000 events within a minute:\n%s", status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The members share the partitions: more than one node has some.
	deadline = time.Now().Add(time.Minute)
	for {
		sharing := 0
		for i, n := range c.Nodes {
			cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i)})
			if err != nil || n == nil {
				t.Fatal(err)
			}
			resp, err := cl.Admin(ctx, admin.DescribeProcessor{Processor: "copy"})
			cl.Close()
			if err == nil && len(resp.Processors[0].Partitions) > 0 {
				sharing++
			}
		}
		if sharing >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the partitions are not shared:\n%s", status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop(first)
	t.Logf("stopped n%d, the group's coordinator, with %d events copied", first+1, len(readVia(other, "dst")))
	produceVia(other, 6000, 2000)
	deadline = time.Now().Add(2 * time.Minute)
	var dst []client.Record
	for {
		dst = readVia(other, "dst")
		if len(dst) >= 8000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dst holds %d of 8000 events after the loss of n%d (offsets led by %d):\n%s", len(dst), first+1, runner(), status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[string]bool{}
	for _, r := range readVia(other, "src") {
		want[fmt.Sprintf("%s/%d/%d", r.Pipeline, r.Partition, r.Offset)] = true
	}
	got := map[string]int{}
	for _, r := range dst {
		for _, h := range r.Headers {
			if h.Key == processor.HeaderSource {
				got[string(h.Value)]++
			}
		}
	}
	dup, missing := 0, 0
	for k, n := range got {
		if n > 1 || !want[k] {
			dup++
		}
	}
	for k := range want {
		if got[k] == 0 {
			missing++
		}
	}
	if dup > 0 || missing > 0 || len(dst) != len(want) {
		t.Fatalf("dst: %d events for %d in src; %d repeated or foreign, %d missing", len(dst), len(want), dup, missing)
	}
}
