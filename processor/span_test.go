package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/jurisdiction"
)

func TestIntentMetadata(t *testing.T) {
	for _, tc := range []struct {
		md   string
		want *intent
	}{
		{"pending:5-9:", &intent{first: 5, last: 9}},
		{"pending:5-9:0=12,1=40", &intent{first: 5, last: 9, state: "0=12,1=40"}},
		{"pending:0-59/20,20:s", &intent{first: 0, last: 59, sizes: []int64{20, 20}, state: "s"}},
		{"deadletter:5-9:s\nHTTP 400", &intent{first: 5, last: 9, dead: true, state: "s", reason: "HTTP 400"}},
		{"pending:0-59/60:", nil},   // no offset left for the last batch
		{"pending:0-59/0,20:", nil}, // an empty batch
		{"pending:0-59/:", nil},
		{"pending:9-5:", nil},
		{"deadletter:0-59/20:s\nr", nil},
		{"", nil},
		{"pending:x-5:", nil},
	} {
		got, ok := parseIntent(tc.md)
		if tc.want == nil {
			if ok {
				t.Errorf("%q parsed as %+v", tc.md, got)
			}
			continue
		}
		if !ok || got.first != tc.want.first || got.last != tc.want.last || !slices.Equal(got.sizes, tc.want.sizes) ||
			got.dead != tc.want.dead || got.state != tc.want.state || got.reason != tc.want.reason {
			t.Errorf("%q parsed as %+v, %v; want %+v", tc.md, got, ok, tc.want)
			continue
		}
		if md := got.metadata(); md != tc.md {
			t.Errorf("%q written back as %q", tc.md, md)
		}
	}
	in := &intent{first: 0, last: 59, sizes: []int64{20, 15}}
	var ranges []string
	for ; in != nil; in = in.rest() {
		f, l := in.head()
		ranges = append(ranges, fmt.Sprintf("%d-%d", f, l))
	}
	if want := []string{"0-19", "20-34", "35-59"}; !slices.Equal(ranges, want) {
		t.Fatalf("span batches %v, want %v", ranges, want)
	}
}

func FuzzParseIntent(f *testing.F) {
	for _, s := range []string{"pending:5-9:", "pending:0-59/20,20:s", "deadletter:5-9:s\nr", "pending:0-9223372036854775807/9223372036854775807:",
		"pending:-1-5:", "pending:0-59/-20,80:", "pending:0-0/1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, md string) {
		in, ok := parseIntent(md)
		if !ok {
			return
		}
		n := 0
		for r := in; r != nil; r = r.rest() {
			first, last := r.head()
			if first < in.first || last > in.last || last < first {
				t.Fatalf("%q: batch %d-%d out of %d-%d", md, first, last, in.first, in.last)
			}
			n++
		}
		if n > maxSpan {
			t.Fatalf("%q: %d batches", md, n)
		}
		back, ok := parseIntent(in.metadata())
		if !ok || back.first != in.first || back.last != in.last || !slices.Equal(back.sizes, in.sizes) {
			t.Fatalf("%q: written back as %q", md, in.metadata())
		}
	})
}

// spanGroup is a Group of one member whose commits are kept in memory.
// breakOff ends the generation (a rebalance: the member joins again) or
// the whole group (a crash: it refuses everything, and what it had
// committed is what a new process would find).
type spanGroup struct {
	mu        sync.Mutex
	gen       int32
	down      bool
	committed map[int32]group.CommittedOffset
}

func (g *spanGroup) Join(context.Context, group.JoinRequest) (group.JoinResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return group.JoinResult{}, errors.New("down")
	}
	return group.JoinResult{Generation: g.gen, LeaderID: "m", MemberID: "m", Members: []group.MemberMetadata{{MemberID: "m"}}}, nil
}

func (g *spanGroup) check(ref group.MemberRef) error {
	if g.down || ref.Generation != g.gen {
		return group.ErrIllegalGeneration
	}
	return nil
}

