package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
)

// TestClusterKillDuringProduce: three `sense serve` processes replicate a
// pipeline; a producer connected to n1 streams events while n2 and n3 are
// killed with SIGKILL and restarted in turn (one of them leads the buffer
// some of the time; n1 forwards to whichever does). Afterwards every
// acknowledged event is readable exactly once from every node.
func TestClusterKillDuringProduce(t *testing.T) {
	root := t.TempDir()
	cl := []string{freePort(t), freePort(t), freePort(t)}
	peers := fmt.Sprintf("[{id: n1, addr: %s}, {id: n2, addr: %s}, {id: n3, addr: %s}]", cl[0], cl[1], cl[2])
	var nodes []*node
	for i := range 3 {
		cfg := filepath.Join(root, fmt.Sprintf("n%d.yaml", i+1))
		yaml := fmt.Sprintf("node: {id: n%d}\njurisdictions: [MA]\ncluster: {peers: %s}\nhubs: [{name: tangier, jurisdiction: MA}]\npipelines: [{name: stream, partitions: 1}]\n", i+1, peers)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, data: filepath.Join(root, fmt.Sprintf("data%d", i+1)), native: freePort(t), http: freePort(t), kafka: freePort(t),
			extra: []string{"--config", cfg}}
		n.start()
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: nodes[0].native})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "stream", MaxRetries: 50})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprintf("ev-%d", i)
			prod.Send(client.Event{Value: []byte(v)}, func(r client.Result) {
				if r.Err == nil {
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				}
			})
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	sent := 0
	for round := range 3 {
		victim := nodes[1+round%2]
		send(sent, sent+500)
		sent += 500
		victim.kill()
		send(sent, sent+500)
		sent += 500
		victim.start()
	}
	fctx, fcancel := context.WithTimeout(ctx, time.Minute)
	if err := prod.Flush(fctx); err != nil {
		t.Logf("flush: %v", err)
	}
	fcancel()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("nothing was acknowledged")
	}
	// Every node converges on the same events; give followers a moment.
	for _, n := range nodes {
		var got map[string]bool
		deadline := time.Now().Add(30 * time.Second)
		for {
			got = map[string]bool{}
			dup := ""
			for _, r := range n.consumeAll("stream") {
				if got[*r.Value] {
					dup = *r.Value
				}
				got[*r.Value] = true
			}
			if dup != "" {
				t.Fatalf("%s stored twice (read from %s)", dup, n.native)
			}
			missing := 0
			mu.Lock()
			for v := range acked {
				if !got[v] {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d acknowledged events missing on the node at %s", missing, want, n.native)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("%d of %d events acknowledged across 3 kills; all readable once on every node", want, sent)
	for _, n := range nodes {
		n.stop()
	}
}
