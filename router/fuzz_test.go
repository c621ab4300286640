package router

import (
	"math/rand/v2"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// FuzzRoute routes a fuzzed mask, priority, key and spread through a config
// derived from a fuzzed seed, and checks the result against the reference
// that applies the eligibility rules buffer by buffer.
func FuzzRoute(f *testing.F) {
	f.Add(uint64(1), uint64(1), uint8(0), []byte("customer-1"), false, uint64(0))
	f.Add(uint64(2), uint64(0), uint8(1), []byte(nil), true, uint64(7))
	f.Add(uint64(3), uint64(31), uint8(2), []byte{}, false, uint64(1<<63))
	f.Add(uint64(4), uint64(1<<40), uint8(3), []byte("x"), false, uint64(0))
	f.Fuzz(func(t *testing.T, cfg uint64, mask uint64, prio uint8, key []byte, nilKey bool, spread uint64) {
		rng := rand.New(rand.NewPCG(cfg, cfg>>32))
		hubs, pipes := randomConfig(rng)
		tab, err := Build(cfg, hubs, pipes)
		if err != nil {
			t.Fatal(err)
		}
		if nilKey {
			key = nil
		}
		for _, p := range pipes {
			routes := tab.Pipeline(p.Name)
			got, reason := routes.Route(jurisdiction.Mask(mask), event.Priority(prio), key, spread)
			want, wantReason := reference(hubs, p, jurisdiction.Mask(mask), event.Priority(prio), key, spread)
			if got != want || reason != wantReason {
				t.Fatalf("hubs %+v, pipeline %+v: Route = %d, %v; reference = %d, %v", hubs, p, got, reason, want, wantReason)
			}
		}
	})
}
