package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// start runs an in-process server (dev mode when yaml is empty) and
// returns its native address.
func start(t testing.TB, yaml string) string {
	t.Helper()
	return sensetest.Start(t, yaml).NativeAddr().String()
}

func dial(t testing.TB, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func createPipeline(t testing.TB, c *client.Client, name string, partitions int) {
	t.Helper()
	if _, err := c.Admin(testCtx(t, 10*time.Second), admin.CreatePipeline{Pipeline: name, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// consume reads exactly n records from the pipeline, then checks that no
// more arrive for a moment.
func consume(t testing.TB, c *client.Client, pipeline string, from int64, n int) []client.Record {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: pipeline, From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var out []client.Record
	for len(out) < n {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, r)
	}
	if r, err := cs.NextWithin(ctx, 200*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
		t.Fatalf("after %d records: got %+v, %v; want ErrNoRecord", n, r, err)
	}
	return out
}

// results collects the results of async sends.
type results struct {
	mu  sync.Mutex
	res map[int]client.Result
	dup int
}

func newResults() *results { return &results{res: map[int]client.Result{}} }

func (rs *results) done(i int) func(client.Result) {
	return func(r client.Result) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if _, ok := rs.res[i]; ok {
			rs.dup++
		}
		rs.res[i] = r
	}
}

// check verifies that every event 0..n-1 has exactly one successful
// result and that no two share an offset, and returns value by position.
func (rs *results) check(t testing.TB, n int) map[[2]int64]int {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.dup != 0 {
		t.Fatalf("%d events got more than one result", rs.dup)
	}
	if len(rs.res) != n {
		t.Fatalf("%d results, want %d", len(rs.res), n)
	}
	at := map[[2]int64]int{}
	for i := range n {
		r, ok := rs.res[i]
		if !ok || r.Err != nil || r.Partition < 0 || r.Offset < 0 {
			t.Fatalf("event %d: result %+v (present %v)", i, r, ok)
		}
		k := [2]int64{int64(r.Partition), r.Offset}
		if j, ok := at[k]; ok {
			t.Fatalf("events %d and %d both at partition %d offset %d", j, i, r.Partition, r.Offset)
		}
		at[k] = i
	}
	return at
}

func TestProduceAsyncConsumeAll(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "events"})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := p.ProducerID(); id < 0 {
		t.Fatalf("producer id %d: idempotence should be on by default", id)
	}
	const n = 10000
	ts := time.UnixMilli(1_700_000_000_123)
	began := time.Now()
	rs := newResults()
	val := make([]byte, 0, 32)
	for i := range n {
		ev := client.Event{Value: fmt.Appendf(val[:0], "value-%05d", i)} // reused buffer: Send copies
		switch i % 10 {
		case 1:
			ev.Key = []byte(fmt.Sprintf("key-%d", i%7))
		case 2:
			ev.HasPriority, ev.Priority = true, event.Critical
		case 3:
			ev.Headers = []client.Header{{Key: "trace", Value: []byte(fmt.Sprint(i))}, {Key: "empty", Value: []byte{}}}
		case 4:
			ev.Timestamp = ts
		}
		p.Send(ev, rs.done(i))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	at := rs.check(t, n)
	flushed := time.Now()
	rs.mu.Lock()
	for i, r := range rs.res {
		// When the answer was read: after the send began, before Flush returned.
		if r.Answered.Before(began) || r.Answered.After(flushed) {
			t.Fatalf("event %d answered at %v, outside the send (%v to %v)", i, r.Answered, began, flushed)
		}
	}
	rs.mu.Unlock()

	recs := consume(t, c, "events", client.Earliest, n)
	seen := make([]bool, n)
	partitions := map[int32]bool{}
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "value-%05d", &i); err != nil || i < 0 || i >= n {
			t.Fatalf("record %+v: unexpected value", r)
		}
		if seen[i] {
			t.Fatalf("value %d read twice", i)
		}
		seen[i] = true
		if j, ok := at[[2]int64{int64(r.Partition), r.Offset}]; !ok || j != i {
			t.Fatalf("record %d at %d/%d, but the producer was told event %d is there", i, r.Partition, r.Offset, j)
		}
		partitions[r.Partition] = true
		if r.Received.Before(flushed) || r.Received.After(time.Now()) {
			t.Fatalf("record %d received at %v: want after the produce (%v), before now", i, r.Received, flushed)
		}
		if r.Pipeline != "events" || r.Hub != "local" || r.Mask != 1 {
			t.Fatalf("record %d: pipeline %q hub %q mask %b", i, r.Pipeline, r.Hub, r.Mask)
		}
		wantPrio := event.Low
		if i%10 == 2 {
			wantPrio = event.Critical
		}
		if r.Priority != wantPrio {
			t.Fatalf("record %d: priority %v, want %v", i, r.Priority, wantPrio)
		}
		if i%10 == 1 {
			if want := fmt.Sprintf("key-%d", i%7); string(r.Key) != want {
				t.Fatalf("record %d: key %q, want %q", i, r.Key, want)
			}
		} else if r.Key != nil {
			t.Fatalf("record %d: key %q, want none", i, r.Key)
		}
		if i%10 == 3 {
			if len(r.Headers) != 2 || r.Headers[0].Key != "trace" || string(r.Headers[0].Value) != fmt.Sprint(i) ||
				r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 {
				t.Fatalf("record %d: headers %+v", i, r.Headers)
			}
		} else if len(r.Headers) != 0 {
			t.Fatalf("record %d: headers %+v, want none (routing headers are not user headers)", i, r.Headers)
		}
		if i%10 == 4 && !r.Timestamp.Equal(ts) {
			t.Fatalf("record %d: timestamp %v, want %v", i, r.Timestamp, ts)
		}
		if i%10 != 4 && time.Since(r.Timestamp) > time.Minute {
			t.Fatalf("record %d: server timestamp %v is not recent", i, r.Timestamp)
		}
	}
	if len(partitions) < 2 {
		t.Fatalf("records in partitions %v; want the low and critical lanes", partitions)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyedEventsKeepTheirPartition(t *testing.T) {
	c := dial(t, start(t, ""))
	createPipeline(t, c, "keyed", 4)
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "keyed", BatchEvents: 37})
	if err != nil {
		t.Fatal(err)
	}
	const keys, per = 40, 25
	rs := newResults()
	for j := range per {
		for k := range keys {
			p.Send(client.Event{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf("%d/%d", k, j))}, rs.done(j*keys+k))
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	rs.check(t, keys*per)
	used := map[int32]bool{}
	for k := range keys {
		first := rs.res[k]
		last := first.Offset
		for j := 1; j < per; j++ {
			r := rs.res[j*keys+k]
			if r.Partition != first.Partition {
				t.Fatalf("key k%d: event %d in partition %d, the first in %d", k, j, r.Partition, first.Partition)
			}
			if r.Offset <= last {
				t.Fatalf("key k%d: event %d at offset %d, not after %d", k, j, r.Offset, last)
			}
			last = r.Offset
		}
		used[first.Partition] = true
	}
	if len(used) < 2 {
		t.Fatalf("%d keys all landed in partitions %v of 4 low-lane partitions", keys, used)
	}
	// Read back: per key, the values come in send order.
	recs := consume(t, c, "keyed", client.Earliest, keys*per)
	next := map[string]int{}
	for _, r := range recs {
		var k, j int
		fmt.Sscanf(string(r.Value), "%d/%d", &k, &j)
		if j != next[string(r.Key)] {
			t.Fatalf("key %s: read value %d, want %d", r.Key, j, next[string(r.Key)])
		}
		next[string(r.Key)]++
	}
}

