package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// The conformance suite runs the same cases over every transport a
// producer can use. A transport says how to start a server that offers it
// and how to connect through it; the cases see only a flow. Over HTTP
// the flow is the Go client with Transport "http": it produces with POST
// /v1/pipelines/{name}/events (native batch encoding) and reads with the
// Server-Sent Events tail.

// transport is one way into a Sense node.
type transport struct {
	name   string
	server []sensetest.Option
	open   func(t *testing.T, srv *server.Server) flow
}

// flow is a producer's (and a reader's) view of a node through one
// transport.
type flow interface {
	// produce sends evs and returns a result per event, in order.
	produce(ctx context.Context, pipeline string, evs []client.Event) []client.Result
	// produceMany sends n events made by mk, as a stream of requests of
	// up to batch events, idempotently, and returns their results by
	// index. Before each request whose index is in cut, the connection
	// that carries it is set to lose the request's answer: the request is
	// stored, then the connection breaks.
	produceMany(ctx context.Context, pipeline string, n, batch int, mk func(i int) client.Event, cut map[int]bool) (map[int]client.Result, int)
	// consume reads exactly n records from the start of every partition.
	consume(ctx context.Context, pipeline string, n int) ([]client.Record, error)
	// mask parses jurisdiction codes with the node's registry.
	mask(ctx context.Context, codes string) jurisdiction.Mask
	// idempotent reports whether a request whose answer was lost is
	// resent safely (native protocol) or reported failed (HTTP).
	idempotent() bool
}

var transports = []transport{
	{name: "tcp", open: func(t *testing.T, srv *server.Server) flow {
		return &nativeFlow{t: t, c: dialOpts(t, client.Options{Addr: srv.NativeAddr().String()})}
	}},
	{name: "quic", server: []sensetest.Option{sensetest.WithQUIC()}, open: func(t *testing.T, srv *server.Server) flow {
		return &nativeFlow{t: t, c: dialQUIC(t, srv)}
	}},
	{name: "http", open: func(t *testing.T, srv *server.Server) flow {
		c := dialOpts(t, client.Options{Transport: client.TransportHTTP, Addr: srv.HTTPAddr().String()})
		return &httpFlow{nativeFlow{t: t, c: c}}
	}},
}

func dialOpts(t testing.TB, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts.ClientID == "" {
		opts.ClientID = t.Name()
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialQUIC connects to srv's QUIC listener, pinning its certificate.
func dialQUIC(t testing.TB, srv *server.Server) *client.Client {
	t.Helper()
	fp, _ := srv.QUICFingerprint()
	return dialOpts(t, client.Options{Transport: client.TransportQUIC, Addr: srv.QUICAddr().String(), ServerFingerprint: fp})
}

// nativeFlow is a flow over the Go client (native protocol on TCP or QUIC).
type nativeFlow struct {
	t *testing.T
	c *client.Client
}

func (f *nativeFlow) produce(ctx context.Context, pipeline string, evs []client.Event) []client.Result {
	p, err := f.c.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline, MaxRetries: -1, Linger: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	defer p.Close()
	out := make([]client.Result, len(evs))
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Add(1)
		p.Send(ev, func(r client.Result) { out[i] = r; wg.Done() })
	}
	if err := p.Flush(ctx); err != nil {
		f.t.Fatal(err)
	}
	wg.Wait()
	return out
}

func (f *nativeFlow) idempotent() bool { return true }

func (f *nativeFlow) produceMany(ctx context.Context, pipeline string, n, batch int, mk func(i int) client.Event, cut map[int]bool) (map[int]client.Result, int) {
	var armed atomic.Bool
	var cuts atomic.Int32
	client.SetCutAnswer(f.c, func(fr wire.Frame) bool {
		if fr.Type == wire.TypeProduceResult && armed.CompareAndSwap(true, false) {
			cuts.Add(1)
			return true
		}
		return false
	})
	defer client.SetCutAnswer(f.c, nil)
	return sendMany(f.t, ctx, f.c, pipeline, n, batch, mk, func(k int) { armed.Store(cut[k]) }), int(cuts.Load())
}

func (f *nativeFlow) consume(ctx context.Context, pipeline string, n int) ([]client.Record, error) {
	cs, err := f.c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: pipeline, From: client.Earliest})
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var out []client.Record
	for len(out) < n {
		r, err := cs.Next(ctx)
		if err != nil {
			return out, fmt.Errorf("after %d of %d records: %w", len(out), n, err)
		}
		out = append(out, r)
	}
	if r, err := cs.NextWithin(ctx, 200*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
		return out, fmt.Errorf("after %d records: got %+v, %v; want no more", n, r, err)
	}
	return out, nil
}