func (g *spanGroup) Sync(_ context.Context, ref group.MemberRef, _ []group.MemberAssignment) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return []byte("0"), g.check(ref)
}

func (g *spanGroup) Heartbeat(_ context.Context, ref group.MemberRef) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.check(ref)
}

func (g *spanGroup) Leave(context.Context, string, string) {}

func (g *spanGroup) Commit(_ context.Context, ref group.MemberRef, commits []group.OffsetCommit) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.check(ref); err != nil {
		return err
	}
	for _, c := range commits {
		g.committed[c.Partition] = c.CommittedOffset
	}
	return nil
}

func (g *spanGroup) Committed(context.Context, string, string) (map[int32]group.CommittedOffset, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.committed), nil
}

func (g *spanGroup) Close() error { return nil }

// breakOff ends the generation, or with crash the group, and returns
// what was committed.
func (g *spanGroup) breakOff(crash bool) map[int32]group.CommittedOffset {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	g.down = crash
	return maps.Clone(g.committed)
}

// spanSource is one partition of n records at the even offsets 0, 2, 4,
// ...; a fetch reads at most to the end of its block of perFetch records
// (blocks are fixed, so that batches are cut the same way in every run).
type spanSource struct {
	n, perFetch int
}

func (s *spanSource) Registry(context.Context) (*jurisdiction.Registry, error) { return nil, nil }

func (s *spanSource) Partitions(context.Context, string) ([]SourcePartition, error) {
	return []SourcePartition{{Partition: 0, Start: 0, HighWatermark: int64(2 * s.n)}}, nil
}

func (s *spanSource) Fetch(ctx context.Context, _ string, _ int32, off int64, _ int) (Fetched, error) {
	i := int((off + 1) / 2) // the first record at or after off
	if i >= s.n {
		<-ctx.Done()
		return Fetched{Next: off, HighWatermark: int64(2 * s.n)}, nil
	}
	end := min(s.n, (i/s.perFetch+1)*s.perFetch)
	f := Fetched{HighWatermark: int64(2 * s.n), Next: int64(2*(end-1) + 1)}
	for ; i < end; i++ {
		f.Records = append(f.Records, client.Record{Pipeline: "orders", Offset: int64(2 * i), Value: fmt.Appendf(nil, "%d", i)})
		f.Bytes += 100
	}
	return f, nil
}

func (s *spanSource) Produce(context.Context, string, []Event) error {
	return errors.New("no dead letter in this test")
}

// spanSink keeps every delivery. Delivery number stopAt is stored, then
// calls stop and never answers (until its context ends).
type spanSink struct {
	stopAt int
	stop   func()

	mu      sync.Mutex
	n       int
	keys    map[string][]int64 // offsets delivered under each key
	retried map[string]bool    // keys delivered with Retry
	stopped string             // the key of delivery stopAt
	bad     []string
}

func (s *spanSink) Deliver(ctx context.Context, b *Batch) error {
	offs := make([]int64, len(b.Records))
	for i, r := range b.Records {
		offs[i] = r.Offset
	}
	k := b.IdempotencyKey()
	s.mu.Lock()
	s.n++
	n := s.n
	if old, ok := s.keys[k]; ok && !slices.Equal(old, offs) {
		s.bad = append(s.bad, fmt.Sprintf("%s came with %v, then with %v", k, old, offs))
	}
	s.keys[k] = offs
	if b.Retry {
		s.retried[k] = true
	}
	if n == s.stopAt {
		s.stopped = k
	}
	s.mu.Unlock()
	if n == s.stopAt {
		s.stop()
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *spanSink) Close() error { return nil }

// covered returns how many records the distinct keys delivered hold.
func (s *spanSink) covered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, offs := range s.keys {
		n += len(offs)
	}
	return n
}

