package wire_test

import (
	"bytes"
	"testing"

	"github.com/sensehq/sense/edge/native/wire"
)

// TestBatchBody: a batch body cut out of a PRODUCE frame, behind the
// prefix the HTTP edge puts in front of it, decodes to the same events.
func TestBatchBody(t *testing.T) {
	evs := []wire.EventIn{
		{Key: []byte("k"), Value: []byte("v1"), HasPriority: true, Priority: 2},
		{Value: []byte("v2"), HasMask: true, Mask: 3, HasTimestamp: true, TimestampMs: 1700000000123,
			Headers: []wire.Header{{Key: "h", Value: []byte("x")}}},
	}
	frame := wire.AppendProduce(nil, 7, wire.ProduceHeader{Pipeline: "orders", ProducerID: 5, Epoch: 1, BaseSequence: 9}, evs)
	body := wire.ProduceBatchBody(frame, "orders")
	if other := wire.AppendBatchBody(nil, evs); !bytes.Equal(body, other) {
		t.Fatalf("AppendBatchBody differs from the tail of a PRODUCE frame")
	}
	payload := make([]byte, wire.BatchBodyPrefixLen("events"), wire.BatchBodyPrefixLen("events")+len(body))
	wire.PutBatchBodyPrefix(payload, "events")
	payload = append(payload, body...)
	req, err := wire.Limits{MaxEventsPerProduce: 10}.DecodeProduce(payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(req.Pipeline) != "events" || req.ProducerID != -1 || req.Epoch != -1 || req.BaseSequence != -1 || req.Count != 2 {
		t.Fatalf("decoded %+v", req)
	}
	it := req.Events()
	for i := 0; it.Next(); i++ {
		ev := it.Event()
		if string(ev.Value) != string(evs[i].Value) || ev.HasMask != evs[i].HasMask || ev.HasPriority != evs[i].HasPriority ||
			ev.TimestampMs != evs[i].TimestampMs || ev.NumHeaders != len(evs[i].Headers) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}
