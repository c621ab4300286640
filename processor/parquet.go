package processor

import (
	"encoding/json"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/sensehq/sense/client"
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

// writeParquet writes recs as one Parquet file (one row group).
func writeParquet(w io.Writer, recs []client.Record, reg *jurisdiction.Registry) error {
	rows := make([]ParquetRow, len(recs))
	for i := range recs {
		r := &recs[i]
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
		rows[i] = row
	}
	pw := parquet.NewGenericWriter[ParquetRow](w, parquet.Compression(&snappy.Codec{}))
	if _, err := pw.Write(rows); err != nil {
		return err
	}
	return pw.Close()
}
