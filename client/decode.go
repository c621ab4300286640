package client

import (
	"fmt"
	"strings"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/jurisdiction"
)

// DecodeBatches appends to dst the records of data, whole record batches of
// one partition as a FETCH or a node's read returns them, at or past
// offset from. Control batches hold no record. It returns the records and
// the offset to read next: past the last batch (or from, when data holds
// none past it). Records alias data and the decompressed copies of
// compressed batches; reg parses text routing headers (it may be nil).
//
// A batch that cannot be read (damaged, or a codec's data that does not
// decode) is an error naming it, returned with the records before it; the
// offset returned then points at it.
func DecodeBatches(dst []Record, reg *jurisdiction.Registry, pipeline string, partition int32, hub string, data []byte, from int64) ([]Record, int64, error) {
	next := from
	var it batch.Iter
	for off := 0; off < len(data); {
		b, h, err := nextBatch(data, &off)
		if err != nil {
			return dst, next, fmt.Errorf("client: %s partition %d: %w", pipeline, partition, err)
		}
		if h.NextOffset() <= from {
			continue
		}
		if h.Attributes&batch.AttrControl != 0 {
			next = h.NextOffset()
			continue
		}
		records, err := batchRecords(b, &h)
		if err == nil {
			err = it.ResetRecords(records, h.RecordCount)
		}
		if err != nil {
			return dst, max(next, h.BaseOffset), batchError(pipeline, partition, h.BaseOffset, err)
		}
		for it.Next() {
			r := it.Record()
			o := h.BaseOffset + int64(r.OffsetDelta)
			if o < from {
				continue
			}
			rec := Record{Pipeline: pipeline, Partition: partition, Hub: hub, Offset: o,
				Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(h.BaseTimestamp + r.TimestampDelta)}
			decodeHeaders(reg, r, &rec)
			dst = append(dst, rec)
		}
		if err := it.Err(); err != nil {
			return dst, max(next, h.BaseOffset), batchError(pipeline, partition, h.BaseOffset, err)
		}
		next = h.NextOffset()
	}
	return dst, next, nil
}

// RecordJSON is a record as `sense consume --output json` prints it, one
// object per line, and as processors write NDJSON: pipeline, partition,
// hub, offset, key and value (null when absent), headers, jurisdiction
// ("MA,SN"), jurisdictions (the same codes as a list), priority and
// timestamp (RFC 3339, milliseconds, UTC). Jurisdiction, Jurisdictions and
// Priority are left out when the record carries none.
type RecordJSON struct {
	Pipeline      string            `json:"pipeline"`
	Partition     int32             `json:"partition"`
	Hub           string            `json:"hub"`
	Offset        int64             `json:"offset"`
	Key           *string           `json:"key"`
	Value         *string           `json:"value"`
	Headers       map[string]string `json:"headers,omitempty"`
	Jurisdiction  string            `json:"jurisdiction,omitempty"`
	Jurisdictions []string          `json:"jurisdictions,omitempty"`
	Priority      string            `json:"priority,omitempty"`
	Timestamp     string            `json:"timestamp"`
}

// JSON returns r in its JSON form; reg names the mask's jurisdictions (a
// bit no code owns shows as "bitN").
func (r *Record) JSON(reg *jurisdiction.Registry) RecordJSON {
	j := RecordJSON{Pipeline: r.Pipeline, Partition: r.Partition, Hub: r.Hub, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	if r.Key != nil {
		k := string(r.Key)
		j.Key = &k
	}
	if r.Value != nil {
		v := string(r.Value)
		j.Value = &v
	}
	if r.Mask != 0 {
		j.Jurisdiction = reg.Format(r.Mask)
		j.Jurisdictions = strings.Split(j.Jurisdiction, ",")
	}
	if r.HasPriority {
		j.Priority = r.Priority.String()
	}
	if len(r.Headers) > 0 {
		j.Headers = map[string]string{}
		for _, h := range r.Headers {
			j.Headers[h.Key] = string(h.Value)
		}
	}
	return j
}
