package processor

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// ParquetRow is one event in a Parquet file of the file sink: the fields
// of `sense consume --output json`, with key and value as bytes (null
// when absent), the headers as a JSON object in text, the jurisdiction as
// its codes ("MA,SN") and the timestamp in milliseconds, UTC. Files are
// Snappy-compressed; the strings that repeat are dictionary-encoded.
// parquet-go/parquet-go writes them (docs/processors.md says why that
// library).
type ParquetRow struct {
	Pipeline     string    `parquet:"pipeline,dict"`
	Partition    int32     `parquet:"partition"`
	Hub          string    `parquet:"hub,dict"`
	Offset       int64     `parquet:"offset"`
	Key          []byte    `parquet:"key,optional"`
	Value        []byte    `parquet:"value,optional"`
	Headers      *string   `parquet:"headers,optional"`
	Jurisdiction *string   `parquet:"jurisdiction,dict,optional"`
	Priority     *string   `parquet:"priority,dict,optional"`
	Timestamp    time.Time `parquet:"timestamp,timestamp(millisecond)"`
}

// parquetRow returns r as a ParquetRow.
func parquetRow(r *client.Record, reg *jurisdiction.Registry) ParquetRow {
	row := ParquetRow{Pipeline: r.Pipeline, Partition: r.Partition, Hub: r.Hub, Offset: r.Offset,
		Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UTC()}
	if len(r.Headers) > 0 {
		hm := make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			hm[h.Key] = string(h.Value)
		}
		hb, _ := json.Marshal(hm)
		hs := string(hb)
		row.Headers = &hs
	}
	if r.Mask != 0 {
		j := reg.Format(r.Mask)
		row.Jurisdiction = &j
	}
	if r.HasPriority {
		p := r.Priority.String()
		row.Priority = &p
	}
	return row
}

// parquetWriter writes the file sink's Parquet files: rows of ParquetRow,
// plus the declared columns (sink.columns) when there are some.
type parquetWriter struct {
	reg     *jurisdiction.Registry
	columns []parquetColumn // sorted by name; nil: ParquetRow alone
	schema  *parquet.Schema
}

// parquetColumn is a declared column: a field path of the JSON value and
// its type.
type parquetColumn struct {
	name string
	path []string
	typ  string
}

func newParquetWriter(columns map[string]string, reg *jurisdiction.Registry) *parquetWriter {
	pw := &parquetWriter{reg: reg}
	if len(columns) == 0 {
		return pw
	}
	g := parquet.Group{}
	for _, f := range parquet.SchemaOf(ParquetRow{}).Fields() {
		g[f.Name()] = f
	}
	for path, typ := range columns {
		c := parquetColumn{name: config.ParquetColumnName(path), path: strings.Split(path, "."), typ: typ}
		var n parquet.Node
		switch typ {
		case "int64":
			n = parquet.Int(64)
		case "double":
			n = parquet.Leaf(parquet.DoubleType)
		case "bool":
			n = parquet.Leaf(parquet.BooleanType)
		case "json":
			n = parquet.JSON()
		default:
			n = parquet.String()
		}
		g[c.name] = parquet.Optional(n)
		pw.columns = append(pw.columns, c)
	}
	sort.Slice(pw.columns, func(i, j int) bool { return pw.columns[i].name < pw.columns[j].name })
	pw.schema = parquet.NewSchema("event", g)
	return pw
}

// write writes recs as one Parquet file (one row group).
func (pw *parquetWriter) write(w io.Writer, recs []client.Record) error {
	if pw.columns == nil {
		rows := make([]ParquetRow, len(recs))
		for i := range recs {
			rows[i] = parquetRow(&recs[i], pw.reg)
		}
		fw := parquet.NewGenericWriter[ParquetRow](w, parquet.Compression(&snappy.Codec{}))
		if _, err := fw.Write(rows); err != nil {
			return err
		}
		return fw.Close()
	}
	fw := parquet.NewWriter(w, pw.schema, parquet.Compression(&snappy.Codec{}))
	for i := range recs {
		row := parquetRow(&recs[i], pw.reg)
		m := map[string]any{"pipeline": row.Pipeline, "partition": row.Partition, "hub": row.Hub, "offset": row.Offset,
			"key": nilIfEmpty(row.Key), "value": nilIfEmpty(row.Value), "headers": deref(row.Headers),
			"jurisdiction": deref(row.Jurisdiction), "priority": deref(row.Priority), "timestamp": row.Timestamp}
		var doc map[string]any
		if d := json.NewDecoder(bytes.NewReader(recs[i].Value)); recs[i].Value != nil {
			d.UseNumber()
			if d.Decode(&doc) != nil {
				doc = nil
			}
		}
		for _, c := range pw.columns {
			m[c.name] = c.extract(doc)
		}
		if err := fw.Write(m); err != nil {
			return err
		}
	}
	return fw.Close()
}

// extract returns the column's value in doc, or nil when the field is
// absent or of another type.
func (c *parquetColumn) extract(doc map[string]any) any {
	var v any = doc
	for _, p := range c.path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[p]; !ok {
			return nil
		}
	}
	switch c.typ {
	case "string":
		if s, ok := v.(string); ok {
			return s
		}
	case "int64":
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				return i
			}
		}
	case "double":
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil {
				return f
			}
		}
	case "bool":
		if b, ok := v.(bool); ok {
			return b
		}
	case "json":
		if v != nil {
			b, err := json.Marshal(v)
			if err == nil {
				return string(b)
			}
		}
	}
	return nil
}

func nilIfEmpty(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
