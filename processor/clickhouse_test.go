package processor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/chtest"
	"github.com/sensehq/sense/sensetest"
)

// TestClickHouseSink: every event is one row of a ReplacingMergeTree
// keyed by its source offset, with its mask as codes; the processor is
// reset to the beginning (every batch delivered again), and the table
// still holds each event once once duplicates are collapsed (FINAL).
func TestClickHouseSink(t *testing.T) {
	ch := chtest.Start(t)
	srv := sensetest.Start(t, fmt.Sprintf(`
jurisdictions: [MA, SN]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines:
  - {name: clicks, partitions: 2, default_jurisdiction: MA}
processors:
  - name: to-ch
    from: {pipeline: clicks}
    sink: {type: clickhouse, url: %q, table: clicks}
    batch: {max_events: 300, linger: 5ms}
`, ch))
	c := dial(t, srv)
	const n = 3000
	produce(t, c, "clicks", n, func(i int) client.Event {
		return client.Event{Key: []byte(fmt.Sprintf("u%d", i%31)), Value: []byte(fmt.Sprintf(`{"page":"/p/%d"}`, i))}
	})
	q := func(query string) string {
		out, err := chtest.Query(ch, query)
		if err != nil {
			return err.Error()
		}
		return out
	}
	want := fmt.Sprint(n)
	waitFor(t, "every event in ClickHouse", time.Minute, func() bool { return q("SELECT count() FROM clicks") == want })
	if got := q("SELECT uniqExact(source_partition, source_offset) FROM clicks"); got != want {
		t.Fatalf("%s distinct source offsets, want %s", got, want)
	}
	if got := q("SELECT DISTINCT jurisdiction FROM clicks"); got != "MA" {
		t.Fatalf("jurisdictions %q", got)
	}
	// Deliver everything again: the rows come twice (until a merge
	// collapses them), FINAL shows each once.
	if _, err := c.Admin(t.Context(), admin.ResetProcessor{Processor: "to-ch", To: "beginning"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second delivery", time.Minute, func() bool { return describe(t, c, "to-ch").Delivered == 2*n })
	if got := q("SELECT count() FROM clicks FINAL"); got != want {
		t.Fatalf("FINAL counts %s rows, want %s", got, want)
	}
	if got := q("SELECT sum(visitParamExtractString(assumeNotNull(value), 'page') != '') FROM clicks FINAL"); !strings.HasPrefix(got, want) {
		t.Fatalf("values: %s", got)
	}
}