func (f *nativeFlow) mask(ctx context.Context, codes string) jurisdiction.Mask {
	reg, err := f.c.Registry(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := reg.Parse(codes)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// httpFlow is the Go client over HTTP: the same calls, but answers are cut
// at the HTTP layer and HTTP produce is not idempotent.
type httpFlow struct{ nativeFlow }

func (f *httpFlow) idempotent() bool { return false }

func (f *httpFlow) produceMany(ctx context.Context, pipeline string, n, batch int, mk func(i int) client.Event, cut map[int]bool) (map[int]client.Result, int) {
	var armed atomic.Bool
	var cuts atomic.Int32
	client.SetCutHTTPAnswer(f.c, func() bool {
		if armed.CompareAndSwap(true, false) {
			cuts.Add(1)
			return true
		}
		return false
	})
	defer client.SetCutHTTPAnswer(f.c, nil)
	return sendMany(f.t, ctx, f.c, pipeline, n, batch, mk, func(k int) { armed.Store(cut[k]) }), int(cuts.Load())
}

// sendMany sends n events made by mk in requests of batch events,
// calling arm(k) before request k, and returns their results by index.
func sendMany(t *testing.T, ctx context.Context, c *client.Client, pipeline string, n, batch int, mk func(i int) client.Event, arm func(k int)) map[int]client.Result {
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline, BatchEvents: batch, Linger: time.Hour, RetryBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	res := map[int]client.Result{}
	dups := 0
	for from := 0; from < n; from += batch {
		arm(from / batch)
		for i := from; i < min(from+batch, n); i++ {
			p.Send(mk(i), func(r client.Result) {
				mu.Lock()
				defer mu.Unlock()
				if _, ok := res[i]; ok {
					dups++
				}
				res[i] = r
			})
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Fatalf("%d events got more than one result", dups)
	}
	return res
}

// conformanceCase is one behaviour every transport must show.
type conformanceCase struct {
	name string
	yaml string // server configuration ("" for dev mode)
	run  func(t *testing.T, ctx context.Context, f flow)
}

var conformanceCases = []conformanceCase{
	{name: "produce-consume", run: conformProduceConsume},
	{name: "jurisdiction-refusal", yaml: twoJurisdictions, run: conformJurisdiction},
	{name: "shedding", yaml: "router: {memory_limit: 1MiB, shed_low_at: 0.5, shed_medium_at: 0.8}\n", run: conformShedding},
	{name: "idempotent-retry", run: conformIdempotentRetry},
}

func TestConformance(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, cc := range conformanceCases {
				t.Run(cc.name, func(t *testing.T) {
					srv := sensetest.Start(t, cc.yaml, tr.server...)
					cc.run(t, testCtx(t, 60*time.Second), tr.open(t, srv))
				})
			}
		})
	}
}

// conformProduceConsume: every event is acknowledged with a distinct
// position and read back from that position, keys, headers, priorities
// and all.
func conformProduceConsume(t *testing.T, ctx context.Context, f flow) {
	const n = 2000
	mk := func(i int) client.Event {
		ev := client.Event{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("v%05d", i)),
			Headers: []client.Header{{Key: "i", Value: []byte(fmt.Sprint(i))}}}
		ev.HasPriority, ev.Priority = true, event.Priority(i%3)
		return ev
	}
	res, _ := f.produceMany(ctx, "conf", n, 250, mk, nil)
	at := map[[2]int64]int{}
	for i := range n {
		r := res[i]
		if r.Err != nil || r.Partition < 0 || r.Offset < 0 {
			t.Fatalf("event %d: %+v", i, r)
		}
		at[[2]int64{int64(r.Partition), r.Offset}] = i
	}
	if len(at) != n {
		t.Fatalf("%d distinct positions for %d events", len(at), n)
	}
	recs, err := f.consume(ctx, "conf", n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		i, ok := at[[2]int64{int64(r.Partition), r.Offset}]
		want := mk(i)
		if !ok || string(r.Value) != string(want.Value) || string(r.Key) != string(want.Key) || r.Priority != want.Priority ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
			t.Fatalf("record %+v does not match event %d", r, i)
		}
	}
}

