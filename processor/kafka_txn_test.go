package processor_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// readKafka reads topic at addr from the start with franz-go, read_committed
// or read_uncommitted, until a poll of a second returns nothing, and
// returns the sense.source header of each record read.
func readKafka(t testing.TB, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			src := ""
			for _, h := range r.Headers {
				if h.Key == processor.HeaderSource {
					src = string(h.Value)
				}
			}
			out = append(out, src)
		})
		if n == 0 {
			return out
		}
	}
	t.Fatalf("reading %s did not end within 30s", topic)
	return nil
}

// TestKafkaSinkTransactional: a processor with a transactional kafka sink
// writes into a topic of another Sense (its Kafka listener), read back with
// franz-go.
//
//   - A batch whose transaction is open (held by a fault hook after its
//     records and progress were produced) is visible to read_uncommitted
//     and not at all to read_committed; a transaction aborted after its
//     records were produced is never visible to read_committed, and its
//     batch is written again.
//   - The processor is stopped between a target commit and the commit of
//     its source offsets (the hook holds the delivery until the stop): at
//     that moment Sense's committed offset is still at or before the
//     batch, while the target's progress group is past it. A new manager
//     (new sink, new producers, nothing in memory: what a kill -9 leaves)
//     reads the batch again and writes none of it: read_committed holds
//     every source event exactly once.
//   - sense processor reset --to beginning moves the target's progress
//     too: every event is written once more.
func TestKafkaSinkTransactional(t *testing.T) {
	target := sensetest.Start(t, "pipelines:\n  - {name: copy, partitions: 1}\n")
	srv := sensetest.Start(t, "pipelines:\n  - {name: orders, partitions: 1}\n")
	c := dial(t, srv)
	kaddr := target.KafkaAddr().String()
	cfgs, err := config.ParseProcessors("t.yaml", []byte(fmt.Sprintf(`
processors:
  - name: kt
    from: {pipeline: orders}
    sink: {type: kafka, brokers: [%s], topic: copy, transactional: true, timeout: 5s}
    batch: {max_events: 100, linger: 5ms}
`, kaddr)))
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[0].Sink.TransactionalIDPrefix != "sense.processor.kt" {
		t.Fatalf("transactional_id_prefix %q", cfgs[0].Sink.TransactionalIDPrefix)
	}
	start := func() *processor.Manager {
		m := processor.NewManager(processor.Options{Source: processor.NodeSource{Node: srv.Node}, Offsets: srv.Offsets, ClientID: "test"})
		if err := m.Start(context.Background(), cfgs); err != nil {
			t.Fatal(err)
		}
		return m
	}
	sent := 0
	send := func(n int) {
		produce(t, c, "orders", n, func(i int) client.Event {
			i += sent
			return client.Event{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("order %d", i)), HasPriority: true, Priority: event.Priority(i % 3)}
		})
		sent += n
	}
	sources := func() map[string]bool {
		want := map[string]bool{}
		for _, r := range readAll(t, c, "orders") {
			want[key(r.Pipeline, r.Partition, r.Offset)] = true
		}
		return want
	}
	count := func(srcs []string) map[string]int {
		got := map[string]int{}
		for _, s := range srcs {
			got[s]++
		}
		return got
	}

	// An open transaction is invisible to read_committed; an aborted one
	// never shows.
	held, release := make(chan *processor.Batch, 1), make(chan struct{})
	var calls atomic.Int32
	processor.SetTxnFault(t, func(ctx context.Context, stage string, b *processor.Batch) error {
		if stage != "produced" {
			return nil
		}
		switch calls.Add(1) {
		case 1:
			held <- b
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		case 2:
			return errors.New("injected: abort this transaction")
		}
		return nil
	})
	m := start()
	send(1500)
	var hb *processor.Batch
	select {
	case hb = <-held:
	case <-time.After(time.Minute):
		t.Fatal("no batch reached its transaction within a minute")
	}
	open := map[string]bool{}
	for _, r := range hb.Records {
		open[key(r.Pipeline, r.Partition, r.Offset)] = true
	}
	uncommitted := count(readKafka(t, kaddr, "copy", false))
	for k := range open {
		if uncommitted[k] == 0 {
			t.Fatalf("%s of the open transaction is not in the topic (read_uncommitted)", k)
		}
	}
	for k := range count(readKafka(t, kaddr, "copy", true)) {
		if open[k] {
			t.Fatalf("read_committed sees %s of a transaction still open", k)
		}
	}
	close(release)
	want := sources()
	waitFor(t, "every event in the topic (read_committed)", time.Minute, func() bool {
		return len(count(readKafka(t, kaddr, "copy", true))) >= len(want)
	})
	exactlyOnce(t, "transactional kafka sink", count(readKafka(t, kaddr, "copy", true)), want)
	if calls.Load() < 2 {
		t.Fatal("no transaction was aborted")
	}
	all := readKafka(t, kaddr, "copy", false)
	if len(all) <= len(want) {
		t.Fatalf("read_uncommitted holds %d records for %d events: the aborted transaction's records are not there", len(all), len(want))
	}
	t.Logf("read_uncommitted: %d records (aborted ones included), read_committed: %d", len(all), len(want))

	// Stopped between the target's commit and Sense's.
	crashed := make(chan *processor.Batch, 1)
	var once atomic.Bool
	processor.SetTxnFault(t, func(ctx context.Context, stage string, b *processor.Batch) error {
		if stage != "committed" || !once.CompareAndSwap(false, true) {
			return nil
		}
		crashed <- b
		<-ctx.Done()
		return ctx.Err()
	})
	send(1500)
	var cb *processor.Batch
	select {
	case cb = <-crashed:
	case <-time.After(time.Minute):
		t.Fatal("no batch committed within a minute")
	}
	tid := processor.TransactionalID("sense.processor.kt", cb.Pipeline, cb.Partition)
	progress := func() int64 {
		kc, err := kgo.NewClient(kgo.SeedBrokers(kaddr))
		if err != nil {
			t.Fatal(err)
		}
		defer kc.Close()
		resp, err := kadm.NewClient(kc).FetchOffsets(context.Background(), tid)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := resp.Lookup("copy", 0)
		return o.At
	}
	sourceOffset := func() int64 {
		return srv.Offsets.Committed(processor.GroupPrefix + "kt")[group.TopicPartition{Topic: "orders", Partition: cb.Partition}].Offset
	}
	if p, s := progress(), sourceOffset(); p != cb.Last+1 || s > cb.First {
		t.Fatalf("in the window: the target's progress is %d (want %d), Sense's offset %d (want at most %d)", p, cb.Last+1, s, cb.First)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if s := sourceOffset(); s > cb.First {
		t.Fatalf("Sense's offset moved to %d past the batch [%d, %d] after the stop", s, cb.First, cb.Last)
	}
	processor.SetTxnFault(t, func(context.Context, string, *processor.Batch) error { return nil })
	m = start()
	defer func() { m.Close() }()
	want = sources()
	waitFor(t, "every event in the topic after the restart", time.Minute, func() bool {
		return len(count(readKafka(t, kaddr, "copy", true))) >= len(want)
	})
	waitFor(t, "Sense's offsets at the end", time.Minute, func() bool { info, _ := m.Describe("kt"); return info.LagEvents == 0 })
	exactlyOnce(t, "transactional kafka sink after a stop between the commits", count(readKafka(t, kaddr, "copy", true)), want)

	// A reset to the beginning writes everything again.
	if err := m.Reset(context.Background(), "kt", "beginning"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event twice", time.Minute, func() bool {
		return len(readKafka(t, kaddr, "copy", true)) >= 2*len(want)
	})
	for k, n := range count(readKafka(t, kaddr, "copy", true)) {
		if n != 2 || !want[k] {
			t.Fatalf("after the reset %s is in the topic %d times", k, n)
		}
	}
}
