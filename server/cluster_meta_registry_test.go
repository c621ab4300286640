package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterRegistryMismatch: a node whose config lists the same
// jurisdictions in another order (so that a mask's bits mean other codes
// on it) refuses events once it has applied the cluster metadata, saying
// why; the others go on.
func TestClusterRegistryMismatch(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	produceMasked(t, c, 0, "before", "MA", 10)
	c.Stop(2)
	c.Config(2).Jurisdictions = []string{"SN", "MA"}
	if err := c.Config(2).Validate(); err != nil {
		t.Fatal(err)
	}
	c.Start(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for {
		errc := make(chan error, 1)
		p.Send(client.Event{Value: []byte("x")}, func(r client.Result) { errc <- r.Err })
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		err := <-errc
		// Per-event errors carry the code; the node says why.
		if result.CodeOf(err) == result.NotReady && strings.Contains(c.Nodes[2].Node.Fenced(), "jurisdictions differ from the cluster's: jurisdiction codes [SN MA]") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("n3, with its jurisdictions in another order, still takes events 30s after it started: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	produceMasked(t, c, 1, "after", "MA", 10)
}
