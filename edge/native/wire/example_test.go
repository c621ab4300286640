package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/result"
)

// A client's handshake and one PRODUCE, and how a server reads them and
// answers. A bytes.Buffer stands in for the connection.
func Example() {
	var conn bytes.Buffer

	// Client: HELLO, then a PRODUCE of two events built in place.
	buf := wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "example"})
	var enc wire.ProduceEncoder
	enc.Begin(buf, 2, wire.ProduceHeader{Pipeline: "payments", ProducerID: -1, Epoch: -1, BaseSequence: -1})
	enc.Add(wire.EventIn{Key: []byte("k1"), Value: []byte("v1"), HasMask: true, Mask: 0b1})
	enc.Add(wire.EventIn{Value: []byte("v2")})
	conn.Write(enc.Finish())

	// Server: read frames, small limit until HELLO is answered.
	r := wire.NewReader(&conn)
	r.SetMaxFrame(wire.HandshakeMaxFrame)
	out := bufio.NewWriter(&bytes.Buffer{})
	for {
		f, err := r.Next()
		if err != nil {
			break // io.EOF here; on framing errors send ERROR with corr 0 and close
		}
		switch f.Type {
		case wire.TypeHello:
			h, err := wire.DecodeHello(f.Payload)
			if err != nil {
				out.Write(wire.AppendErrorFrom(out.AvailableBuffer(), 0, err))
				return
			}
			v, err := wire.NegotiateVersion(h)
			if err != nil {
				out.Write(wire.AppendErrorFrom(out.AvailableBuffer(), f.Corr, err))
				return
			}
			r.SetMaxFrame(wire.DefaultMaxFrameBytes)
			out.Write(wire.AppendHelloOK(out.AvailableBuffer(), f.Corr, wire.NewHelloOK(v, wire.Limits{}, "sense/example")))
			fmt.Printf("HELLO from %q, version %d\n", h.ClientID, v)
		case wire.TypeProduce:
			req, err := wire.DecodeProduce(f.Payload)
			if errors.Is(err, result.ErrMalformed) {
				out.Write(wire.AppendErrorFrom(out.AvailableBuffer(), f.Corr, err))
				return // and close the connection
			}
			results := make([]wire.EventResult, 0, req.Count)
			it := req.Events()
			for it.Next() {
				ev := it.Event()
				code := wire.Limits{}.CheckEvent(ev)
				fmt.Printf("event %d: key %q value %q mask %v/%b -> %s\n", it.Index(), ev.Key, ev.Value, ev.HasMask, ev.Mask, code)
				results = append(results, wire.EventResult{Code: code, Partition: 0, Offset: int64(it.Index())})
			}
			out.Write(wire.AppendProduceResult(out.AvailableBuffer(), f.Corr, results))
		}
	}
	fmt.Println(out.Buffered(), "bytes of answers")
	// Output:
	// HELLO from "example", version 1
	// event 0: key "k1" value "v1" mask true/1 -> NONE
	// event 1: key "" value "v2" mask false/0 -> NONE
	// 83 bytes of answers
}
