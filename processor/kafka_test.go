package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// TestKafkaSink: a processor produces a pipeline into a topic of another
// Sense through its Kafka listener (franz-go, idempotent); the target
// holds every event once, with its mask (the sense.jurisdiction header the
// sink adds) and the source offset in sense.source. The target's one hub
// is of jurisdiction *: a Kafka producer's partitioner knows nothing of
// hubs (docs/kafka.md). A third of the events are an hour old: the sink
// bounds a produce by its timeout, not by the age of the records.
func TestKafkaSink(t *testing.T) {
	const regs = `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
`
	target := sensetest.Start(t, "jurisdictions: [MA, SN]\npipelines:\n  - {name: copy, partitions: 1}\n")
	srv := sensetest.Start(t, fmt.Sprintf(regs+`
pipelines:
  - {name: orders, partitions: 1}
processors:
  - name: to-kafka
    from: {pipeline: orders}
    sink: {type: kafka, brokers: [%s], topic: copy}
    batch: {max_events: 200, linger: 5ms}
`, target.KafkaAddr()))
	c, tc := dial(t, srv), dial(t, target)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := c.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := reg.Parse("MA")
	sn, _ := reg.Parse("SN")
	const n = 2000
	produce(t, c, "orders", n, func(i int) client.Event {
		m := ma
		if i%2 == 1 {
			m = sn
		}
		e := client.Event{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("order %d", i)), Mask: m}
		if i%3 == 0 {
			// Older than sink.timeout: franz-go's RecordDeliveryTimeout,
			// counted from the record's timestamp, would fail them.
			e.Timestamp = time.Now().Add(-time.Hour)
		}
		return e
	})
	want := map[string]bool{}
	masks := map[string]uint64{}
	for _, r := range readAll(t, c, "orders") {
		k := key(r.Pipeline, r.Partition, r.Offset)
		want[k] = true
		masks[k] = uint64(r.Mask)
	}
	var got []client.Record
	waitFor(t, "the events in the target", time.Minute, func() bool {
		got = readAll(t, tc, "copy")
		return len(got) >= n
	})
	count := map[string]int{}
	for _, r := range got {
		var src string
		for _, h := range r.Headers {
			if h.Key == processor.HeaderSource {
				src = string(h.Value)
			}
		}
		count[src]++
		if uint64(r.Mask) != masks[src] {
			t.Fatalf("%s: mask %s in the target, %s at the source", src, reg.Format(r.Mask), reg.Format(jurisdiction.Mask(masks[src])))
		}
	}
	exactlyOnce(t, "kafka sink", count, want)
}
