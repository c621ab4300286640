package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// readAll reads every record of topic's partitions from the start up to
// the offsets latestOffsets gives, with the isolation level asked for, and
// returns their values in offset order per partition.
func readAll(t *testing.T, ctx context.Context, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	var out []string
	// Read until a fetch round brings nothing new for a while: the test
	// knows what it wrote, and compares.
	idle := 0
	for idle < 5 && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)); n++ })
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	slices.Sort(out)
	return out
}

// A transactional producer commits one transaction over two partitions and
// aborts another: read_committed sees the committed records only,
// read_uncommitted sees both; the LSO reaches the high watermark once both
// ended.
func TestTransactionsCommitAbort(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: tx, partitions: 2}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := client(t, addr, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	run := func(prefix string, commit bool) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Value: fmt.Appendf(nil, "%s-%02d", prefix, i), Partition: int32(i % 2)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", prefix, err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
	}
	run("a", true)
	run("b", false)
	run("c", true)
	var want, all []string
	for _, pre := range []string{"a", "b", "c"} {
		for i := range 10 {
			v := fmt.Sprintf("%s-%02d", pre, i)
			all = append(all, v)
			if pre != "b" {
				want = append(want, v)
			}
		}
	}
	if got := readAll(t, ctx, addr, "tx", true); !slices.Equal(got, want) {
		t.Fatalf("read_committed got %d records %v\nwant %d", len(got), got, len(want))
	}
	if got := readAll(t, ctx, addr, "tx", false); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted got %d records %v\nwant %d", len(got), got, len(all))
	}
}
