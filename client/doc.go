// Package client is the Go client of Sense's native protocol
// (docs/protocol.md), over TCP or QUIC, and of its HTTP edge: produce
// events with a result per event, read them back through credit-paced
// subscriptions (over HTTP, event-stream tails), and run admin operations.
//
// A Client holds one TCP connection to a node, opened by Dial with the
// HELLO handshake. One reader goroutine demultiplexes the server's frames
// by correlation id; writes are serialized. Producers and consumers made
// from a Client share its connection.
//
// # QUIC
//
// With Options.Transport "quic" the client dials the node's QUIC listener
// (UDP, default 127.0.0.1:7071) once, and each logical connection is a
// stream of that QUIC connection: one for admin calls and fetches, and one
// of its own for each Producer and each Consumer, so a packet lost on one
// flow does not hold up the others. A dev server's certificate is
// self-signed: pin it with Options.ServerFingerprint, the SHA-256 that
// `sense serve` prints (docs/quic.md):
//
//	c, err := client.Dial(ctx, client.Options{Transport: client.TransportQUIC,
//		Addr: "127.0.0.1:7071", ServerFingerprint: "3f9a...e1"})
//
// Everything above the byte stream (batching, idempotent retries,
// credit) is the same code as over TCP.
//
// # HTTP
//
// With Options.Transport "http" the client speaks to the node's HTTP
// listener (default 127.0.0.1:8080, docs/http.md) over HTTP/2: with prior
// knowledge (h2c) on a plain address, over TLS when Addr starts with
// https:// or a TLS option is set. The API is the same: a Producer POSTs
// its batches in the native batch encoding (application/vnd.sense.batch),
// up to MaxInFlight at once, and maps the per-event JSON results to the
// same Results and *result.Error codes as over TCP (429 and 503 are retried
// like OVERLOADED and NOT_READY); a Consumer tails each partition with
// Server-Sent Events from the offset its From or Starts gives; Admin,
// Registry and Describe POST to /v1/admin; Fetch is a GET.
//
// HTTP produce has no idempotence. A request that reached the node but
// whose answer was lost is therefore not resent: its events fail with an
// *UnknownOutcomeError (errors.Is ErrUnknownOutcome) and are stored once
// or not at all, never twice. ProducerOptions.AtLeastOnce resends such
// requests instead, accepting duplicates. A request that never reached a
// connection is resent as over TCP. Concurrent requests may be stored in
// any order: set MaxInFlight to 1 when the order across requests matters.
//
// # Producing
//
// A Producer batches events into PRODUCE requests (BatchEvents, BatchBytes,
// Linger), keeps up to MaxInFlight requests outstanding, and calls each
// event's callback with its partition and offset, or an error:
//
//	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1:7070"})
//	if err != nil { ... }
//	defer c.Close()
//	reg, err := c.Registry(ctx) // jurisdiction codes -> mask bits
//	if err != nil { ... }
//	mask, err := reg.Parse("MA,SN")
//	if err != nil { ... }
//	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
//	if err != nil { ... }
//	for _, v := range values {
//		p.Send(client.Event{Key: []byte("user42"), Value: v, Mask: mask}, func(r client.Result) {
//			if errors.Is(r.Err, result.ErrNoCompliantHub) {
//				// no hub in MA or SN may hold it: dropped before storage
//			}
//		})
//	}
//	if err := p.Close(); err != nil { ... } // flushes: every callback has run
//
// Produce sends one event and waits for its result. Producers are
// idempotent by default: a request whose answer was lost with the
// connection is resent identically on a new connection, and the server
// answers it with the original offsets instead of storing it twice. See
// Producer for retries and ordering.
//
// # Consuming
//
// A Consumer subscribes to a pipeline's partitions from Earliest, Latest
// or an offset, and grants the server credit as it hands out records:
//
//	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "payments", From: client.Earliest})
//	if err != nil { ... }
//	defer cs.Close()
//	for {
//		r, err := cs.Next(ctx)
//		if err != nil { ... } // ctx ended, or a subscription ended
//		fmt.Printf("%s/%d@%d %s %s %s\n", r.Pipeline, r.Partition, r.Offset, r.Key, r.Value, reg.Format(r.Mask))
//	}
//
// # Errors
//
// Protocol error codes arrive as *result.Error values, matched with
// errors.Is against result.ErrNoCompliantHub, result.ErrUnknownPipeline and
// the other sentinels (result.CodeOf extracts the code). A lost connection
// is a *ConnError matching ErrConnectionLost; a refused admin operation an
// *AdminError.
package client
