package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// produceMasked produces n events named prefix-i with the given mask on
// node i of c and returns their values, every one acknowledged.
func produceMasked(t *testing.T, c *sensetest.Cluster, at int, prefix, juris string, n int) []string {
	t.Helper()
	return produceTo(t, c.NativeAddr(at), prefix, juris, n)
}

// maskedProducer dials the native listener at addr and returns the client,
// a producer to payments, and the mask juris names in the node's registry.
func maskedProducer(t *testing.T, ctx context.Context, addr, juris string) (*client.Client, *client.Producer, jurisdiction.Mask) {
	t.Helper()
	cl, err := client.Dial(ctx, client.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cl.Registry(ctx)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	mask, err := reg.Parse(juris)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments", MaxRetries: 50})
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	return cl, p, mask
}

// produceTo produces n events named prefix-i with the given mask to the
// native listener at addr and returns their values, every one
// acknowledged.
func produceTo(t *testing.T, addr, prefix, juris string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, p, mask := maskedProducer(t, ctx, addr, juris)
	defer cl.Close()
	defer p.Close()
	var mu sync.Mutex
	var values []string
	var errs []error
	for i := range n {
		v := fmt.Sprintf("%s-%d", prefix, i)
		p.Send(client.Event{Key: []byte(v), Value: []byte(v), Mask: mask}, func(r client.Result) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil {
				errs = append(errs, r.Err)
				return
			}
			values = append(values, v)
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d of %d %s events refused: %v", len(errs), n, prefix, errs[0])
	}
	return values
}

// storedEverywhere reads every partition of payments on node i and returns
// each value with the hub it is in, its mask, and its sense.from header.
type storedRec struct {
	hub, from string
	mask      jurisdiction.Mask
}

func storedOn(t *testing.T, s *server.Server) map[string][]storedRec {
	t.Helper()
	out := map[string][]storedRec{}
	parts, code := s.Node.Partitions("payments")
	if code != result.OK {
		t.Fatal(code)
	}
	for _, p := range parts {
		eachRecord(t, s, "payments", p.Partition, func(r *batch.Record) {
			rec := storedRec{hub: p.Hub}
			hi := r.Headers()
			for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
				switch string(k) {
				case "sense.from":
					rec.from = string(v)
				case "sense.j":
					rec.mask = jurisdiction.Mask(binary.BigEndian.Uint64(v))
				}
			}
			out[string(r.Value)] = append(out[string(r.Value)], rec)
		})
	}
	return out
}

// TestClusterMigration: events stored in tangier (MA) move to dakhla (MA)
// once tangier's policy denies their pipeline, while producers go on:
// every acknowledged event is then stored exactly once, none in tangier,
// each moved one with a sense.from header naming its source; SN events
// stay in dakar; every node's audit finds no violation and nothing
// awaiting migration; the audit log of moves accounts for every moved
// record.
func TestClusterMigration(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	// Only tangier takes MA events at first.
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "draining"}); err != nil {
		t.Fatal(err)
	}
	want := produceMasked(t, c, 0, "ma", "MA", 600)
	want = append(want, produceMasked(t, c, 1, "sn", "SN", 100)...)
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "up"}); err != nil {
		t.Fatal(err)
	}
	before := storedOn(t, c.Nodes[0])
	inTangier := 0
	for _, rs := range before {
		if rs[0].hub == "tangier" {
			inTangier++
		}
	}
	if inTangier != 600 {
		t.Fatalf("%d events in tangier before the policy change, want 600", inTangier)
	}
	if _, err := adminAt(t, c, 2, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	// Ingest goes on during the migration.
	want = append(want, produceMasked(t, c, 1, "during", "MA", 300)...)
	deadline := time.Now().Add(60 * time.Second)
	for i := range c.Nodes {
		for {
			resp, err := adminAt(t, c, i, admin.Audit{Pipeline: "payments"})
			if err != nil {
				t.Fatal(err)
			}
			left := int64(0)
			for _, h := range resp.Audit.Hubs {
				if h.Violations != 0 || h.Corrupt != 0 {
					t.Fatalf("n%d hub %s: %+v", i+1, h.Hub, h)
				}
				if h.Hub == "tangier" {
					left = h.Records + h.AwaitingMigration
				}
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d still holds %d records in tangier 60s after its policy denied payments", i+1, left)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	moved := 0
	for i, s := range c.Nodes {
		got := storedOn(t, s)
		for _, v := range want {
			rs := got[v]
			if len(rs) != 1 {
				t.Fatalf("n%d stores %s %d times", i+1, v, len(rs))
			}
			r := rs[0]
			switch {
			case r.hub == "tangier":
				t.Fatalf("n%d: %s still in tangier", i+1, v)
			case strings.HasPrefix(v, "sn-") && r.hub != "dakar", !strings.HasPrefix(v, "sn-") && r.hub != "dakhla":
				t.Fatalf("n%d: %s in %s", i+1, v, r.hub)
			}
			if strings.HasPrefix(v, "ma-") && !strings.HasPrefix(r.from, "payments/tangier/") {
				t.Fatalf("n%d: moved %s has sense.from %q", i+1, v, r.from)
			}
			// A "during" event may have been routed to tangier by a node
			// that had not applied the change yet (it takes a few ms to
			// reach every node): moved too.
			if r.from != "" && i == 0 {
				moved++
			}
		}
		if len(got) != len(want) {
			t.Fatalf("n%d stores %d distinct values, %d were acknowledged", i+1, len(got), len(want))
		}
	}
	resp, err := adminAt(t, c, 1, admin.AuditLog{})
	if err != nil {
		t.Fatal(err)
	}
	logged := int64(0)
	for _, m := range resp.Moves {
		if m.SourceHub != "tangier" || m.DestHub != "dakhla" || m.Records <= 0 || m.To <= m.From {
			t.Fatalf("audit log entry %+v", m)
		}
		logged += m.Records
	}
	if logged != int64(moved) || moved < 600 {
		t.Fatalf("the audit log of moves accounts for %d records, %d were moved (600 were in tangier before the change)", logged, moved)
	}
}

// TestClusterMigrationResumesAfterCrash: the migrator stops in the middle
// of a step, after copying its first batch (as a crash would leave it: the
// step planned in the metadata log, part of it at the destination, not
// done); the node that led the source is stopped, another takes the lead
// and resumes the step; the node comes back. Every event ends stored
// exactly once, none left in tangier, and the audit log accounts for each
// moved record once.
func TestClusterMigrationResumesAfterCrash(t *testing.T) {
	var fired atomic.Int32
	defer server.SetMigrateHook(func(string) error {
		if fired.Add(1) == 1 {
			return errors.New("simulated crash after the first copied batch")
		}
		return nil
	})()
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "draining"}); err != nil {
		t.Fatal(err)
	}
	// 1 KiB values: a step's megabyte makes several destination batches.
	want := produceSized(t, c, 0, "big", "MA", 800, 1024)
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "up"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adminAt(t, c, 0, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for fired.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the migrator copied nothing within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Partition 0 is tangier's low lane, where the events are.
	l := c.Leader("payments", 0, 10*time.Second)
	if l < 0 {
		t.Fatal("payments/0 has no leader")
	}
	c.Stop(l)
	waitMigrated := func(nodes ...int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for _, i := range nodes {
			for {
				resp, err := adminAt(t, c, i, admin.Audit{Pipeline: "payments"})
				if err != nil {
					t.Fatal(err)
				}
				left := int64(-1)
				for _, h := range resp.Audit.Hubs {
					if h.Hub == "tangier" {
						left = h.Records
					}
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("n%d holds %d records in tangier 60s after the policy change", i+1, left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	// With a replica of the source down, every step can be copied and
	// recorded, not trimmed (every replica must hold what a trim removes).
	other := (l + 1) % 3
	moved := func() int64 {
		resp, err := adminAt(t, c, other, admin.AuditLog{})
		if err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for _, m := range resp.Moves {
			n += m.Records
		}
		return n
	}
	for deadline := time.Now().Add(60 * time.Second); moved() < 800; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 800 records copied 60s after the policy change, with n%d down", moved(), l+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Start(l)
	waitMigrated(0, 1, 2)
	// The restarted node catches up on dakhla's buffer and the metadata
	// log as it may: each node is checked once it holds as many records
	// as were acknowledged.
	deadline = time.Now().Add(30 * time.Second)
	for i, s := range c.Nodes {
		got := storedOn(t, s)
		for len(got) < len(want) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			got = storedOn(t, s)
		}
		for _, v := range want {
			if rs := got[v]; len(rs) != 1 || rs[0].hub != "dakhla" {
				t.Fatalf("n%d stores %s as %+v; want once, in dakhla", i+1, v, rs)
			}
		}
	}
	var resp admin.Response
	logged := int64(0)
	for i := range c.Nodes {
		for {
			var err error
			if resp, err = adminAt(t, c, i, admin.AuditLog{}); err != nil {
				t.Fatal(err)
			}
			logged = 0
			for _, m := range resp.Moves {
				logged += m.Records
			}
			if logged >= 800 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if logged != 800 {
			t.Fatalf("n%d: the audit log of moves accounts for %d records; 800 moved: %+v", i+1, logged, resp.Moves)
		}
	}
	t.Logf("the step interrupted after its first batch was resumed; %d steps in the audit log", len(resp.Moves))
}

// produceSized is produceMasked with values of size bytes.
func produceSized(t *testing.T, c *sensetest.Cluster, at int, prefix, juris string, n, size int) []string {
	t.Helper()
	vals := produceMasked(t, c, at, prefix+strings.Repeat("x", size), juris, n)
	return vals
}

// BenchmarkMigration: 200,000 events of 100 bytes in tangier, then
// tangier's policy denies their pipeline while a producer sends 1,000
// events a second to dakhla: it reports the migration's rate (events
// moved per second, from the policy change to tangier empty) and the
// producer's ack p99 in the second before the change and during the
// migration. Run with -benchtime=1x.
func BenchmarkMigration(b *testing.B) {
	for range b.N {
		benchMigration(b)
	}
}

func benchMigration(b *testing.B) {
	c := sensetest.StartCluster(b, 3, sovereignHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin0 := func(req admin.Request) {
		if _, err := adminAt(b, c, 0, req); err != nil {
			b.Fatal(err)
		}
	}
	admin0(admin.SetHubStatus{Hub: "dakhla", Status: "draining"})
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(0)})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	reg, _ := cl.Registry(ctx)
	ma, _ := reg.Parse("MA")
	bulk, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
	if err != nil {
		b.Fatal(err)
	}
	const n = 200_000
	value := []byte(strings.Repeat("v", 100))
	for i := range n {
		bulk.Send(client.Event{Key: fmt.Appendf(nil, "k%d", i%1000), Value: value, Mask: ma}, func(r client.Result) {
			if r.Err != nil {
				b.Error(r.Err)
			}
		})
	}
	if err := bulk.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	bulk.Close()
	admin0(admin.SetHubStatus{Hub: "dakhla", Status: "up"})

	// The paced producer: 1,000 events a second, each ack's latency kept
	// with the phase it was sent in.
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var phase atomic.Value
	phase.Store("before")
	stop := make(chan struct{})
	paced := make(chan struct{})
	go func() {
		defer close(paced)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ph, sent := phase.Load().(string), time.Now()
			p.Send(client.Event{Value: value, Mask: ma}, func(r client.Result) {
				if r.Err == nil {
					mu.Lock()
					lat[ph] = append(lat[ph], time.Since(sent))
					mu.Unlock()
				}
			})
		}
	}()
	time.Sleep(2 * time.Second)
	phase.Store("during")
	cpu0 := processCPU()
	t0 := time.Now()
	admin0(admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	// Done when the audit log of moves accounts for every bulk event
	// (and the paced ones routed to tangier before the change): cheap to
	// ask, unlike an audit, which reads every record.
	var moved int64
	for {
		resp, err := adminAt(b, c, 0, admin.AuditLog{})
		if err != nil {
			b.Fatal(err)
		}
		moved = 0
		for _, m := range resp.Moves {
			moved += m.Records
		}
		if moved >= n {
			break
		}
		if time.Since(t0) > 4*time.Minute {
			b.Fatalf("%d of %d records moved after 4 minutes", moved, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(t0)
	cpu := processCPU() - cpu0
	phase.Store("after")
	close(stop)
	<-paced
	p.Flush(ctx)
	p99 := func(ds []time.Duration) float64 {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return float64(ds[len(ds)*99/100].Microseconds()) / 1000
	}
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(moved)/took.Seconds(), "moved-events/s")
	// The whole process: three nodes, the paced producer and the test.
	b.ReportMetric(float64(cpu.Microseconds())/float64(moved), "cpu-us/moved-event")
	b.ReportMetric(p99(lat["before"]), "ack-p99-before-ms")
	b.ReportMetric(p99(lat["during"]), "ack-p99-during-ms")
	b.ReportMetric(float64(len(lat["during"])), "acks-during")
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