// conformJurisdiction: an event no hub may hold is refused with the
// retriable NO_COMPLIANT_HUB and never stored; a mask outside the
// registry is INVALID_MASK.
func conformJurisdiction(t *testing.T, ctx context.Context, f flow) {
	ma, sn := f.mask(ctx, "MA"), f.mask(ctx, "SN")
	res := f.produce(ctx, "pay", []client.Event{
		{Value: []byte("senegal only"), Mask: sn},
		{Value: []byte("morocco"), Mask: ma},
		{Value: []byte("nowhere"), Mask: 1 << 5},
	})
	if !errors.Is(res[0].Err, result.ErrNoCompliantHub) || !result.CodeOf(res[0].Err).Retriable() || res[0].Offset != -1 {
		t.Fatalf("SN event: %+v, want NO_COMPLIANT_HUB", res[0])
	}
	if res[1].Err != nil {
		t.Fatalf("MA event: %v", res[1].Err)
	}
	if !errors.Is(res[2].Err, result.ErrInvalidMask) {
		t.Fatalf("mask outside the registry: %+v", res[2])
	}
	recs, err := f.consume(ctx, "pay", 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(recs[0].Value) != "morocco" || recs[0].Hub != "tangier" {
		t.Fatalf("stored %+v", recs[0])
	}
}

// conformShedding: a request that alone fills the router's memory past
// both shed levels has its low and medium events refused with the
// retriable OVERLOADED; its critical event is stored.
func conformShedding(t *testing.T, ctx context.Context, f flow) {
	big := func(p event.Priority) client.Event {
		return client.Event{Value: []byte(strings.Repeat(p.String()[:1], 150<<10)), HasPriority: true, Priority: p}
	}
	res := f.produce(ctx, "shed", []client.Event{big(event.Low), big(event.Medium), big(event.Critical)})
	for i, p := range []string{"low", "medium"} {
		if !errors.Is(res[i].Err, result.ErrOverloaded) || !result.CodeOf(res[i].Err).Retriable() {
			t.Fatalf("%s event: %+v, want OVERLOADED", p, res[i])
		}
	}
	if res[2].Err != nil {
		t.Fatalf("critical event: %v", res[2].Err)
	}
	recs, err := f.consume(ctx, "shed", 1)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Priority != event.Critical {
		t.Fatalf("stored %v, want only the critical event", recs[0].Priority)
	}
	// Below the levels, low events are stored again.
	if res := f.produce(ctx, "shed", []client.Event{{Value: []byte("small")}}); res[0].Err != nil {
		t.Fatalf("small low event after the burst: %v", res[0].Err)
	}
}

// conformIdempotentRetry: requests whose answers are lost with their
// connection (stream) are resent, and the node answers them with the
// original positions: every event is stored exactly once.
//
// HTTP promises less, and the case checks that promise: a request whose
// answer is lost is not resent; its events are reported failed with
// ErrUnknownOutcome (they were in fact stored), and nothing is stored
// twice.
func conformIdempotentRetry(t *testing.T, ctx context.Context, f flow) {
	const n, batch = 3000, 100
	mk := func(i int) client.Event { return client.Event{Value: []byte(fmt.Sprintf("e%05d", i))} }
	cut := map[int]bool{3: true, 11: true, 29: true}
	res, cuts := f.produceMany(ctx, "idem", n, batch, mk, cut)
	if cuts != 3 {
		t.Fatalf("%d answers cut, want 3", cuts)
	}
	if !f.idempotent() {
		conformUnknownOutcome(t, ctx, f, res, n, batch, cut, mk)
		return
	}
	at := map[[2]int64]int{}
	for i := range n {
		r, ok := res[i]
		if !ok || r.Err != nil || r.Offset < 0 {
			t.Fatalf("event %d: %+v (present %v)", i, r, ok)
		}
		at[[2]int64{int64(r.Partition), r.Offset}] = i
	}
	recs, err := f.consume(ctx, "idem", n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		i, ok := at[[2]int64{int64(r.Partition), r.Offset}]
		if !ok || string(r.Value) != string(mk(i).Value) {
			t.Fatalf("at %d/%d: %s, but the producer was told event %d is there", r.Partition, r.Offset, r.Value, i)
		}
	}
}

// conformUnknownOutcome checks what a non-idempotent transport promises
// when answers are lost: the events of the cut requests fail with
// ErrUnknownOutcome, the others are acknowledged, and each event is
// stored exactly once (the cut requests were served, and not resent).
func conformUnknownOutcome(t *testing.T, ctx context.Context, f flow, res map[int]client.Result, n, batch int, cut map[int]bool, mk func(int) client.Event) {
	at := map[[2]int64]int{}
	for i := range n {
		r, ok := res[i]
		switch {
		case !ok:
			t.Fatalf("event %d: no result", i)
		case cut[i/batch]:
			if !errors.Is(r.Err, client.ErrUnknownOutcome) || !errors.Is(r.Err, client.ErrConnectionLost) || r.Offset != -1 {
				t.Fatalf("event %d of a cut request: %+v, want ErrUnknownOutcome", i, r)
			}
		case r.Err != nil || r.Offset < 0:
			t.Fatalf("event %d: %+v", i, r)
		default:
			at[[2]int64{int64(r.Partition), r.Offset}] = i
		}
	}
	recs, err := f.consume(ctx, "idem", n) // fails if more than n are stored
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
		if i, ok := at[[2]int64{int64(r.Partition), r.Offset}]; ok && string(r.Value) != string(mk(i).Value) {
			t.Fatalf("at %d/%d: %s, but the producer was told event %d is there", r.Partition, r.Offset, r.Value, i)
		}
	}
	for i := range n {
		if v := string(mk(i).Value); seen[v] != 1 {
			t.Fatalf("event %d (%s) stored %d times", i, v, seen[v])
		}
	}
}
