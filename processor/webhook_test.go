package processor_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// receiver is a webhook endpoint that keeps what it accepted, once per
// Idempotency-Key, as a receiver that honours the key does. It fails a
// request when fail says so.
type receiver struct {
	t    testing.TB
	fail func(keys []string) int // a status to answer instead of 200, or 0
	slow time.Duration

	mu       sync.Mutex
	bodies   map[string][]byte // by Idempotency-Key
	lines    map[string]int    // source offset -> times accepted
	requests int
	repeats  int // requests whose key was accepted before
}

func newReceiver(t testing.TB) (*receiver, *httptest.Server) {
	r := &receiver{t: t, bodies: map[string][]byte{}, lines: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	k := req.Header.Get(processor.HeaderIdempotencyKey)
	if rc.slow > 0 {
		time.Sleep(rc.slow)
	}
	var keys []string
	var offs []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l fileLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			rc.t.Errorf("webhook body line %q: %v", sc.Text(), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if l.Key != nil {
			keys = append(keys, *l.Key)
		}
		offs = append(offs, key(l.Pipeline, l.Partition, l.Offset))
	}
	if rc.fail != nil {
		if code := rc.fail(keys); code != 0 {
			rc.mu.Lock()
			rc.requests++
			rc.mu.Unlock()
			w.WriteHeader(code)
			fmt.Fprintf(w, "refused by the test")
			return
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if old, ok := rc.bodies[k]; ok {
		rc.repeats++
		if !bytes.Equal(old, body) {
			rc.t.Errorf("key %s came again with another body", k)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	rc.bodies[k] = body
	for _, o := range offs {
		rc.lines[o]++
	}
	w.WriteHeader(http.StatusOK)
}

// count returns how many source offsets were accepted, without the copy
// accepted makes (which, of a large map, would hold up the requests).
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.lines)
}

func (rc *receiver) accepted() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.lines))
	for k, v := range rc.lines {
		out[k] = v
	}
	return out
}

func webhookYAML(url string, extra string) string {
	return fmt.Sprintf(`
pipelines:
  - {name: orders, partitions: 1}
processors:
  - name: hook
    from: {pipeline: orders}
    sink: {type: webhook, url: %q, timeout: 5s}
%s`, url, extra)
}

