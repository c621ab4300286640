// Package ingest is the step every edge that takes Sense's own events
// shares between decoding a request and handing it to the node: a PRODUCE
// decoded by package wire (from a native or QUIC frame, or an HTTP batch
// body) becomes the node's events, aliasing the request's bytes (no copy of
// a key, value or header), with each event the edge refuses (too large, a
// bad mask or priority) answered by its code; and the memory a request
// holds while it is handled is reckoned here, once, for every edge.
package ingest

import (
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
)

// Request is a decoded PRODUCE turned into the node's events. Reuse one
// across requests: its slices keep their capacity.
type Request struct {
	// Events are the events the edge accepted, in request order; their
	// bytes alias the request.
	Events []node.Event
	// Index[k] is the position in the request of Events[k].
	Index []int
	// Codes has one entry per event of the request: OK for the accepted
	// ones, the edge's refusal otherwise.
	Codes []result.Code

	headers []batch.RawHeader
	// usedEvents and usedHeaders are how far into Events and headers the
	// requests converted since the last Release wrote: Release clears that
	// much, not the whole capacity (a pooled Request keeps the capacity of
	// its largest request, and clearing it all took 4% of the server's CPU
	// at 100,000 events/s).
	usedEvents, usedHeaders int
}

// Convert fills r from wr: every event that passes lim's checks becomes a
// node.Event (mask and timestamp only when the event carries them, so the
// pipeline's defaults apply otherwise), the others get their code.
func (r *Request) Convert(wr *wire.ProduceRequest, lim wire.Limits) {
	r.Events, r.Index, r.Codes = r.Events[:0], r.Index[:0], grow(r.Codes, wr.Count)
	// The headers of all events share one slice, sized by a first pass so
	// that appending never moves what earlier events point into.
	nh := 0
	it := wr.Events()
	for it.Next() {
		nh += it.Event().NumHeaders
	}
	if cap(r.headers) < nh {
		r.headers = make([]batch.RawHeader, 0, nh)
	}
	headers := r.headers[:0]
	it = wr.Events()
	for it.Next() {
		ev := it.Event()
		i := it.Index()
		if code := lim.CheckEvent(ev); code != result.OK {
			r.Codes[i] = code
			continue
		}
		r.Codes[i] = result.OK
		ne := node.Event{Key: ev.Key, Value: ev.Value, HasPriority: ev.HasPriority, Priority: ev.Priority}
		if ev.HasMask {
			ne.Mask = jurisdiction.Mask(ev.Mask)
		}
		if ev.HasTimestamp {
			ne.TimestampMs = ev.TimestampMs
		}
		from := len(headers)
		hi := ev.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			headers = append(headers, batch.RawHeader{Key: k, Value: v})
		}
		if len(headers) > from {
			ne.Headers = headers[from:len(headers):len(headers)]
		}
		r.Events = append(r.Events, ne)
		r.Index = append(r.Index, i)
	}
	r.headers = headers
	r.usedEvents = max(r.usedEvents, len(r.Events))
	r.usedHeaders = max(r.usedHeaders, len(r.headers))
}

// Release drops references into the last request's bytes, so a pooled
// Request does not keep them alive.
func (r *Request) Release() {
	clear(r.Events[:r.usedEvents])
	clear(r.headers[:r.usedHeaders])
	r.Events, r.headers = r.Events[:0], r.headers[:0]
	r.usedEvents, r.usedHeaders = 0, 0
}

// Memory is what a request of payload bytes and events events holds while
// it is handled, for the node's ingress budget (node.Reserve): its bytes,
// once as received and once copied into record batches, plus a little per
// event. Every edge reserves this before it reads or starts a request.
func Memory(payload, events int) int64 {
	return 2*int64(payload) + 64*int64(events)
}

// BodyMemory is what an HTTP request body of n bytes holds while it is
// handled: the body, the events decoded from it (NDJSON decodes into new
// strings) and the record batches built from them.
func BodyMemory(n int64) int64 { return 3 * n }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
