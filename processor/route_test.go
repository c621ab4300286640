package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// TestFilterRoutesErrorsToPipeline: a processor whose where keeps the
// ERROR log lines writes them, and only them, into another pipeline, each
// once, with its mask and priority, and each lands in a hub of its mask.
func TestFilterRoutesErrorsToPipeline(t *testing.T) {
	srv := sensetest.Start(t, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
pipelines:
  - {name: logs, partitions: 2}
  - {name: errors, partitions: 2}
processors:
  - name: route-errors
    from: {pipeline: logs}
    where: {json: {level: ERROR}}
    sink: {type: pipeline, pipeline: errors}
    batch: {max_events: 100, linger: 5ms}
`)
	c := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := c.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := reg.Parse("MA")
	sn, _ := reg.Parse("SN")
	levels := []string{"INFO", "ERROR", "WARN", "DEBUG"}
	const n = 2000
	produce(t, c, "logs", n, func(i int) client.Event {
		m := ma
		if i%3 == 0 {
			m = sn
		}
		return client.Event{Key: []byte(fmt.Sprintf("host-%d", i%7)), Mask: m, HasPriority: true, Priority: event.Priority(i % 3),
			Value: []byte(fmt.Sprintf(`{"level":%q,"msg":"line %d"}`, levels[i%len(levels)], i))}
	})
	want := map[string]bool{}
	src := map[string]client.Record{}
	for _, r := range readAll(t, c, "logs") {
		if levels[0] != "" && string(r.Value[10:15]) == "ERROR" {
			want[key(r.Pipeline, r.Partition, r.Offset)] = true
			src[key(r.Pipeline, r.Partition, r.Offset)] = r
		}
	}
	if len(want) != n/4 {
		t.Fatalf("%d ERROR lines in logs, want %d", len(want), n/4)
	}
	var got []client.Record
	waitFor(t, "the ERROR lines in errors", 60*time.Second, func() bool {
		got = readAll(t, c, "errors")
		return len(got) >= len(want)
	})
	_, layout, err := c.Describe(ctx, "errors")
	if err != nil {
		t.Fatal(err)
	}
	hubOf := map[int32]string{}
	for _, p := range layout {
		hubOf[p.Partition] = p.Hub
	}
	count := map[string]int{}
	for _, r := range got {
		var from string
		for _, h := range r.Headers {
			if h.Key == processor.HeaderSource {
				from = string(h.Value)
			}
		}
		count[from]++
		s, ok := src[from]
		if !ok {
			t.Fatalf("errors holds %q from %s, which is no ERROR line of logs", r.Value, from)
		}
		if r.Mask != s.Mask || r.Priority != s.Priority || string(r.Value) != string(s.Value) || string(r.Key) != string(s.Key) {
			t.Fatalf("%s changed on its way: %+v, was %+v", from, r, s)
		}
		hub := hubOf[r.Partition]
		if (r.Mask == ma) != (hub == "tangier") {
			t.Fatalf("%s of mask %s rests in hub %s", from, reg.Format(r.Mask), hub)
		}
	}
	exactlyOnce(t, "pipeline sink", count, want)
}