func TestProduceSync(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "sync", Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var prev client.Result
	for i := range 20 {
		t0 := time.Now()
		r := p.Produce(ctx, client.Event{Key: []byte("same"), Value: []byte(fmt.Sprint(i))})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if time.Since(t0) > 10*time.Second {
			t.Fatal("Produce waited for the linger")
		}
		if i > 0 && (r.Partition != prev.Partition || r.Offset != prev.Offset+1) {
			t.Fatalf("event %d at %d/%d after %d/%d", i, r.Partition, r.Offset, prev.Partition, prev.Offset)
		}
		prev = r
	}
	if prev.Offset != 19 {
		t.Fatalf("last offset %d, want 19", prev.Offset)
	}
	// A cancelled context returns at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r := p.Produce(cctx, client.Event{Value: []byte("x")}); !errors.Is(r.Err, context.Canceled) && r.Err != nil {
		t.Fatalf("Produce with a cancelled context: %v", r.Err)
	}
}

// proxy forwards frames between clients and a server. When armed, it
// forwards the next PRODUCE to the server, waits for the server's answer,
// and then drops both connections instead of forwarding it: the request
// is stored, but the client never learns it.
type proxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	hold   atomic.Bool // stop forwarding requests to the server
	conns  atomic.Int32
	drops  atomic.Int32
	mu     sync.Mutex
	open   []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target}
	t.Cleanup(px.close)
	go px.serve()
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

func (px *proxy) close() {
	px.ln.Close()
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.open {
		c.Close()
	}
}

