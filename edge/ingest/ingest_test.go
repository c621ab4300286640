package ingest

import (
	"bytes"
	"testing"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// Convert keeps accepted events with their bytes aliasing the request,
// answers refused ones by code, and keeps each event's headers its own
// across reuses of the Request.
func TestConvert(t *testing.T) {
	lim := wire.Limits{MaxEventBytes: 100, MaxHeaders: 4}
	if err := lim.Validate(); err != nil {
		t.Fatal(err)
	}
	events := []wire.EventIn{
		{Key: []byte("k0"), Value: []byte("v0"), Headers: []wire.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}},
		{Value: make([]byte, 200)}, // too large
		{Value: []byte("v2"), HasMask: true, Mask: 0},
		{Value: []byte("v3"), HasMask: true, Mask: jurisdiction.Mask(2), HasPriority: true, Priority: event.Critical, HasTimestamp: true, TimestampMs: 42,
			Headers: []wire.Header{{Key: "c", Value: []byte("3")}}},
	}
	frame := wire.AppendProduce(nil, 1, wire.ProduceHeader{Pipeline: "p"}, events)
	payload := frame[wire.FrameHeaderSize:]
	wr, err := lim.DecodeProduce(payload)
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	for round := range 2 {
		r.Convert(&wr, lim)
		if len(r.Codes) != 4 || r.Codes[0] != result.OK || r.Codes[1] != result.EventTooLarge || r.Codes[2] != result.InvalidMask || r.Codes[3] != result.OK {
			t.Fatalf("round %d: codes %v", round, r.Codes)
		}
		if len(r.Events) != 2 || r.Index[0] != 0 || r.Index[1] != 3 {
			t.Fatalf("round %d: %d events, index %v", round, len(r.Events), r.Index)
		}
		e0, e3 := r.Events[0], r.Events[1]
		if string(e0.Key) != "k0" || len(e0.Headers) != 2 || string(e0.Headers[1].Key) != "b" || e0.Mask != 0 || e0.HasPriority {
			t.Fatalf("round %d: event 0 %+v", round, e0)
		}
		if e3.Mask != 2 || e3.Priority != event.Critical || !e3.HasPriority || e3.TimestampMs != 42 || len(e3.Headers) != 1 || string(e3.Headers[0].Value) != "3" {
			t.Fatalf("round %d: event 3 %+v", round, e3)
		}
		// The bytes alias the request: no copy.
		if i := bytes.Index(payload, []byte("v0")); i < 0 || &payload[i] != &e0.Value[0] {
			t.Fatalf("round %d: event 0's value is a copy", round)
		}
	}
	r.Release()
	if len(r.Events) != 0 {
		t.Fatal("Release kept events")
	}
	// Nothing of the request stays referenced: every slot used is cleared,
	// also after a large request followed by a small one.
	r.Convert(&wr, lim)
	big := r.Events[:cap(r.Events)]
	small, err := lim.DecodeProduce(wire.AppendProduce(nil, 2, wire.ProduceHeader{Pipeline: "p"}, events[:1])[wire.FrameHeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	r.Convert(&small, lim)
	r.Release()
	for i, e := range big {
		if e.Key != nil || e.Value != nil || e.Headers != nil {
			t.Fatalf("event slot %d still references the request after Release", i)
		}
	}
	for i, h := range r.headers[:cap(r.headers)] {
		if h.Key != nil || h.Value != nil {
			t.Fatalf("header slot %d still references the request after Release", i)
		}
	}
	if Memory(1000, 10) != 2640 || BodyMemory(10) != 30 {
		t.Fatal("memory reckoning changed")
	}
}
