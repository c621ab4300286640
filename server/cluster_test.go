package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/loopback"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := loopback.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return a[0]
}

// TestClusterProduceAnywhere: three in-process nodes of one hub replicate
// a pipeline; a producer connected to a follower is served (the follower
// forwards to the leader), every node ends with the same committed log,
// and Kafka-style local appends on a follower answer NOT_LEADER.
func TestClusterProduceAnywhere(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	peers := fmt.Sprintf("[{id: n1, addr: %s}, {id: n2, addr: %s}, {id: n3, addr: %s}]", addrs[0], addrs[1], addrs[2])
	var srvs []*server.Server
	for i := range 3 {
		yaml := fmt.Sprintf(`
node: {id: n%d}
jurisdictions: [MA]
cluster: {peers: %s}
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: payments, partitions: 1}]
`, i+1, peers)
		srvs = append(srvs, sensetest.Start(t, yaml))
	}
	// Wait for a leader of the one buffer.
	leader := -1
	deadline := time.Now().Add(30 * time.Second)
	for leader < 0 && time.Now().Before(deadline) {
		for i, s := range srvs {
			if l, ok := s.Node.Leadership("payments", 0); ok && l.IsLeader() {
				leader = i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if leader < 0 {
		t.Fatal("no leader elected within 30s")
	}
	follower := (leader + 1) % 3
	// Followers learn the leader from its first append or heartbeat.
	for time.Now().Before(deadline) {
		if l, _ := srvs[follower].Node.Leadership("payments", 0); l.Leader() != "" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: srvs[follower].NativeAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var mu sync.Mutex
	var errs []error
	acked := 0
	for i := range n {
		p.Send(client.Event{Value: []byte(fmt.Sprintf("event %d", i))}, func(r client.Result) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil {
				errs = append(errs, r.Err)
			} else {
				acked++
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if acked != n {
		t.Fatalf("%d of %d events acknowledged through a follower; errors: %v", acked, n, errs)
	}
	mu.Unlock()
	_, hw, _ := srvs[leader].Node.Offsets("payments", 0)
	if hw < n {
		t.Fatalf("leader's high watermark %d is below the %d events acknowledged", hw, n)
	}
	for time.Now().Before(deadline) {
		same := true
		for _, s := range srvs {
			_, h, _ := s.Node.Offsets("payments", 0)
			same = same && h == hw
		}
		if same {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, s := range srvs {
		if _, h, _ := s.Node.Offsets("payments", 0); h != hw {
			t.Fatalf("node n%d's high watermark %d, the leader's %d", i+1, h, hw)
		}
	}
	// A Kafka produce on a follower is refused so that the client refreshes
	// its metadata.
	_, code, why := srvs[follower].Node.AppendRaw(ctx, "payments", 0, kafkaBatch())
	if code != result.NotLeader {
		t.Fatalf("Kafka-style append on a follower: %v %s, want NOT_LEADER", code, why)
	}
}

func kafkaBatch() []byte {
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(time.Now().UnixMilli(), nil, []byte("from kafka"))
	return append([]byte(nil), b.Finish()...)
}
