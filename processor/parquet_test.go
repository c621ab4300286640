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

// needDuckDB returns node's path and testdata/duckdb's, or skips the test
// (fails it with CI set) when either is missing.
func needDuckDB(t testing.TB) (node, dir string) {
	t.Helper()
	dir, _ = filepath.Abs("testdata/duckdb")
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
	return node, dir
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
	node, dir := needDuckDB(t)
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

// duckdbQuery runs SQL with DuckDB (testdata/duckdb/query.mjs) and
// returns its first row.
func duckdbQuery(t testing.TB, sql string) map[string]any {
	t.Helper()
	node, dir := needDuckDB(t)
	out, err := exec.Command(node, filepath.Join(dir, "query.mjs"), sql).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	var row map[string]any
	if err := json.Unmarshal([]byte(line), &row); err != nil {
		t.Fatalf("duckdb printed %q: %v", out, err)
	}
	return row
}

// TestParquetDeclaredColumns: sink.columns adds a typed column per JSON
// field; absent fields, fields of another type and values that are not
// JSON are null. Read back with parquet-go and with DuckDB.
func TestParquetDeclaredColumns(t *testing.T) {
	dir := t.TempDir()
	srv := sensetest.Start(t, fmt.Sprintf(`
pipelines:
  - {name: pay, partitions: 1}
processors:
  - name: cols
    from: {pipeline: pay}
    sink:
      type: file
      dir: %s
      format: parquet
      columns: {amount: double, currency: string, meta.user: int64, meta: json, flag: bool}
    batch: {max_events: 100, linger: 5ms}
`, dir))
	c := dial(t, srv)
	const n = 300
	produce(t, c, "pay", n, func(i int) client.Event {
		switch i % 3 {
		case 0:
			return client.Event{Value: []byte(fmt.Sprintf(`{"amount": %d.5, "currency": "MAD", "meta": {"user": %d}, "flag": true}`, i, i))}
		case 1:
			return client.Event{Value: []byte(`{"amount": "not a number", "currency": 7}`)}
		}
		return client.Event{Value: []byte("not json")}
	})
	waitFor(t, "every event in Parquet files", time.Minute, func() bool { return describe(t, c, "cols").Delivered == n })
	files, _ := filepath.Glob(filepath.Join(dir, "pay", "*.parquet"))
	var amounts float64
	var rows, users int
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fh.Stat()
		pf, err := parquet.OpenFile(fh, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		rd := parquet.NewReader(pf)
		for {
			m := map[string]any{}
			if err := rd.Read(&m); err != nil {
				break
			}
			rows++
			off := m["offset"].(int64)
			switch off % 3 {
			case 0:
				if m["currency"] != "MAD" || m["flag"] != true || m["meta_user"] != off || fmt.Sprint(m["meta"]) != fmt.Sprintf("map[user:%d]", off) {
					t.Fatalf("offset %d: %v", off, m)
				}
				amounts += m["amount"].(float64)
				users++
			default:
				if m["amount"] != nil || m["currency"] != nil || m["meta_user"] != nil || m["flag"] != nil {
					t.Fatalf("offset %d: %v; want nulls", off, m)
				}
			}
		}
		fh.Close()
	}
	var want float64
	for i := 0; i < n; i += 3 {
		want += float64(i) + 0.5
	}
	if rows != n || users != n/3 || amounts != want {
		t.Fatalf("%d rows, %d with a user, amounts %v; want %d, %d, %v", rows, users, amounts, n, n/3, want)
	}
	d := duckdbQuery(t, fmt.Sprintf(`SELECT count(*) AS n, sum(amount) AS amount, count(meta_user) AS users, count(DISTINCT currency) AS currencies FROM read_parquet('%s')`, filepath.Join(dir, "pay", "*.parquet")))
	if d["n"] != float64(n) || d["amount"] != want || d["users"] != float64(n/3) || d["currencies"] != float64(1) {
		t.Fatalf("DuckDB reads %v", d)
	}
}
