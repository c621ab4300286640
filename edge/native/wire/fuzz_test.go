package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// fuzzMaxFrame is the Reader's maximum in FuzzReader: small, so that the
// fuzzer reaches the limit.
const fuzzMaxFrame = 512

// FuzzReader feeds an arbitrary byte stream to Reader.Next until it fails.
// Every frame returned respects the maximum, re-encodes to exactly the
// bytes it was read from, and the loop ends with io.EOF or an error of the
// documented kinds, never a panic.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendPing(nil, 1, []byte("x")))
	f.Add(append(AppendHello(nil, 1, Hello{1, 1, "c"}), AppendPing(nil, 2, nil)...))
	f.Add(AppendProduce(nil, 3, ProduceHeader{Pipeline: "p"}, sampleEvents()[:4]))
	f.Add([]byte{0, 0, 0, 0})                               // length 0
	f.Add([]byte{0, 0, 0, 5, 1, 0, 0, 0, 0})                // length below the header
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 1}) // 4 GiB claim
	f.Add([]byte{0x80, 0, 0, 0, 3, 0, 0, 0, 0, 1})          // negative as int32
	f.Add([]byte{0, 0, 2, 1, 3, 0, 0, 0, 0, 1})             // just over the maximum
	f.Add([]byte{0, 0, 2, 0, 3, 0, 0, 0, 0, 1, 2, 3})       // at the maximum, cut
	f.Add([]byte{0, 0, 0, 6, 9, 0, 0, 0, 0, 1, 0, 0})       // a frame, then a cut length
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.SetMaxFrame(fuzzMaxFrame)
		var again []byte
		for {
			fr, err := r.Next()
			if err != nil {
				switch {
				case err == io.EOF:
					if !bytes.Equal(again, data) {
						t.Fatalf("io.EOF after %d of %d bytes", len(again), len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, result.ErrMalformed):
				case errors.Is(err, result.ErrRequestTooLarge):
					n := binary.BigEndian.Uint32(data[len(again):])
					if n <= fuzzMaxFrame {
						t.Fatalf("length %d refused as too large", n)
					}
				default:
					t.Fatalf("unexpected error %v", err)
				}
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("error not sticky: %v, then %v", err, err2)
				}
				return
			}
			if len(fr.Payload)+HeaderLen > fuzzMaxFrame {
				t.Fatalf("payload of %d bytes passed a maximum of %d", len(fr.Payload), fuzzMaxFrame)
			}
			again = AppendFrame(again, fr.Type, fr.Flags, fr.Corr, fr.Payload)
			if !bytes.HasPrefix(data, again) {
				t.Fatal("frames re-encode to other bytes than were read")
			}
		}
	})
}

// produceSeeds are PRODUCE payloads for the seed corpus: valid ones and
// the nasty cases.
func produceSeeds() [][]byte {
	valid := AppendProduce(nil, 1, ProduceHeader{Pipeline: "payments", ProducerID: 5, Epoch: 1, BaseSequence: 0}, sampleEvents())[FrameHeaderSize:]
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	seeds := [][]byte{
		valid,
		valid[:len(valid)-1],
		append(append([]byte(nil), valid...), 0),
		AppendProduce(nil, 1, ProduceHeader{}, nil)[FrameHeaderSize:],
		nil,
		u32(0xffffffff),
		u32(1 << 31),
		produceBody(0xffffffff, nil),
		produceBody(1<<31, make([]byte, 16)),
		produceBody(DefaultMaxEventsPerProduce+1, make([]byte, 3*(DefaultMaxEventsPerProduce+1))),
		produceBody(1, []byte{0xe0, 0, 0}),
		produceBody(1, cat([]byte{FieldKey}, u32(0xffffffff), []byte{0, 0})),
		produceBody(1, cat([]byte{FieldValue}, u32(0x7fffffff), []byte{0, 0})),
		produceBody(1, cat([]byte{FieldKey | FieldValue}, u32(1), []byte("k"), u32(0xfffffffe), []byte{0, 0})),
		produceBody(1, []byte{0, 0xff, 0xff}),
		produceBody(1, cat([]byte{0, 0, 1}, u32(0xffffffff), u32(0))),
		produceBody(1, cat([]byte{0, 0, 1}, u32(0), u32(0xffffffff))),
		produceBody(2, cat([]byte{FieldMask | FieldPriority | FieldTimestamp}, make([]byte, 17), []byte{0, 0}, []byte{0, 0})),
		cat(u32(250), bytes.Repeat([]byte{'p'}, 250), make([]byte, 18)),
	}
	return seeds
}