func (px *proxy) serve() {
	for {
		cc, err := px.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", px.target)
		if err != nil {
			cc.Close()
			continue
		}
		px.conns.Add(1)
		px.mu.Lock()
		px.open = append(px.open, cc, sc)
		px.mu.Unlock()
		go px.pipe(cc, sc)
	}
}

func (px *proxy) pipe(cc, sc net.Conn) {
	var dropCorr atomic.Uint32
	closeBoth := func() { cc.Close(); sc.Close() }
	go func() { // client -> server
		defer closeBoth()
		rd := wire.NewReader(cc)
		for {
			f, err := rd.Next()
			if err != nil {
				return
			}
			for px.hold.Load() && f.Type == wire.TypeProduce {
				time.Sleep(time.Millisecond)
			}
			if f.Type == wire.TypeProduce && px.armed.CompareAndSwap(true, false) {
				dropCorr.Store(f.Corr)
			}
			if _, err := sc.Write(wire.AppendFrame(nil, f.Type, f.Flags, f.Corr, f.Payload)); err != nil {
				return
			}
		}
	}()
	defer closeBoth()
	rd := wire.NewReader(sc)
	for {
		f, err := rd.Next()
		if err != nil {
			return
		}
		if c := dropCorr.Load(); c != 0 && f.Corr == c {
			px.drops.Add(1)
			return
		}
		if _, err := cc.Write(wire.AppendFrame(nil, f.Type, f.Flags, f.Corr, f.Payload)); err != nil {
			return
		}
	}
}

func TestIdempotentRetryAfterLostConnection(t *testing.T) {
	addr := start(t, "")
	direct := dial(t, addr)
	createPipeline(t, direct, "idem", 2) // 6 partitions: requests span several
	px := newProxy(t, addr)
	c := dial(t, px.addr())
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "idem", BatchEvents: 50, RetryBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	rs := newResults()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			ev := client.Event{Value: []byte(fmt.Sprintf("e%05d", i))}
			if i%3 == 0 {
				ev.HasPriority, ev.Priority = true, event.Priority(i%9/3)
			}
			p.Send(ev, rs.done(i))
		}
	}
	send(0, 1000)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	px.armed.Store(true)
	send(1000, 2000)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	px.armed.Store(true)
	send(2000, n)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d, cs := px.drops.Load(), px.conns.Load(); d != 2 || cs != 3 {
		t.Fatalf("proxy dropped %d answers over %d connections; want 2 over 3", d, cs)
	}
	at := rs.check(t, n)

	// Every event is stored exactly once, at the offset its result gave.
	recs := consume(t, direct, "idem", client.Earliest, n)
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("%s stored twice", r.Value)
		}
		seen[string(r.Value)] = true
		i := at[[2]int64{int64(r.Partition), r.Offset}]
		if want := fmt.Sprintf("e%05d", i); string(r.Value) != want {
			t.Fatalf("at %d/%d: %s, but the producer was told %s is there", r.Partition, r.Offset, r.Value, want)
		}
	}
}

