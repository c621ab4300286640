package httpedge

import (
	"encoding/binary"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
)

// BatchContentType is the media type of a produce body in the native
// batch encoding: the part of a native PRODUCE payload (docs/protocol.md)
// that follows the base sequence, that is
//
//	u32 event count
//	events, each laid out as in PRODUCE
//
// The pipeline comes from the URL, and there is no producer id: HTTP
// produce is not idempotent.
const BatchContentType = "application/vnd.sense.batch"

// batchPrefixLen is the room left before a batch body so that it becomes a
// whole PRODUCE payload, which wire's decoder reads: pipeline (u32 length
// and name), producer id, epoch, base sequence.
func batchPrefixLen(pipeline string) int { return 4 + len(pipeline) + 8 + 2 + 4 }

// putBatchPrefix writes the PRODUCE fields that precede the events into
// p[:batchPrefixLen(pipeline)]: the pipeline, and -1 for the producer id,
// epoch and base sequence.
func putBatchPrefix(p []byte, pipeline string) {
	binary.BigEndian.PutUint32(p, uint32(len(pipeline)))
	off := 4 + copy(p[4:], pipeline)
	for i := off; i < off+14; i++ {
		p[i] = 0xff
	}
}

// AppendBatch appends a produce body in the native batch encoding holding
// events to dst. Mask, priority and timestamp are sent when their Has flag
// is set; the others take the request's defaults.
func AppendBatch(dst []byte, events []wire.EventIn) []byte {
	const name = "p"
	frame := wire.AppendProduce(nil, 0, wire.ProduceHeader{Pipeline: name, ProducerID: -1, Epoch: -1, BaseSequence: -1}, events)
	return append(dst, frame[wire.FrameHeaderSize+batchPrefixLen(name):]...)
}

// decodeBatch decodes payload, a batch body behind its prefix (see
// putBatchPrefix), into d with wire's PRODUCE decoder. It returns a
// *malformedError, or a *tooManyEventsError, when the request must be
// refused whole. The events alias payload.
func decodeBatch(payload []byte, lim wire.Limits, d *decoded) error {
	d.reset()
	wr, err := lim.DecodeProduce(payload)
	if err != nil {
		if wire.CodeOf(err) == wire.CodeRequestTooLarge {
			return &tooManyEventsError{lim.MaxEventsPerProduce}
		}
		msg := err.Error()
		if e, ok := err.(*wire.Error); ok {
			msg = e.Message
		}
		return &malformedError{msg: "batch body: " + msg}
	}
	if cap(d.events) < wr.Count {
		d.events = make([]node.Event, 0, wr.Count)
		d.codes = make([]wire.Code, 0, wr.Count)
		d.msgs = make([]string, 0, wr.Count)
	}
	// The headers of all events share one slice, sized by a first pass.
	nh := 0
	it := wr.Events()
	for it.Next() {
		nh += it.Event().NumHeaders
	}
	headers := make([]batch.RawHeader, 0, nh)
	it = wr.Events()
	for it.Next() {
		ev := it.Event()
		ne := node.Event{Key: ev.Key, Value: ev.Value, HasPriority: ev.HasPriority, Priority: ev.Priority}
		if ev.HasMask {
			ne.Mask = jurisdiction.Mask(ev.Mask)
		}
		if ev.HasTimestamp {
			ne.TimestampMs = ev.TimestampMs
		}
		if code := lim.CheckEvent(ev); code != wire.CodeNone {
			d.add(ne, code, "")
			continue
		}
		from := len(headers)
		hi := ev.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			headers = append(headers, batch.RawHeader{Key: k, Value: v})
		}
		if len(headers) > from {
			ne.Headers = headers[from:len(headers):len(headers)]
		}
		d.add(ne, wire.CodeNone, "")
	}
	return nil
}
