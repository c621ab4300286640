package processor_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// readParquet reads every row of the Parquet files under dir.
func readParquet(t testing.TB, dir string) []processor.ParquetRow {
	t.Helper()
	var out []processor.ParquetRow
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.parquet"))
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue // a file being written
		}
		rows, err := parquet.ReadFile[processor.ParquetRow](f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, rows...)
	}
	return out
}

func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// DuckDBCount runs testdata/duckdb/count.mjs over glob with Node and
// DuckDB (@duckdb/node-api): the rows, distinct offsets, sums.
type duckCount struct {
	N               int64 `json:"n"`
	DistinctOffsets int64 `json:"distinct_offsets"`
	OffsetSum       int64 `json:"offset_sum"`
	ValueBytes      int64 `json:"value_bytes"`
}

func duckdb(t testing.TB, glob string) duckCount {
	t.Helper()
	dir, _ := filepath.Abs("testdata/duckdb")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api"))
	}
	if err != nil {
		msg := "node and testdata/duckdb's npm packages are needed (npm ci in processor/testdata/duckdb); scripts/test.sh installs them"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg + " (this would fail with CI set)")
	}
	out, err := exec.Command(node, filepath.Join(dir, "count.mjs"), glob).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	var c duckCount
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("duckdb printed %q: %v", out, err)
	}
	return c
}

// TestParquetFileSink: every event lands in exactly one Parquet file,
// read back with parquet-go and with DuckDB.
func TestParquetFileSink(t *testing.T) {
	dir := t.TempDir()
	srv := sensetest.Start(t, fmt.Sprintf(`
jurisdictions: [MA, SN]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines:
  - {name: payments, partitions: 2}
processors:
  - name: to-parquet
    from: {pipeline: payments}
    sink: {type: file, dir: %s, format: parquet}
    batch: {max_events: 400, linger: 5ms}
`, dir))
	c := dial(t, srv)
	const n = 3000
	produce(t, c, "payments", n, func(i int) client.Event {
		return client.Event{Key: []byte(fmt.Sprintf("acct-%d", i%11)), Value: []byte(fmt.Sprintf(`{"amount":%d}`, i)),
			Headers: []client.Header{{Key: "type", Value: []byte("purchase")}}}
	})
	want := map[string]bool{}
	var offsetSum, valueBytes int64
	for _, r := range readAll(t, c, "payments") {
		want[key(r.Pipeline, r.Partition, r.Offset)] = true
		offsetSum += r.Offset
		valueBytes += int64(len(r.Value))
	}
	var rows []processor.ParquetRow
	waitFor(t, "every event in Parquet files", time.Minute, func() bool {
		rows = readParquet(t, dir)
		return len(rows) >= n
	})
	got := map[string]int{}
	for _, r := range rows {
		got[key(r.Pipeline, r.Partition, r.Offset)]++
		if r.Hub != "tangier" || r.Jurisdiction == nil || *r.Jurisdiction != "MA,SN" || r.Headers == nil || !strings.Contains(*r.Headers, `"type":"purchase"`) ||
			!strings.HasPrefix(string(r.Value), `{"amount":`) || r.Timestamp.IsZero() {
			t.Fatalf("row %+v, jurisdiction %v, headers %v", r, deref(r.Jurisdiction), deref(r.Headers))
		}
	}
	exactlyOnce(t, "parquet", got, want)
	d := duckdb(t, filepath.Join(dir, "*", "*.parquet"))
	if d.N != n || d.DistinctOffsets != n || d.OffsetSum != offsetSum || d.ValueBytes != valueBytes {
		t.Fatalf("DuckDB reads %+v; want %d rows, offsets summing to %d, %d value bytes", d, n, offsetSum, valueBytes)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