func TestNonIdempotentProducerStillDelivers(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "plain", DisableIdempotence: true, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := p.ProducerID(); id != -1 {
		t.Fatalf("producer id %d, want -1", id)
	}
	rs := newResults()
	for i := range 500 {
		p.Send(client.Event{Value: []byte(fmt.Sprint(i))}, rs.done(i))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	rs.check(t, 500)
}

const twoJurisdictions = `
node: {id: t1}
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
pipelines:
  - {name: pay, partitions: 1}
`

func TestNoCompliantHub(t *testing.T) {
	c := dial(t, start(t, twoJurisdictions))
	ctx := testCtx(t, 30*time.Second)
	reg, err := c.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Registry(ctx); again != reg {
		t.Fatal("Registry is not cached")
	}
	ma, err := reg.Parse("MA")
	if err != nil {
		t.Fatal(err)
	}
	sn, err := reg.Parse("SN")
	if err != nil {
		t.Fatal(err)
	}
	for _, retries := range []int{-1, 2} {
		p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "pay", MaxRetries: retries, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r := p.Produce(ctx, client.Event{Value: []byte("senegal only"), Mask: sn})
		if !errors.Is(r.Err, result.ErrNoCompliantHub) || r.Partition != -1 || r.Offset != -1 {
			t.Fatalf("MaxRetries %d: result %+v, want NO_COMPLIANT_HUB", retries, r)
		}
		if code := result.CodeOf(r.Err); code != result.NoCompliantHub || !code.Retriable() {
			t.Fatalf("code %v", code)
		}
		if r := p.Produce(ctx, client.Event{Value: []byte("morocco"), Mask: ma}); r.Err != nil {
			t.Fatalf("MA event: %v", r.Err)
		}
		// A mask outside the registry is refused for good.
		if r := p.Produce(ctx, client.Event{Value: []byte("?"), Mask: 1 << 5}); !errors.Is(r.Err, result.ErrInvalidMask) {
			t.Fatalf("mask outside the registry: %v", r.Err)
		}
		p.Close()
	}
	recs := consume(t, c, "pay", client.Earliest, 2)
	for _, r := range recs {
		if r.Mask != ma || r.Hub != "tangier" || string(r.Value) != "morocco" {
			t.Fatalf("stored %+v", r)
		}
	}
}

func TestRefusedEventsAreRetried(t *testing.T) {
	srv := sensetest.Start(t, twoJurisdictions)
	c := dial(t, srv.NativeAddr().String())
	ctx := testCtx(t, 30*time.Second)
	// refusals reads the server's count of events of the pipeline refused
	// with NO_COMPLIANT_HUB (sense_events_dropped_total, reason
	// no_compliant_hub); 0 while the series does not exist.
	refusals := func() float64 {
		t.Helper()
		mfs, err := srv.Node.Metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "sense_events_dropped_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["pipeline"] == "pay" && labels["reason"] == "no_compliant_hub" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	setHub := func(status string) {
		if _, err := c.Admin(ctx, admin.SetHubStatus{Hub: "tangier", Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "pay", MaxRetries: 50, RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The only hub is down from before the first send, so every event's
	// first attempt is refused (NO_COMPLIANT_HUB, retriable). The hub
	// comes back only once the server has counted the ten refusals.
	setHub("down")
	if n := refusals(); n != 0 {
		t.Fatalf("%v refusals before any send", n)
	}
	const events = 10
	rs := newResults()
	for i := range events {
		p.Send(client.Event{Value: []byte(fmt.Sprint(i))}, rs.done(i))
	}
	for refusals() < events {
		if ctx.Err() != nil {
			t.Fatalf("%v refusals while the hub was down, want at least %d", refusals(), events)
		}
		time.Sleep(time.Millisecond)
	}
	setHub("up")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Every event has one successful result, and the pipeline holds each
	// exactly once.
	rs.check(t, events)
	stored := map[string]int{}
	for _, r := range consume(t, c, "pay", client.Earliest, events) {
		stored[string(r.Value)]++
	}
	for i := range events {
		if n := stored[fmt.Sprint(i)]; n != 1 {
			t.Errorf("event %d stored %d times, want once", i, n)
		}
	}
	t.Logf("%v refusals in all", refusals())
}

func TestConsumerFromLatest(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "tail"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 100 {
		p.Send(client.Event{Value: []byte(fmt.Sprintf("old-%d", i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "tail", From: client.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	total := int64(0)
	for part, hw := range cs.HighWatermarks() {
		total += hw
		if pos := cs.Positions()[part]; pos != hw {
			t.Fatalf("partition %d: position %d, high watermark %d", part, pos, hw)
		}
	}
	if total != 100 {
		t.Fatalf("high watermarks add up to %d, want 100", total)
	}
	if r, err := cs.NextWithin(ctx, 100*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
		t.Fatalf("from Latest before new events: %+v, %v", r, err)
	}
	for i := range 50 {
		p.Send(client.Event{Value: []byte(fmt.Sprintf("new-%d", i))}, nil)
	}
	got := 0
	for got < 50 {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(r.Value, []byte("new-")) {
			t.Fatalf("read %q", r.Value)
		}
		got++
	}
	if r, err := cs.NextWithin(ctx, 200*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
		t.Fatalf("after the new events: %+v, %v", r, err)
	}
	total = 0
	for _, hw := range cs.HighWatermarks() {
		total += hw
	}
	if total != 150 {
		t.Fatalf("high watermarks add up to %d, want 150", total)
	}
}

func TestConsumerFromOffsetAndFetch(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "offs", BatchEvents: 7})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		p.Send(client.Event{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Offset 45 lies inside a batch: records before it are skipped. Other
	// (empty) partitions clamp 45 to their high watermark.
	recs := consume(t, c, "offs", 45, 55)
	for i, r := range recs {
		if r.Offset != int64(45+i) || string(r.Value) != fmt.Sprint(45+i) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
	}
	part := recs[0].Partition
	f, err := c.Fetch(ctx, "offs", part, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Records) == 0 || f.Records[0].Offset != 10 || f.HighWatermark != 100 || f.NextOffset <= 10 {
		t.Fatalf("fetch: %d records, first %+v, hw %d, next %d", len(f.Records), f.Records, f.HighWatermark, f.NextOffset)
	}
	if _, err := c.Fetch(ctx, "offs", part, 500, 0); !errors.Is(err, result.ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the end: %v", err)
	}
	// Starts overrides From for its partition: resume at 98 there.
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "offs", Partitions: []int32{part},
		From: client.Earliest, Starts: map[int32]int64{part: 98}})
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(98); want < 100; want++ {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != want {
			t.Fatalf("resumed consumer read offset %d, want %d", r.Offset, want)
		}
	}
	cs.Close()
	if _, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "offs", Starts: map[int32]int64{part: -7}}); err == nil {
		t.Fatal("Starts of -7 accepted")
	}
	// Subscribing to a partition the pipeline lacks fails.
	if _, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "offs", Partitions: []int32{99}}); err == nil {
		t.Fatal("subscribed to partition 99")
	}
}

func TestFlushAndClose(t *testing.T) {
	addr := start(t, "")
	px := newProxy(t, addr)
	c := dial(t, px.addr())
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "fc", Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil { // nothing sent: at once
		t.Fatal(err)
	}
	// Flush sends a lingering batch at once and returns after its callbacks.
	var called atomic.Int32
	for range 10 {
		p.Send(client.Event{Value: []byte("x")}, func(r client.Result) {
			if r.Err == nil {
				called.Add(1)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if called.Load() != 10 {
		t.Fatalf("%d callbacks after Flush, want 10", called.Load())
	}
	// Flush gives up when its context ends while the server does not answer.
	px.hold.Store(true)
	p.Send(client.Event{Value: []byte("held")}, func(r client.Result) { called.Add(1) })
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.Flush(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush of a held event: %v", err)
	}
	px.hold.Store(false)
	// Close flushes.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if called.Load() != 11 {
		t.Fatalf("%d callbacks after Close, want 11", called.Load())
	}
	// After Close, Send reports ErrClosed at once, and Close is idempotent.
	var after client.Result
	p.Send(client.Event{Value: []byte("late")}, func(r client.Result) { after = r })
	if !errors.Is(after.Err, client.ErrClosed) {
		t.Fatalf("Send after Close: %+v", after)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// Closing the Client fails what is pending with ErrClosed.
	p2, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "fc"})
	if err != nil {
		t.Fatal(err)
	}
	px.hold.Store(true)
	res := make(chan client.Result, 1)
	p2.Send(client.Event{Value: []byte("never")}, func(r client.Result) { res <- r })
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case r := <-res:
		if !errors.Is(r.Err, client.ErrClosed) {
			t.Fatalf("pending event after Client.Close: %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("no result after Client.Close")
	}
	px.hold.Store(false)
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "fc"}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("NewProducer on a closed client: %v", err)
	}
}

func TestConsumerCloseAndErrors(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	if _, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "nope"}); err == nil {
		t.Fatal("consumer of an unknown pipeline")
	}
	var ae *client.AdminError
	if _, err := c.Admin(ctx, admin.DescribePipeline{Pipeline: "nope"}); !errors.As(err, &ae) {
		t.Fatalf("describe of an unknown pipeline: %v", err)
	}
	createPipeline(t, c, "cc", 1)
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "cc", From: client.Earliest})
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.Partitions(); len(got) != 3 {
		t.Fatalf("partitions %v, want the 3 lanes", got)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := cs.Next(ctx)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next during Close: %v", err)
	}
	// The connection stays usable.
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionLossEndsSubscriptions(t *testing.T) {
	addr := start(t, "")
	px := newProxy(t, addr)
	c := dial(t, px.addr())
	ctx := testCtx(t, 30*time.Second)
	createPipeline(t, c, "loss", 1)
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "loss"})
	if err != nil {
		t.Fatal(err)
	}
	px.close()
	if _, err := cs.Next(ctx); !errors.Is(err, client.ErrConnectionLost) {
		t.Fatalf("Next after the connection dropped: %v", err)
	}
	cs.Close()
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = client.Dial(testCtx(t, 5*time.Second), client.Options{Addr: addr})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(addr)) {
		t.Fatalf("dial of a closed port: %v (want the address in it)", err)
	}
}

func TestEventTooLarge(t *testing.T) {
	c := dial(t, start(t, ""))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "big"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := p.Produce(ctx, client.Event{Value: make([]byte, 2<<20)})
	if !errors.Is(r.Err, result.ErrEventTooLarge) {
		t.Fatalf("2 MiB event: %+v", r)
	}
	if r := p.Produce(ctx, client.Event{Value: make([]byte, 512<<10)}); r.Err != nil {
		t.Fatalf("512 KiB event: %v", r.Err)
	}
}
