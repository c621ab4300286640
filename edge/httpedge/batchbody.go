package httpedge

import (
	"github.com/sensehq/sense/edge/native/wire"
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
	d.in.Convert(&wr, lim)
	k := 0
	for _, code := range d.in.Codes {
		var ev node.Event
		if code == result.OK {
			ev = d.in.Events[k]
			k++
		}
		d.add(ev, code, "")
	}
	return nil
}