// FuzzDecodeProduce decodes arbitrary payloads as PRODUCE and walks every
// event and header. An accepted payload re-encodes to exactly itself (the
// encoding is canonical) and satisfies the limits DecodeProduce checks; a
// refused one gives a coded error. The raw iterator, run without
// DecodeProduce's checks, never panics either.
func FuzzDecodeProduce(f *testing.F) {
	for _, s := range produceSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		// The validating skip and the decoding parse agree at every offset.
		for off := range min(len(p), 64) {
			var ev Event
			n1, e1 := skipEvent(p[off:])
			n2, e2 := parseEvent(p[off:], &ev)
			if n1 != n2 || (e1 == nil) != (e2 == nil) {
				t.Fatalf("at %d: skipEvent = %d, %v; parseEvent = %d, %v", off, n1, e1, n2, e2)
			}
		}
		raw := EventIter{p: p, left: len(p)}
		for raw.Next() {
			hi := raw.Event().Headers()
			for _, _, ok := hi.Next(); ok; _, _, ok = hi.Next() {
			}
		}
		req, err := DecodeProduce(p)
		if err != nil {
			switch result.CodeOf(err) {
			case result.Malformed, result.RequestTooLarge, result.InvalidPipelineName:
			default:
				t.Fatalf("error without an expected code: %v", err)
			}
			return
		}
		if len(req.Pipeline) > MaxPipelineLen || req.Count > DefaultMaxEventsPerProduce {
			t.Fatalf("accepted pipeline of %d bytes, %d events", len(req.Pipeline), req.Count)
		}
		evs := make([]EventIn, 0, req.Count)
		it := req.Events()
		for it.Next() {
			ev := it.Event()
			in := EventIn{Key: ev.Key, Value: ev.Value, HasMask: ev.HasMask, Mask: ev.Mask,
				HasPriority: ev.HasPriority, Priority: ev.Priority, HasTimestamp: ev.HasTimestamp, TimestampMs: ev.TimestampMs}
			size := len(ev.Key) + len(ev.Value)
			hi := ev.Headers()
			for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
				in.Headers = append(in.Headers, Header{Key: string(k), Value: v})
				size += len(k) + len(v)
			}
			if len(in.Headers) != ev.NumHeaders || size != ev.Size {
				t.Fatalf("event %d: %d headers, size %d; view says %d, %d", it.Index(), len(in.Headers), size, ev.NumHeaders, ev.Size)
			}
			evs = append(evs, in)
		}
		if it.Err() != nil || len(evs) != req.Count {
			t.Fatalf("accepted request fails to iterate: %d of %d events, %v", len(evs), req.Count, it.Err())
		}
		h := ProduceHeader{Pipeline: string(req.Pipeline), ProducerID: req.ProducerID, Epoch: req.Epoch, BaseSequence: req.BaseSequence}
		again := AppendProduce(nil, 0, h, evs)[FrameHeaderSize:]
		if !bytes.Equal(again, p) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", again, p)
		}
	})
}

// eventsFrom derives events from fuzz bytes: each event consumes a flags
// byte, then bytes for the optional fields and lengths.
func eventsFrom(data []byte) []EventIn {
	var evs []EventIn
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n:n]
		data = data[n:]
		return b
	}
	for len(data) > 0 && len(evs) < 200 {
		fl := take(1)[0]
		var ev EventIn
		if fl&FieldKey != 0 {
			ev.Key = append([]byte{}, take(int(fl>>5))...)
		}
		if fl&FieldValue != 0 {
			ev.Value = append([]byte{}, take(int(fl>>4)*3)...)
		}
		if fl&FieldMask != 0 {
			ev.HasMask = true
			ev.Mask = jurisdiction.Mask(binary.LittleEndian.Uint64(append(take(8), make([]byte, 8)...)))
		}
		if fl&FieldPriority != 0 {
			ev.HasPriority = true
			ev.Priority = event.Priority(append(take(1), 0)[0])
		}
		if fl&FieldTimestamp != 0 {
			ev.HasTimestamp = true
			ev.TimestampMs = int64(binary.LittleEndian.Uint64(append(take(8), make([]byte, 8)...)))
		}
		for i := 0; i < int(fl>>6); i++ {
			ev.Headers = append(ev.Headers, Header{Key: string(take(i + 1)), Value: append([]byte{}, take(i*2)...)})
		}
		evs = append(evs, ev)
	}
	return evs
}

