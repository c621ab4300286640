package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFetchWakesOnNewRecords: a consumer of a topic of several partitions
// whose fetch waits (max wait one minute) gets a record produced meanwhile
// at once, not when the wait runs out: the poll below gives up after 30 s.
func TestFetchWakesOnNewRecords(t *testing.T) {
	addr := startTB(t, "pipelines:\n  - {name: wake, partitions: 1}\n")
	ctx := context.Background()
	p := client(t, addr, kgo.DefaultProduceTopic("wake"), kgo.ProducerLinger(0))
	c := client(t, addr, kgo.ConsumeTopics("wake"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Minute))
	poll := func(want string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			fs := c.PollFetches(pctx)
			if pctx.Err() != nil {
				t.Fatalf("record %q not fetched within 30s: the fetch waited for its max wait instead of the new record", want)
			}
			got := ""
			fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
			if got == want {
				return
			}
		}
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	poll("first")
	// The consumer's next fetch is waiting now (it found nothing new).
	time.Sleep(100 * time.Millisecond)
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	poll("second")
}
