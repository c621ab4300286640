package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// TestOverload offers more than the node can hold (a small memory budget,
// fsync always, many concurrent producers of mixed priority): low events
// are shed first, critical ones are never refused, and every acknowledged
// event can be read back.
func TestOverload(t *testing.T) {
	reg, _ := jurisdiction.New([]string{"MA"}, nil)
	n, err := Open(Options{
		DataDir: t.TempDir(), Registry: reg,
		Hubs:        []HubSpec{{Name: "h", Jurisdiction: "*"}},
		Durability:  seglog.Durability{Mode: seglog.SyncAlways},
		MemoryLimit: 256 << 10, AutoCreate: true, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var shed, acked [3]atomic.Int64
	var wg sync.WaitGroup
	value := make([]byte, 1000)
	for w := 0; w < 24; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prio := event.Priority(w % 3)
			for r := 0; r < 30; r++ {
				req := &ProduceRequest{Pipeline: "load", ProducerID: -1}
				for i := 0; i < 40; i++ {
					req.Events = append(req.Events, Event{Value: fmt.Appendf(value[:0:0], "%d/%d/%d/%s", w, r, i, value[:900]), HasPriority: true, Priority: prio})
				}
				res := make([]Result, len(req.Events))
				if err := n.Produce(context.Background(), req, res); err != nil {
					t.Error(err)
					return
				}
				for _, x := range res {
					switch x.Code {
					case result.OK:
						acked[prio].Add(1)
					case result.Overloaded:
						shed[prio].Add(1)
					default:
						t.Errorf("priority %v: code %v", prio, x.Code)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("acknowledged low/medium/critical: %d/%d/%d; shed: %d/%d/%d",
		acked[0].Load(), acked[1].Load(), acked[2].Load(), shed[0].Load(), shed[1].Load(), shed[2].Load())
	if shed[event.Critical].Load() != 0 {
		t.Fatalf("%d critical events were refused", shed[event.Critical].Load())
	}
	if shed[event.Low].Load() == 0 {
		t.Fatal("no low event was shed: the test did not overload the node")
	}
	if shed[event.Low].Load() < shed[event.Medium].Load() {
		t.Fatalf("more medium (%d) than low (%d) events shed", shed[event.Medium].Load(), shed[event.Low].Load())
	}
	if n.budget.Used() != 0 {
		t.Fatalf("%d bytes still held after the load", n.budget.Used())
	}
	total := acked[0].Load() + acked[1].Load() + acked[2].Load()
	if got := stored(t, n, "load"); int64(len(got)) != total {
		t.Fatalf("%d events readable, %d acknowledged", len(got), total)
	}
}
