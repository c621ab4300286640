package httpedge

import (
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
)

// BatchContentType is the media type of a produce body in the native
// batch encoding; wire.BatchContentType describes it. The Go client
// (client.Options.Transport "http") sends it.
const BatchContentType = wire.BatchContentType

// decodeBatch decodes payload, a batch body behind its prefix (see
// wire.PutBatchBodyPrefix), into d with wire's PRODUCE decoder. It returns a
// *malformedError, or a *tooManyEventsError, when the request must be
// refused whole. The events alias payload.
func decodeBatch(payload []byte, lim wire.Limits, d *decoded) error {
	d.reset()
	wr, err := lim.DecodeProduce(payload)
	if err != nil {
		if result.CodeOf(err) == result.RequestTooLarge {
			return &tooManyEventsError{lim.MaxEventsPerProduce}
		}
		msg := err.Error()
		if e, ok := err.(*result.Error); ok {
			msg = e.Message
		}
		return &malformedError{msg: "batch body: " + msg}
	}
	if cap(d.events) < wr.Count {
		d.events = make([]node.Event, 0, wr.Count)
		d.codes = make([]result.Code, 0, wr.Count)
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
		if code := lim.CheckEvent(ev); code != result.OK {
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
		d.add(ne, result.OK, "")
	}
	return nil
}
