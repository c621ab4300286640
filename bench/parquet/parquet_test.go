// Package parquet compares the two Parquet libraries the design names,
// github.com/parquet-go/parquet-go and github.com/apache/arrow-go/v18, on
// what a processor's file sink writes: one file per batch of 1,000 events
// of 100 bytes, with the columns of the sink's schema. It is a module of
// its own so that the library not chosen stays out of the sense binary.
//
//	go test ./bench/parquet -bench . -benchtime 200x
package parquet

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// row is one event as the file sink writes it.
type row struct {
	Pipeline     string    `parquet:"pipeline,dict"`
	Partition    int32     `parquet:"partition"`
	Offset       int64     `parquet:"offset"`
	Hub          string    `parquet:"hub,dict"`
	Key          []byte    `parquet:"key,optional"`
	Value        []byte    `parquet:"value,optional"`
	Headers      string    `parquet:"headers,optional"`
	Jurisdiction string    `parquet:"jurisdiction,dict,optional"`
	Priority     string    `parquet:"priority,dict,optional"`
	Timestamp    time.Time `parquet:"timestamp,timestamp(millisecond)"`
}

func rows(n int) []row {
	out := make([]row, n)
	t0 := time.UnixMilli(1_780_000_000_000)
	for i := range out {
		v := fmt.Sprintf(`{"amount":%d,"currency":"MAD","merchant":"m-%04d","note":"%s"}`, i*37%100000, i%977, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
		out[i] = row{Pipeline: "payments", Partition: 3, Offset: int64(100000 + i), Hub: "tangier",
			Key: []byte(fmt.Sprintf("acct-%d", i%1013)), Value: []byte(v[:min(len(v), 100)]),
			Headers: `{"type":"purchase"}`, Jurisdiction: "MA", Priority: "low", Timestamp: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	return out
}

func BenchmarkParquetGo(b *testing.B) {
	rs := rows(1000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		w := pq.NewGenericWriter[row](&buf, pq.Compression(&snappy.Codec{}))
		if _, err := w.Write(rs); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(buf.Len()), "file-bytes")
}

var arrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "pipeline", Type: arrow.BinaryTypes.String},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "hub", Type: arrow.BinaryTypes.String},
	{Name: "key", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "headers", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "jurisdiction", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "priority", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "timestamp", Type: arrow.FixedWidthTypes.Timestamp_ms},
}, nil)

func BenchmarkArrowGo(b *testing.B) {
	rs := rows(1000)
	var buf bytes.Buffer
	mem := memory.NewGoAllocator()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		bld := array.NewRecordBuilder(mem, arrowSchema)
		for _, r := range rs {
			bld.Field(0).(*array.StringBuilder).Append(r.Pipeline)
			bld.Field(1).(*array.Int32Builder).Append(r.Partition)
			bld.Field(2).(*array.Int64Builder).Append(r.Offset)
			bld.Field(3).(*array.StringBuilder).Append(r.Hub)
			bld.Field(4).(*array.BinaryBuilder).Append(r.Key)
			bld.Field(5).(*array.BinaryBuilder).Append(r.Value)
			bld.Field(6).(*array.StringBuilder).Append(r.Headers)
			bld.Field(7).(*array.StringBuilder).Append(r.Jurisdiction)
			bld.Field(8).(*array.StringBuilder).Append(r.Priority)
			bld.Field(9).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Timestamp.UnixMilli()))
		}
		rec := bld.NewRecordBatch()
		w, err := pqarrow.NewFileWriter(arrowSchema, &buf, props, pqarrow.DefaultWriterProps())
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		rec.Release()
		bld.Release()
	}
	b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(buf.Len()), "file-bytes")
}