// TestWebhookRefusalGoesToDeadLetter: a batch the receiver refuses with
// 400 goes to the dead-letter pipeline with the reason; the others reach
// the receiver once each.
func TestWebhookRefusalGoesToDeadLetter(t *testing.T) {
	rc, hs := newReceiver(t)
	rc.fail = func(keys []string) int {
		for _, k := range keys {
			if k == "poison" {
				return http.StatusBadRequest
			}
		}
		return 0
	}
	srv := sensetest.Start(t, webhookYAML(hs.URL, "    batch: {max_events: 10, linger: 1ms}\n"))
	c := dial(t, srv)
	const n = 200
	produce(t, c, "orders", n, func(i int) client.Event {
		k := fmt.Sprintf("k%d", i)
		if i == 55 {
			k = "poison"
		}
		return client.Event{Key: []byte(k), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	})
	all := readAll(t, c, "orders")
	var dead []client.Record
	waitFor(t, "the dead letter and the receiver to hold every event", 60*time.Second, func() bool {
		dead = readAll(t, c, "hook.dead-letter")
		got := rc.accepted()
		return len(dead) > 0 && len(got)+len(dead) >= n
	})
	got := rc.accepted()
	want := map[string]bool{}
	deadSet := map[string]bool{}
	for _, r := range dead {
		var reason, from string
		for _, h := range r.Headers {
			switch h.Key {
			case processor.HeaderDeadLetterReason:
				reason = string(h.Value)
			case processor.HeaderSource:
				from = string(h.Value)
			}
		}
		if !strings.Contains(reason, "HTTP 400") || !strings.Contains(reason, "refused by the test") {
			t.Fatalf("dead letter reason %q", reason)
		}
		deadSet[from] = true
	}
	if len(dead) > 10 || len(deadSet) != len(dead) {
		t.Fatalf("%d events in the dead letter (%d distinct): the refused batch holds at most 10", len(dead), len(deadSet))
	}
	for _, r := range all {
		k := key(r.Pipeline, r.Partition, r.Offset)
		if deadSet[k] {
			continue
		}
		want[k] = true
	}
	if !deadSet[key("orders", 0, 55)] {
		t.Fatalf("the poison event is not in the dead letter: %v", deadSet)
	}
	exactlyOnce(t, "webhook", got, want)
	if info := describe(t, c, "hook"); info.DeadLettered != uint64(len(dead)) {
		t.Fatalf("describe says %d dead-lettered, the pipeline holds %d", info.DeadLettered, len(dead))
	}
}

// slowSinkDuration is how long the slow-sink tests run their ingest;
// SENSE_PROCESSOR_SOAK=1 makes it a minute.
func slowSinkDuration() time.Duration {
	if os.Getenv("SENSE_PROCESSOR_SOAK") != "" {
		return time.Minute
	}
	return time.Second
}

// TestSlowAndFailingSink: behind a webhook ten times slower than ingest,
// then answering 500 for a while, the processor's memory stays within
// max_in_flight_bytes, its lag grows and then drains, and every event
// reaches the receiver once.
func TestSlowAndFailingSink(t *testing.T) {
	rc, hs := newReceiver(t)
	// The processor backs off 100ms, 200ms, ... up to 10s: 6 refusals in
	// a row make about 6s of a dead sink.
	const refusals = 6
	var failing atomic.Bool
	var fails atomic.Int64
	rc.fail = func([]string) int {
		if failing.Load() {
			if fails.Add(1) >= refusals {
				failing.Store(false) // recovers after some refusals
			}
			return http.StatusInternalServerError
		}
		return 0
	}
	rc.slow = 20 * time.Millisecond
	const budget = 256 << 10
	srv := sensetest.Start(t, webhookYAML(hs.URL, fmt.Sprintf("    batch: {max_events: 20, linger: 1ms}\n    max_in_flight_bytes: %d\n", budget)))
	c := dial(t, srv)
	// Ingest at about 10,000 events/s; the sink takes 20 events per 20ms
	// request, about 1,000/s.
	d := slowSinkDuration()
	ctx := t.Context()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "orders", BatchEvents: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var maxInFlight int64
	var maxLag int64
	sample := func() {
		info := describe(t, c, "hook")
		maxInFlight = max(maxInFlight, info.InFlightBytes)
		maxLag = max(maxLag, info.LagEvents)
	}
	var sent int
	errs := make(chan error, 1<<20)
	start := time.Now()
	for time.Since(start) < d {
		for i := 0; i < 100; i++ {
			p.Send(client.Event{Key: []byte(fmt.Sprintf("k%d", sent)), Value: bytes.Repeat([]byte{'x'}, 100)}, func(r client.Result) { errs <- r.Err })
			sent++
		}
		if sent%2000 == 0 {
			sample()
		}
		if sent == 3000 {
			failing.Store(true)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sent; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ingested := time.Now()
	atIngested := rc.count()
	want := map[string]bool{}
	for _, r := range readAll(t, c, "orders") {
		want[key(r.Pipeline, r.Partition, r.Offset)] = true
	}
	// The receiver takes about 1,000 events/s: allow twice that pace, and
	// the time the failing receiver refused, on a machine others share.
	logged, loggedN := ingested, atIngested
	waitFor(t, "the receiver to catch up", 2*time.Duration(sent)*time.Millisecond+2*time.Minute, func() bool {
		sample()
		n := rc.count()
		if d := time.Since(logged); d >= time.Minute {
			t.Logf("draining: %d of %d events at the receiver, %.0f events/s over the last %s", n, len(want), float64(n-loggedN)/d.Seconds(), d.Round(time.Second))
			logged, loggedN = time.Now(), n
		}
		return n >= len(want)
	})
	drain := time.Since(ingested)
	exactlyOnce(t, "slow webhook", rc.accepted(), want)
	t.Logf("ingest %s, then %d events left delivered in %s (%.0f events/s while lagging); %.0f events/s over the whole run",
		ingested.Sub(start).Round(time.Millisecond), len(want)-atIngested, drain.Round(time.Millisecond),
		float64(len(want)-atIngested)/drain.Seconds(), float64(len(want))/time.Since(start).Seconds())
	if maxInFlight > budget {
		t.Fatalf("in-flight bytes reached %d, past max_in_flight_bytes %d", maxInFlight, budget)
	}
	if maxLag < 1000 {
		t.Fatalf("lag never grew past %d events behind a sink ten times slower than ingest", maxLag)
	}
	waitFor(t, "the lag to drain", time.Minute, func() bool { return describe(t, c, "hook").LagEvents == 0 })
	info := describe(t, c, "hook")
	if fails.Load() < refusals || info.Retries < refusals {
		t.Fatalf("%d refusals answered, %d retries counted", fails.Load(), info.Retries)
	}
	t.Logf("sent %d, max in flight %d bytes, max lag %d events, retries %d, %d requests", sent, maxInFlight, maxLag, info.Retries, rc.requests)
}

// TestDeadSinkDoesNotStallOthers: beside a processor whose webhook never
// answers, another processor of the same pipeline delivers everything,
// and the stalled one holds no more than its max_in_flight_bytes.
func TestDeadSinkDoesNotStallOthers(t *testing.T) {
	hang := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer dead.Close()
	defer close(hang)
	dir := t.TempDir()
	const budget = 128 << 10
	srv := sensetest.Start(t, fmt.Sprintf(`
pipelines:
  - {name: orders, partitions: 1}
processors:
  - name: stuck
    from: {pipeline: orders}
    sink: {type: webhook, url: %q, timeout: 1s}
    max_in_flight_bytes: %d
  - name: files
    from: {pipeline: orders}
    sink: {type: file, dir: %q}
`, dead.URL, budget, dir))
	c := dial(t, srv)
	const n = 5000
	produce(t, c, "orders", n, func(i int) client.Event {
		return client.Event{Value: bytes.Repeat([]byte{'x'}, 100)}
	})
	waitFor(t, "the healthy processor to deliver everything", time.Minute, func() bool { return describe(t, c, "files").Delivered == n })
	info := describe(t, c, "stuck")
	if info.Delivered != 0 || info.InFlightBytes > budget || info.LagEvents != n {
		t.Fatalf("the stuck processor: %+v", info)
	}
}
