// Package wire encodes and decodes the frames of Sense's native binary
// protocol, spoken over TCP (and, later, on QUIC streams). It does no I/O of
// its own beyond Reader, holds no connection state, and never copies a
// payload it does not have to: servers and clients are built on top of it.
// docs/protocol.md is the full specification; this comment is a summary.
//
// # Framing
//
// Every frame, in both directions, is (big-endian):
//
//	u32  length   bytes after this field: 6 + payload length
//	u8   type     message type (Type); bit 7 set on frames the server sends
//	u8   flags    none defined in version 1: send 0, ignore on receipt
//	u32  corr     correlation id, chosen by the client; 0 is reserved
//	...  payload  length - 6 bytes
//
// "string" and "bytes" fields are a u32 length and that many bytes. A
// Reader refuses a length below 6 (result.ErrMalformed) or above its maximum
// (result.ErrRequestTooLarge) before it reads or allocates for the payload.
//
// # Reading
//
// A Reader wraps a connection and returns one Frame per call to Next; the
// payload aliases a buffer reused by the next call:
//
//	r := wire.NewReader(conn)
//	r.SetMaxFrame(wire.HandshakeMaxFrame) // until HELLO is answered
//	for {
//		f, err := r.Next()
//		if err != nil { ... }               // io.EOF, or framing lost: close
//		switch f.Type {
//		case wire.TypeProduce:
//			req, err := wire.DecodeProduce(f.Payload)
//			...
//		}
//	}
//
// Each message has a DecodeXxx function taking the payload. Decoders check
// every length against the bytes left before using it and return an error
// matching result.ErrMalformed on bad input, never panic. DecodeProduce and the
// result decoders allocate nothing; the decoders of rare messages (HELLO,
// SUBSCRIBE, ERROR ...) copy their strings.
//
// # Writing
//
// Each message has an AppendXxx(dst, corr, msg) function that appends the
// whole frame (header, then body, then the length patched in) to dst, in
// one pass and without allocating when dst has room. With a bufio.Writer,
// append straight into its free space:
//
//	b := bw.AvailableBuffer()
//	b = wire.AppendProduceResult(b, f.Corr, results)
//	bw.Write(b)
//
// A client batching events uses a ProduceEncoder (Begin, Add, Finish) and
// watches Size to stay under the server's maximum frame. BeginFrame and
// EndFrame build any other frame the same way.
//
// # Errors
//
// Every protocol error code is a Code. Errors from this package and errors
// decoded from ERROR frames are *result.Error values carrying a Code; errors.Is
// matches them against the sentinels result.ErrMalformed, result.ErrNoCompliantHub and
// so on, whatever their message. result.CodeOf extracts the code of any error, and
// Code.Retriable says whether resending the same request may succeed.
//
// # Flow control
//
// DATA frames on a subscription are paced by credit, in bytes of record
// batches; CreditAccount implements the rule for servers.
package wire