// FuzzProduceRoundTrip encodes events derived from the fuzz input and
// checks that decoding gives them back exactly.
func FuzzProduceRoundTrip(f *testing.F) {
	f.Add("payments", int64(-1), int16(-1), int32(-1), []byte{})
	f.Add("p", int64(7), int16(2), int32(1<<31-1), []byte{0x1f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add("", int64(0), int16(0), int32(0), bytes.Repeat([]byte{0xff}, 100))
	f.Add("x", int64(1), int16(1), int32(0), []byte{0x00, 0x01, 0x10, 0x11, 0xc0, 0x3f})
	f.Fuzz(func(t *testing.T, pipeline string, pid int64, epoch int16, seq int32, data []byte) {
		if len(pipeline) > MaxPipelineLen {
			pipeline = pipeline[:MaxPipelineLen]
		}
		evs := eventsFrom(data)
		h := ProduceHeader{Pipeline: pipeline, ProducerID: pid, Epoch: epoch, BaseSequence: seq}
		frame := AppendProduce(nil, 42, h, evs)
		fr := readOne(t, frame, TypeProduce, 42)
		req, err := DecodeProduce(fr.Payload)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if string(req.Pipeline) != pipeline || req.ProducerID != pid || req.Epoch != epoch || req.BaseSequence != seq || req.Count != len(evs) {
			t.Fatalf("header %+v", req)
		}
		it := req.Events()
		for it.Next() {
			checkEvent(t, it.Index(), it.Event(), &evs[it.Index()])
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
	})
}

// FuzzDecode runs the decoder of every other message type over arbitrary
// payloads: errors, never panics, and what is accepted re-encodes to the
// same bytes.
func FuzzDecode(f *testing.F) {
	for _, tc := range messageCases() {
		f.Add(uint8(tc.typ), tc.frame[FrameHeaderSize:])
	}
	f.Add(uint8(TypeData), []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add(uint8(TypeProduceResult), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(TypeHello), []byte("SNS1\x00\x01\x00\x01\xff\xff\xff\xff"))
	f.Add(uint8(TypeAuthenticate), AppendAuthenticate(nil, 1, Authenticate{Mechanism: "SCRAM-SHA-256", Data: []byte("n,,n=u,r=x")})[FrameHeaderSize:])
	f.Add(uint8(TypeAuthenticate), []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(TypeAuthenticateResult), AppendAuthenticateResult(nil, 1, AuthenticateResult{Done: true, Data: []byte("v=x"), Principal: "alice"})[FrameHeaderSize:])
	f.Add(uint8(TypeAuthenticateResult), []byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, typ uint8, p []byte) {
		var again []byte
		var err error
		switch Type(typ) {
		case TypeHello:
			var m Hello
			if m, err = DecodeHello(p); err == nil {
				again = AppendHello(nil, 0, m)
				p = p[:len(again)-FrameHeaderSize] // HELLO ignores what follows
			}
		case TypeHelloOK:
			var m HelloOK
			if m, err = DecodeHelloOK(p); err == nil {
				again = AppendHelloOK(nil, 0, m)
			}
		case TypeInitProducer:
			var m InitProducer
			if m, err = DecodeInitProducer(p); err == nil {
				again = AppendInitProducer(nil, 0, m)
				if len(p) == 4 { // an empty id may be sent as a string
					again = AppendFrame(nil, TypeInitProducer, 0, 0, []byte{0, 0, 0, 0})
				}
			}
		case TypeInitProducerOK:
			var m InitProducerOK
			if m, err = DecodeInitProducerOK(p); err == nil {
				again = AppendInitProducerOK(nil, 0, m)
			}
		case TypeProduceResult:
			var m ProduceResult
			if m, err = DecodeProduceResult(p); err == nil {
				again = AppendProduceResult(nil, 0, m.AppendTo(nil))
			}
		case TypeSubscribe:
			var m Subscribe
			if m, err = DecodeSubscribe(p); err == nil {
				again = AppendSubscribe(nil, 0, m)
			}
		case TypeSubscribed:
			var m Subscribed
			if m, err = DecodeSubscribed(p); err == nil {
				again = AppendSubscribed(nil, 0, m)
			}
		case TypeData:
			var m Data
			if m, err = DecodeData(p); err == nil {
				again = AppendData(nil, 0, m)
			}
		case TypeCredit:
			var n uint32
			if n, err = DecodeCredit(p); err == nil {
				again = AppendCredit(nil, 0, n)
			}
		case TypeFetch:
			var m Fetch
			if m, err = DecodeFetch(p); err == nil {
				again = AppendFetch(nil, 0, m)
			}
		case TypeFetchResult:
			var m FetchResult
			if m, err = DecodeFetchResult(p); err == nil {
				again = AppendFetchResult(nil, 0, m)
			}
		case TypeAuthenticate:
			var m Authenticate
			if m, err = DecodeAuthenticate(p); err == nil {
				again = AppendAuthenticate(nil, 0, m)
			}
		case TypeAuthenticateResult:
			var m AuthenticateResult
			if m, err = DecodeAuthenticateResult(p); err == nil {
				again = AppendAuthenticateResult(nil, 0, m)
			}
		case TypeError:
			var m *result.Error
			if m, err = DecodeError(p); err == nil {
				again = AppendError(nil, 0, m.Code, m.Message)
				if len(m.Message) > MaxErrorMessage {
					return // cut on purpose
				}
			}
		default:
			if err = DecodeEmpty(Type(typ), p); err == nil {
				again = AppendFrame(nil, Type(typ), 0, 0, nil)
			}
		}
		if err != nil {
			if c := result.CodeOf(err); c != result.Malformed && c != result.InvalidPipelineName {
				t.Fatalf("%s: error without an expected code: %v", Type(typ), err)
			}
			return
		}
		if !bytes.Equal(again[FrameHeaderSize:], p) {
			t.Fatalf("%s: re-encoding differs:\n got % x\nwant % x", Type(typ), again[FrameHeaderSize:], p)
		}
	})
}
