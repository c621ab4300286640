package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/pgtest"
	"github.com/sensehq/sense/sensetest"
)

// pgRows returns, per source offset key, how many rows the table holds.
func pgRows(t testing.TB, dsn, table string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT source_pipeline, source_partition, source_offset, count(*) FROM "+table+" GROUP BY 1, 2, 3")
	if err != nil {
		return nil // not created yet
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var part int32
		var off, n int64
		if err := rows.Scan(&p, &part, &off, &n); err != nil {
			t.Fatal(err)
		}
		out[key(p, part, off)] = int(n)
	}
	return out
}

// TestPostgresSink: rows and offsets in one transaction; a restarted node
// starts from the offsets in postgres; every event is one row.
func TestPostgresSink(t *testing.T) {
	dsn := pgtest.Start(t)
	yaml := fmt.Sprintf(`
pipelines:
  - {name: payments, partitions: 2}
processors:
  - name: payments-to-pg
    from: {pipeline: payments}
    where: {header: {type: purchase}}
    sink: {type: postgres, dsn: %q, table: payments}
    batch: {max_events: 200, linger: 5ms}
`, dsn)
	srv := sensetest.Start(t, yaml)
	c := dial(t, srv)
	const n = 4000
	produce(t, c, "payments", n, func(i int) client.Event {
		typ := "purchase"
		if i%4 == 0 {
			typ = "refund"
		}
		return client.Event{Key: []byte(fmt.Sprintf("acct-%d", i%13)), Value: []byte(fmt.Sprintf(`{"amount":%d}`, i)),
			Headers: []client.Header{{Key: "type", Value: []byte(typ)}}}
	})
	want := map[string]bool{}
	lastPurchase := map[int32]int64{}
	for _, r := range readAll(t, c, "payments") {
		if string(r.Headers[0].Value) == "purchase" {
			want[key(r.Pipeline, r.Partition, r.Offset)] = true
			lastPurchase[r.Partition] = max(lastPurchase[r.Partition], r.Offset)
		}
	}
	waitFor(t, "every purchase in postgres", 60*time.Second, func() bool { return len(pgRows(t, dsn, "payments")) >= len(want) })
	exactlyOnce(t, "postgres", pgRows(t, dsn, "payments"), want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	// The offsets went in with the rows: past each partition's last
	// purchase.
	for part, last := range lastPurchase {
		var next int64
		if err := pc.QueryRow(ctx, "SELECT next_offset FROM sense_processor_offsets WHERE processor = 'payments-to-pg' AND pipeline = 'payments' AND partition = $1", part).Scan(&next); err != nil {
			t.Fatal(err)
		}
		if next <= last {
			t.Fatalf("partition %d: next_offset %d in postgres, the last purchase is at %d", part, next, last)
		}
	}
}