// TestSpanInterrupted: a processor that lags delivers spans of batches
// under one intent each. A crash (the group's state is all a new process
// finds) or a rebalance (the member joins again) in the middle of a span,
// while a batch is at the sink, makes the processor deliver the rest of
// the span again in the same batches, with the same idempotency keys,
// from the committed intent; then it goes on. Each event is delivered
// under one key only.
func TestSpanInterrupted(t *testing.T) {
	for _, crash := range []bool{true, false} {
		t.Run(map[bool]string{true: "crash", false: "rebalance"}[crash], func(t *testing.T) { testSpanInterrupted(t, crash) })
	}
}

func testSpanInterrupted(t *testing.T, crash bool) {
	const (
		n        = 600 // records, at offsets 0, 2, ..., 1198
		perFetch = 100 // records per fetch: spans of 10 batches
		maxBatch = 10
		stopAt   = 15 // the 5th batch of the second span
	)
	cfg := config.Processor{Name: "p", From: config.ProcessorFrom{Pipeline: "orders"},
		Sink:  config.ProcessorSink{Type: config.SinkWebhook, Timeout: config.Duration(5 * time.Second)},
		Batch: config.ProcessorBatch{MaxEvents: maxBatch, Linger: config.Duration(time.Millisecond)}, MaxInFlightBytes: 1 << 20, DeadLetter: "p.dead-letter"}
	src := &spanSource{n: n, perFetch: perFetch}
	g := &spanGroup{gen: 1, committed: map[int32]group.CommittedOffset{}}
	var found map[int32]group.CommittedOffset
	broken := make(chan struct{})
	sink := &spanSink{stopAt: stopAt, keys: map[string][]int64{}, retried: map[string]bool{}}
	sink.stop = func() {
		found = g.breakOff(crash)
		close(broken)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(g Group) (stop func()) {
		p, err := newProcessor(cfg, src, nil, g, sink, newMetrics(nil), "test", log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.run(ctx)
		}()
		return func() { cancel(); <-done }
	}
	stop := start(g)
	select {
	case <-broken:
	case <-time.After(time.Minute):
		t.Fatal("the sink never got its 15th batch")
	}
	if crash {
		stop()
		// A new process finds what the group had committed.
		stop = start(&spanGroup{gen: 1, committed: maps.Clone(found)})
	}
	defer func() { stop() }()
	in, ok := parseIntent(found[0].Metadata)
	if !ok || len(in.sizes) == 0 || in.first < 200 || in.last != 398 {
		t.Fatalf("committed %+v when the batch was at the sink: not the intent of the rest of the second span", found[0])
	}
	deadline := time.Now().Add(time.Minute)
	for sink.covered() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records delivered", sink.covered(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.bad) > 0 {
		t.Fatal(sink.bad)
	}
	// The batches are those cut before: per block of 100 records
	// (offsets 200b to 200b+198), one span of 10 batches of 10 records,
	// each from the offset after the one before.
	var want []string
	for b := int64(0); b < n/perFetch; b++ {
		from := 200 * b
		for j := int64(0); j < perFetch/maxBatch; j++ {
			last := 200*b + 20*j + 18
			want = append(want, fmt.Sprintf("orders/0/%d-%d", from, last))
			from = last + 1
		}
	}
	got := slices.Sorted(maps.Keys(sink.keys))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered the keys\n%v\nwant\n%v", got, want)
	}
	seen := map[int64]bool{}
	for k, offs := range sink.keys {
		for _, o := range offs {
			if seen[o] {
				t.Fatalf("offset %d delivered under two keys (one is %s)", o, k)
			}
			seen[o] = true
		}
	}
	if !sink.retried[sink.stopped] {
		t.Fatalf("the batch at the sink when the span was cut off, %s, was not delivered again with Retry", sink.stopped)
	}
	for k := range sink.retried {
		var f, l int64
		fmt.Sscanf(k, "orders/0/%d-%d", &f, &l)
		if f < in.first || l > in.last {
			t.Fatalf("%s delivered again, outside the intent %d-%d", k, in.first, in.last)
		}
	}
}
