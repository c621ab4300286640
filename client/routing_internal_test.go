package client

import (
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// TestDecodeHeadersRouting: the binary routing headers win, the text ones
// of Kafka producers stand in for them, and a record with neither (or only
// unreadable ones) says that nothing is recorded.
func TestDecodeHeadersRouting(t *testing.T) {
	reg, err := jurisdiction.New([]string{"MA", "SN", "NG"}, map[string][]string{"WEST": {"SN", "NG"}})
	if err != nil {
		t.Fatal(err)
	}
	ma, sn, ng := jurisdiction.Mask(1), jurisdiction.Mask(2), jurisdiction.Mask(4)
	bin := func(m jurisdiction.Mask) batch.RecordHeader {
		return batch.RecordHeader{Key: event.HeaderMask, Value: event.AppendMaskHeader(nil, m)}
	}
	binP := func(p event.Priority) batch.RecordHeader {
		return batch.RecordHeader{Key: event.HeaderPriority, Value: event.AppendPriorityHeader(nil, p)}
	}
	text := func(k, v string) batch.RecordHeader { return batch.RecordHeader{Key: k, Value: []byte(v)} }
	for _, tc := range []struct {
		name     string
		headers  []batch.RecordHeader
		mask     jurisdiction.Mask
		prio     event.Priority
		hasPrio  bool
		nHeaders int // kept in Record.Headers
	}{
		{"none", nil, 0, event.Low, false, 0},
		{"own headers only", []batch.RecordHeader{text("trace", "x")}, 0, event.Low, false, 1},
		{"binary", []batch.RecordHeader{bin(ma | sn), binP(event.Critical)}, ma | sn, event.Critical, true, 0},
		{"binary low", []batch.RecordHeader{binP(event.Low)}, 0, event.Low, true, 0},
		{"text", []batch.RecordHeader{text("sense.jurisdiction", "ma, west"), text("sense.priority", "Medium")}, ma | sn | ng, event.Medium, true, 2},
		{"binary wins", []batch.RecordHeader{text("sense.jurisdiction", "NG"), bin(ma), text("sense.priority", "low"), binP(event.Critical)}, ma, event.Critical, true, 2},
		{"text fills what binary lacks", []batch.RecordHeader{bin(sn), text("sense.priority", "critical")}, sn, event.Critical, true, 1},
		{"first text header counts", []batch.RecordHeader{text("sense.jurisdiction", "SN"), text("sense.jurisdiction", "MA")}, sn, event.Low, false, 2},
		{"unreadable text", []batch.RecordHeader{text("sense.jurisdiction", "ZZ"), text("sense.priority", "urgent")}, 0, event.Low, false, 2},
		{"malformed binary kept as a header", []batch.RecordHeader{{Key: event.HeaderMask, Value: []byte{1}}, {Key: event.HeaderPriority, Value: []byte{9}}}, 0, event.Low, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b batch.Builder
			b.Reset(-1, -1, -1)
			b.Add(1, nil, []byte("v"), tc.headers...)
			it, err := batch.NewIter(b.Finish())
			if err != nil || !it.Next() {
				t.Fatal(err, it.Err())
			}
			var rec Record
			decodeHeaders(reg, it.Record(), &rec)
			if rec.Mask != tc.mask || rec.Priority != tc.prio || rec.HasPriority != tc.hasPrio || len(rec.Headers) != tc.nHeaders {
				t.Fatalf("mask %s priority %s (recorded %v), %d headers %v; want %s %s (%v), %d headers",
					reg.Format(rec.Mask), rec.Priority, rec.HasPriority, len(rec.Headers), rec.Headers,
					reg.Format(tc.mask), tc.prio, tc.hasPrio, tc.nHeaders)
			}
			for _, h := range rec.Headers {
				if h.Key == event.HeaderMask && len(h.Value) == event.MaskHeaderLen {
					t.Fatalf("a well-formed %s header is left in Headers", event.HeaderMask)
				}
			}
		})
	}
}
