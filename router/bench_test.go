package router

import (
	"fmt"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// benchTable is the benchmark's config: 3 hubs x 3 lanes x 4 partitions
// (36 buffers), every hub up and allowing the pipeline.
func benchTable(b *testing.B) (*Table, *jurisdiction.Registry) {
	b.Helper()
	r := testRegistry(b)
	return mustBuild(b, 1, []Hub{
		hub(b, r, "tangier", "MA", Up),
		hub(b, r, "dakar", "SN", Up),
		hub(b, r, "lagos", "NG", Up),
	}, Pipeline{Name: "payments", Partitions: 4}), r
}

// BenchmarkRoute measures Route alone on the 36-buffer table: keyed (a
// 16-byte key, rendezvous over the 12 buffers of the lane, or 4 when the
// mask names one hub) and keyless (a counter as spread).
func BenchmarkRoute(b *testing.B) {
	tab, r := benchTable(b)
	routes := tab.Pipeline("payments")
	all := mustMask(b, r, "MA,SN,NG")
	one := mustMask(b, r, "SN")
	key := []byte("customer-0000042") // 16 bytes
	for _, bc := range []struct {
		name string
		mask jurisdiction.Mask
		key  []byte
	}{
		{"keyed", all, key},
		{"keyed/one-hub", one, key},
		{"keyless", all, nil},
		{"keyless/one-hub", one, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int32
			var spread uint64
			for b.Loop() {
				p, reason := routes.Route(bc.mask, event.Medium, bc.key, spread)
				if reason != OK {
					b.Fatal(reason)
				}
				sink += p
				spread++
			}
			_ = sink
		})
	}
	b.Run("refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, reason := routes.Route(1<<9, event.Medium, key, 0); reason != NoHubInMask {
				b.Fatal(reason)
			}
		}
	})
}

// BenchmarkRouteFromHolder is the router's whole per-event lookup: load the
// current table, find the pipeline by name, route.
func BenchmarkRouteFromHolder(b *testing.B) {
	tab, r := benchTable(b)
	var h Holder
	h.Store(tab)
	all := mustMask(b, r, "*")
	key := []byte("customer-0000042")
	for _, bc := range []struct {
		name string
		key  []byte
	}{{"keyed", key}, {"keyless", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var spread uint64
			for b.Loop() {
				routes := h.Load().Pipeline("payments")
				if _, reason := routes.Route(all, event.Critical, bc.key, spread); reason != OK {
					b.Fatal(reason)
				}
				spread++
			}
		})
	}
}

// BenchmarkHashKey measures XXH64 over keys of typical sizes.
func BenchmarkHashKey(b *testing.B) {
	for _, n := range []int{8, 16, 36, 64, 256} {
		key := hashPattern(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var sink uint64
			for b.Loop() {
				sink += HashKey(key)
			}
			_ = sink
		})
	}
}

// BenchmarkBuild measures a rebuild of a mid-sized config: 12 hubs, 20
// pipelines of 8 partitions.
func BenchmarkBuild(b *testing.B) {
	hubs := make([]Hub, 12)
	for i := range hubs {
		hubs[i] = Hub{Name: fmt.Sprintf("hub-%d", i), Mask: 1 << (i % 5), Deny: []string{"p3"}}
	}
	pipes := make([]Pipeline, 20)
	for i := range pipes {
		pipes[i] = Pipeline{Name: fmt.Sprintf("p%d", i), Partitions: 8}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(1, hubs, pipes); err != nil {
			b.Fatal(err)
		}
	}
}
