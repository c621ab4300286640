package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// threeHubs is the test layout: two hubs in MA, one in SN, on a
// registry that also knows NG and KE (which have no hub).
func threeHubs(t testing.TB, dir string) (*Node, *jurisdiction.Registry) {
	t.Helper()
	reg, err := jurisdiction.New([]string{"MA", "SN", "NG", "KE"}, map[string][]string{"ECOWAS": {"SN", "NG"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{
		DataDir:  dir,
		Registry: reg,
		Hubs: []HubSpec{
			{Name: "tangier", Jurisdiction: "MA"},
			{Name: "dakhla", Jurisdiction: "MA"},
			{Name: "dakar", Jurisdiction: "SN"},
		},
		Pipelines:  []PipelineSpec{{Name: "payments", Partitions: 2, DefaultPriority: "low", DefaultJurisdiction: "*"}},
		Durability: seglog.Durability{Mode: seglog.SyncNever},
		AutoCreate: true,
		Logger:     quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, reg
}

// stored reads every record of a pipeline and returns, per value, the hub
// it is stored in and its mask header.
func stored(t testing.TB, n *Node, pipeline string) map[string]storedAt {
	t.Helper()
	out := map[string]storedAt{}
	parts, code := n.Partitions(pipeline)
	if code != result.OK {
		t.Fatalf("partitions: %v", code)
	}
	for _, p := range parts {
		l, _ := n.buffer(pipeline, p.Partition)
		for off := l.StartOffset(); off < l.HighWatermark(); {
			buf, err := l.Read(nil, off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for len(buf) > 0 {
				sz, _ := batch.Size(buf)
				it, err := batch.NewIter(buf[:sz])
				if err != nil {
					t.Fatal(err)
				}
				h, _ := batch.ParseHeader(buf)
				for it.Next() {
					r := it.Record()
					var mask jurisdiction.Mask
					hi := r.Headers()
					for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
						if string(k) == event.HeaderMask {
							mask, _ = event.DecodeMaskHeader(v)
						}
					}
					if _, dup := out[string(r.Value)]; dup {
						t.Fatalf("value %q stored twice", r.Value)
					}
					out[string(r.Value)] = storedAt{hub: p.Hub, lane: p.Lane, mask: mask}
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
				off = h.NextOffset()
				buf = buf[sz:]
			}
		}
	}
	return out
}

type storedAt struct {
	hub  string
	lane event.Priority
	mask jurisdiction.Mask
}

// TestJurisdictionProperty: random masks, keys and priorities on three hubs
// (MA, MA, SN). Every stored event sits in a hub whose jurisdiction is in
// its mask and in the lane of its priority; events whose mask has no hub
// are refused with NO_COMPLIANT_HUB and stored nowhere.
func TestJurisdictionProperty(t *testing.T) {
	n, reg := threeHubs(t, t.TempDir())
	defer n.Close()
	hubCode := map[string]string{"tangier": "MA", "dakhla": "MA", "dakar": "SN"}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{} // value -> should be stored
	for round := 0; round < 50; round++ {
		req := &ProduceRequest{Pipeline: "payments", ProducerID: -1}
		for i := 0; i < 40; i++ {
			mask := jurisdiction.Mask(1 + rng.IntN(15)) // any non-empty subset of MA, SN, NG, KE
			var key []byte
			if rng.IntN(2) == 0 {
				key = fmt.Appendf(nil, "k%d", rng.IntN(20))
			}
			req.Events = append(req.Events, Event{
				Key: key, Value: fmt.Appendf(nil, "v%d-%d", round, i), Mask: mask,
				HasPriority: true, Priority: event.Priority(rng.IntN(3)),
			})
		}
		res := make([]Result, len(req.Events))
		if err := n.Produce(context.Background(), req, res); err != nil {
			t.Fatal(err)
		}
		for i, e := range req.Events {
			compliant := e.Mask&0b11 != 0 // MA or SN
			switch {
			case compliant && res[i].Code != result.OK:
				t.Fatalf("event with mask %s refused: %v", reg.Format(e.Mask), res[i].Code)
			case !compliant && res[i].Code != result.NoCompliantHub:
				t.Fatalf("event with mask %s: code %v, want NO_COMPLIANT_HUB", reg.Format(e.Mask), res[i].Code)
			}
			want[string(e.Value)] = compliant
		}
	}
	got := stored(t, n, "payments")
	for v, should := range want {
		at, ok := got[v]
		if ok != should {
			t.Fatalf("value %s stored=%v, want %v", v, ok, should)
		}
		if !ok {
			continue
		}
		bit, _ := reg.Bit(hubCode[at.hub])
		if !at.mask.Has(bit) {
			t.Fatalf("value %s with mask %s stored in hub %s (%s)", v, reg.Format(at.mask), at.hub, hubCode[at.hub])
		}
	}
	// Taking both MA hubs down reroutes MA-only events: they are refused
	// at once, and MA|SN events go to dakar.
	for _, h := range []string{"tangier", "dakhla"} {
		if err := n.SetHubStatus(h, router.Down); err != nil {
			t.Fatal(err)
		}
	}
	maOnly, _ := reg.Parse("MA")
	both, _ := reg.Parse("MA,SN")
	req := &ProduceRequest{Pipeline: "payments", ProducerID: -1, Events: []Event{
		{Value: []byte("ma-only"), Mask: maOnly}, {Value: []byte("ma-or-sn"), Mask: both},
	}}
	res := make([]Result, 2)
	if err := n.Produce(context.Background(), req, res); err != nil {
		t.Fatal(err)
	}
	if res[0].Code != result.NoCompliantHub || res[1].Code != result.OK {
		t.Fatalf("after MA hubs went down: %v %v", res[0].Code, res[1].Code)
	}
	if got := stored(t, n, "payments"); got["ma-or-sn"].hub != "dakar" || got["ma-only"].hub != "" {
		t.Fatalf("after reroute: ma-or-sn in %q, ma-only in %q", got["ma-or-sn"].hub, got["ma-only"].hub)
	}
}

// TestProduceIdempotentRetry: a retried request with the same producer id
// and sequences gets the original offsets and stores nothing twice.
func TestProduceIdempotentRetry(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	mk := func() *ProduceRequest {
		req := &ProduceRequest{Pipeline: "payments", ProducerID: 77, BaseSequence: 0}
		for i := 0; i < 30; i++ {
			req.Events = append(req.Events, Event{Value: fmt.Appendf(nil, "e%d", i)})
		}
		return req
	}
	first := make([]Result, 30)
	if err := n.Produce(context.Background(), mk(), first); err != nil {
		t.Fatal(err)
	}
	again := make([]Result, 30)
	if err := n.Produce(context.Background(), mk(), again); err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i].Code != result.OK || again[i] != first[i] {
			t.Fatalf("event %d: first %+v, retry %+v", i, first[i], again[i])
		}
	}
	if got := stored(t, n, "payments"); len(got) != 30 {
		t.Fatalf("%d events stored, want 30", len(got))
	}
}

// TestKeylessEventsStickPerRequest: a request's keyless events that share
// their eligible buffers go to one of them (one append, as Kafka's sticky
// partitioner), and successive requests take turns over all of them, with
// or without a producer id; a retry of an idempotent request routes as its
// first attempt (TestProduceIdempotentRetry checks that it is stored once).
func TestKeylessEventsStickPerRequest(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	const buffers = 6 // payments: 2 low partitions in each of the three hubs
	for _, pid := range []int64{-1, 77} {
		used := map[int32]int{}
		seq := int32(0)
		for r := range 4 * buffers {
			req := &ProduceRequest{Pipeline: "payments", ProducerID: pid, BaseSequence: seq}
			if pid < 0 {
				req.BaseSequence = -1
			}
			for i := range 20 {
				req.Events = append(req.Events, Event{Value: fmt.Appendf(nil, "p%d-r%d-e%d", pid, r, i)})
			}
			seq += 20
			res := make([]Result, len(req.Events))
			if err := n.Produce(context.Background(), req, res); err != nil {
				t.Fatal(err)
			}
			for i := range res {
				if res[i].Code != result.OK || res[i].Partition != res[0].Partition {
					t.Fatalf("producer %d, request %d: event %d got %+v, event 0 %+v: a request's keyless events should share one buffer", pid, r, i, res[i], res[0])
				}
			}
			used[res[0].Partition]++
		}
		if pid < 0 && len(used) != buffers {
			t.Fatalf("producer %d: requests used partitions %v, want each of the %d in turn", pid, used, buffers)
		}
		if len(used) < buffers/2 {
			t.Fatalf("producer %d: %d requests used only partitions %v", pid, 4*buffers, used)
		}
	}
}

// TestPipelinesSurviveRestart: a pipeline created at run time is there
// after a restart, with its data.
func TestPipelinesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	res := make([]Result, 1)
	n.Produce(context.Background(), &ProduceRequest{Pipeline: "telemetry", ProducerID: -1, Events: []Event{{Value: []byte("x")}}}, res)
	if res[0].Code != result.OK {
		t.Fatal(res[0].Code)
	}
	n.Close()
	n, _ = threeHubs(t, dir)
	defer n.Close()
	parts, code := n.Partitions("telemetry")
	if code != result.OK || len(parts) != 3*3*3 {
		t.Fatalf("after restart: %d partitions, %v", len(parts), code)
	}
	if got := stored(t, n, "telemetry"); len(got) != 1 {
		t.Fatalf("after restart: %d events", len(got))
	}
}

func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := newBudget(1000, 0.5, 0.8)
	b.reserve(ctx, 400, nil)
	if b.shed(event.Low) {
		t.Fatal("low shed at 400/1000")
	}
	b.reserve(ctx, 200, nil)
	if !b.shed(event.Low) || b.shed(event.Medium) {
		t.Fatal("at 600/1000 low must be shed and medium not")
	}
	b.reserve(ctx, 300, func() event.Priority { return event.Critical }) // into the critical headroom
	if !b.shed(event.Medium) || b.shed(event.Critical) {
		t.Fatal("at 900/1000 medium must be shed, critical never")
	}
	// A reservation that does not fit waits for room.
	done := make(chan struct{})
	go func() {
		b.reserve(ctx, 300, nil)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a reservation past the limit did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.release(400)
	<-done
	if b.Used() != 800 {
		t.Fatalf("used %d, want 800", b.Used())
	}
	// A cancelled wait gives up without taking anything.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() { errc <- b.reserve(cctx, 500, nil) }()
	cancel()
	if err := <-errc; err == nil || b.Used() != 800 {
		t.Fatalf("cancelled reserve: %v, used %d", err, b.Used())
	}
}

// TestBudgetCriticalFirst: the last eighth of the budget is for critical
// requests, and a waiting critical request gets bytes before any other.
func TestBudgetCriticalFirst(t *testing.T) {
	ctx := context.Background()
	crit := func() event.Priority { return event.Critical }
	low := func() event.Priority { return event.Low }
	b := newBudget(1000, 0.5, 0.8)
	if err := b.reserve(ctx, 800, low); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	took := func(what string) {
		mu.Lock()
		order = append(order, what)
		mu.Unlock()
	}
	wg.Go(func() { b.reserve(ctx, 100, low); took("low") }) // 900 > 875: waits
	// A critical request fits in the headroom at once.
	if err := b.reserve(ctx, 100, crit); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { b.reserve(ctx, 200, crit); took("critical") }) // 1100 > 1000: waits
	for range 10000 {
		b.mu.Lock()
		w := b.critWaiting
		b.mu.Unlock()
		if w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.release(300) // 600: room for the critical one, not yet for the low one after it
	waitFor(t, "the critical reservation", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 })
	b.release(100) // 700: the low one fits (800 <= 875)
	wg.Wait()
	if len(order) != 2 || order[0] != "critical" || order[1] != "low" {
		t.Fatalf("reservations served in order %v, want critical then low", order)
	}
	if b.Used() != 800 {
		t.Fatalf("used %d, want 800", b.Used())
	}
}

// TestNoCompliantHubAlert: a refused event fires the alert webhook with the
// incident, and the drop counter counts it.
func TestNoCompliantHubAlert(t *testing.T) {
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var inc map[string]any
		json.NewDecoder(r.Body).Decode(&inc)
		got <- inc
	}))
	defer hook.Close()
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	n, err := Open(Options{DataDir: t.TempDir(), Registry: reg, Hubs: []HubSpec{{Name: "tangier", Jurisdiction: "MA"}},
		AutoCreate: true, AlertWebhook: hook.URL, Logger: quiet, Durability: seglog.Durability{Mode: seglog.SyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sn, _ := reg.Parse("SN")
	res := make([]Result, 2)
	n.Produce(context.Background(), &ProduceRequest{Pipeline: "p", ProducerID: -1, Events: []Event{{Value: []byte("a"), Mask: sn}, {Value: []byte("b")}}}, res)
	if res[0].Code != result.NoCompliantHub || res[1].Code != result.OK {
		t.Fatalf("codes %v %v", res[0].Code, res[1].Code)
	}
	select {
	case inc := <-got:
		if inc["pipeline"] != "p" || inc["jurisdiction"] != "SN" || inc["reason"] != "no_hub_in_mask" || inc["kind"] != "no_compliant_hub" {
			t.Fatalf("incident %v", inc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the alert webhook was not called")
	}
	if v := testutil.ToFloat64(n.Metrics.droppedTotal.WithLabelValues("p", "no_compliant_hub")); v != 1 {
		t.Fatalf("sense_events_dropped_total = %v, want 1", v)
	}
}

// TestAlertSenderStopsOnClose: the alert sender is the node's goroutine:
// Close ends it even while the webhook holds a request open.
func TestAlertSenderStopsOnClose(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select { // no answer until the node has closed
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hook.Close()
	defer close(release)
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	n, err := Open(Options{DataDir: t.TempDir(), Registry: reg, Hubs: []HubSpec{{Name: "tangier", Jurisdiction: "MA"}},
		AutoCreate: true, AlertWebhook: hook.URL, Logger: quiet, Durability: seglog.Durability{Mode: seglog.SyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := reg.Parse("SN")
	res := make([]Result, 1)
	n.Produce(context.Background(), &ProduceRequest{Pipeline: "p", ProducerID: -1, Events: []Event{{Value: []byte("a"), Mask: sn}}}, res)
	<-entered // the sender is inside its request
	closed := make(chan error)
	go func() { closed <- n.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return while the alert webhook held its request")
	}
	// Firing after Close is dropped, never a send on a closed channel.
	n.alerts.fire("p", "SN", "low", "no_hub_in_mask")
}
