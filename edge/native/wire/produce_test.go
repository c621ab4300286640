package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
)

func TestProduceRoundTrip(t *testing.T) {
	evs := sampleEvents()
	h := ProduceHeader{Pipeline: "payments", ProducerID: 77, Epoch: 3, BaseSequence: 1<<31 - 10}
	frame := AppendProduce([]byte("junk"), 12, h, evs)[4:]
	f := readOne(t, frame, TypeProduce, 12)
	req, err := DecodeProduce(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(req.Pipeline) != h.Pipeline || req.ProducerID != h.ProducerID || req.Epoch != h.Epoch ||
		req.BaseSequence != h.BaseSequence || req.Count != len(evs) {
		t.Fatalf("header %+v", req)
	}
	if req.Sequence(0) != 1<<31-10 || req.Sequence(9) != 1<<31-1 || req.Sequence(10) != 0 || req.Sequence(31) != 21 {
		t.Fatal("Sequence does not wrap at 2^31")
	}
	it := req.Events()
	i := 0
	for it.Next() {
		if it.Index() != i {
			t.Fatalf("Index %d, want %d", it.Index(), i)
		}
		checkEvent(t, i, it.Event(), &evs[i])
		i++
	}
	if it.Err() != nil || i != len(evs) {
		t.Fatalf("iterated %d of %d events: %v", i, len(evs), it.Err())
	}
	if it.Next() {
		t.Fatal("Next after the end")
	}
}

func TestProduceEncoder(t *testing.T) {
	evs := sampleEvents()
	var e ProduceEncoder
	e.Begin([]byte("pre"), 5, ProduceHeader{Pipeline: "p", ProducerID: -1, Epoch: -1, BaseSequence: -1})
	size := e.Size()
	for i, ev := range evs {
		e.Add(ev)
		if e.Len() != i+1 || e.Size() != size+ev.EncodedLen() {
			t.Fatalf("after event %d: Len %d Size %d, want %d %d", i, e.Len(), e.Size(), i+1, size+ev.EncodedLen())
		}
		size = e.Size()
	}
	b := e.Finish()
	if string(b[:3]) != "pre" || len(b)-3 != size {
		t.Fatalf("Finish: %d bytes after the prefix, Size said %d", len(b)-3, size)
	}
	want := AppendProduce(nil, 5, ProduceHeader{Pipeline: "p", ProducerID: -1, Epoch: -1, BaseSequence: -1}, evs)
	if !bytes.Equal(b[3:], want) {
		t.Fatal("ProduceEncoder and AppendProduce differ")
	}
}

func TestProduceEncodeAllocs(t *testing.T) {
	evs := sampleEvents()
	h := ProduceHeader{Pipeline: "p", ProducerID: 1, Epoch: 0, BaseSequence: 0}
	buf := AppendProduce(nil, 1, h, evs)
	var e ProduceEncoder
	allocs := testing.AllocsPerRun(100, func() {
		e.Begin(buf[:0], 1, h)
		for i := range evs {
			e.Add(evs[i])
		}
		buf = e.Finish()
	})
	if allocs != 0 {
		t.Fatalf("encoding allocates %.1f times", allocs)
	}
	p := buf[FrameHeaderSize:]
	allocs = testing.AllocsPerRun(100, func() {
		req, err := DecodeProduce(p)
		if err != nil {
			t.Fatal(err)
		}
		it := req.Events()
		for it.Next() {
			hi := it.Event().Headers()
			for _, _, ok := hi.Next(); ok; _, _, ok = hi.Next() {
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding allocates %.1f times", allocs)
	}
}

func TestEncoderPanicsOnTooManyHeaders(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	var e ProduceEncoder
	e.Begin(nil, 1, ProduceHeader{})
	e.Add(EventIn{Headers: make([]Header, 65536)})
}

// produceBody returns a PRODUCE payload whose event count is count and
// whose event bytes are events.
func produceBody(count uint32, events []byte) []byte {
	p := appendString(nil, "pipe")
	p = binary.BigEndian.AppendUint64(p, ^uint64(0))
	p = binary.BigEndian.AppendUint16(p, 0xffff)
	p = binary.BigEndian.AppendUint32(p, 0xffffffff)
	p = binary.BigEndian.AppendUint32(p, count)
	return append(p, events...)
}

func TestDecodeProduceMalformed(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
		index   int // event index named in the message, -1 for none
	}{
		{"empty", nil, result.ErrMalformed, -1},
		{"pipeline length huge", u32(0xffffffff), result.ErrMalformed, -1},
		{"pipeline length past end", cat(u32(10), []byte("abc")), result.ErrMalformed, -1},
		{"fixed part cut", produceBody(0, nil)[:20], result.ErrMalformed, -1},
		{"count 2^32-1", produceBody(0xffffffff, make([]byte, 64)), result.ErrMalformed, -1},
		{"count 2^31 (negative as i32)", produceBody(1<<31, make([]byte, 64)), result.ErrMalformed, -1},
		{"count over remaining/3", produceBody(22, make([]byte, 64)), result.ErrMalformed, -1},
		{"count over the limit", produceBody(DefaultMaxEventsPerProduce+1, make([]byte, 3*(DefaultMaxEventsPerProduce+1))), result.ErrRequestTooLarge, -1},
		{"reserved flag", produceBody(1, []byte{0x20, 0, 0}), result.ErrMalformed, 0},
		{"trailing bytes", produceBody(1, []byte{0, 0, 0, 9}), result.ErrMalformed, -1},
		{"mask cut", produceBody(1, []byte{FieldMask, 0, 0, 0, 0, 0, 0}), result.ErrMalformed, 0},
		{"key length huge", produceBody(1, cat([]byte{FieldKey}, u32(0xffffffff), []byte{0, 0})), result.ErrMalformed, 0},
		{"key eats header count", produceBody(1, cat([]byte{FieldKey}, u32(2), []byte{0, 0})), result.ErrMalformed, 0},
		{"value length huge", produceBody(1, cat([]byte{FieldValue}, u32(0x80000000), []byte{0, 0})), result.ErrMalformed, 0},
		{"key ok value cut", produceBody(1, cat([]byte{FieldKey | FieldValue}, u32(1), []byte("k"), u32(5), []byte("ab"), []byte{0, 0})), result.ErrMalformed, 0},
		{"header count huge", produceBody(1, []byte{0, 0xff, 0xff, 0, 0, 0, 0}), result.ErrMalformed, 0},
		{"header key length huge", produceBody(1, cat([]byte{0, 0, 1}, u32(0xfffffff0), u32(0))), result.ErrMalformed, 0},
		{"header value cut", produceBody(1, cat([]byte{0, 0, 1}, u32(0), u32(3), []byte("ab"))), result.ErrMalformed, 0},
		{"second event bad", produceBody(2, cat([]byte{0, 0, 0}, []byte{0xff, 0, 0})), result.ErrMalformed, 1},
		{"two bytes after three events", produceBody(3, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), result.ErrMalformed, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeProduce(tc.payload)
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodeProduce = %+v, %v; want %v", req, err, tc.want)
			}
			if tc.index >= 0 && !strings.Contains(err.Error(), fmt.Sprintf("event %d:", tc.index)) {
				t.Fatalf("error %q does not name event %d", err, tc.index)
			}
			// The iterator, run on the same bytes without DecodeProduce's
			// checks, fails the same way and never panics.
			if len(tc.payload) > 0 {
				it := EventIter{p: tc.payload, left: 1 << 30}
				for it.Next() {
				}
				if it.Err() == nil {
					t.Fatal("raw iterator accepts the bytes")
				}
			}
		})
	}
}

// Every truncation of a valid PRODUCE payload is refused.
func TestDecodeProduceTruncated(t *testing.T) {
	p := AppendProduce(nil, 1, ProduceHeader{Pipeline: "pipe", ProducerID: 1}, sampleEvents())[FrameHeaderSize:]
	for n := 0; n < len(p); n++ {
		cut := append([]byte(nil), p[:n]...) // no spare capacity to read past
		_, err := DecodeProduce(cut)
		mustMalformed(t, err, fmt.Sprintf("cut at %d of %d", n, len(p)))
	}
	if _, err := DecodeProduce(append(append([]byte(nil), p...), 0)); !errors.Is(err, result.ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// A refused request allocates nothing in proportion to what it claims.
func TestDecodeProduceHugeClaimsAllocateLittle(t *testing.T) {
	payloads := [][]byte{
		produceBody(0xffffffff, make([]byte, 30)),
		produceBody(1, []byte{FieldKey | FieldValue, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}),
		produceBody(1, []byte{0, 0xff, 0xff}),
	}
	for i, p := range payloads {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			if _, err := DecodeProduce(p); err == nil {
				t.Fatal("accepted")
			}
		}
		runtime.ReadMemStats(&after)
		if perCall := (after.TotalAlloc - before.TotalAlloc) / 100; perCall > 1024 {
			t.Fatalf("payload %d: %d bytes allocated for one error", i, perCall)
		}
	}
}

func TestLimitsDecodeProduce(t *testing.T) {
	evs := make([]EventIn, 10)
	p := AppendProduce(nil, 1, ProduceHeader{Pipeline: "p"}, evs)[FrameHeaderSize:]
	if _, err := (Limits{MaxEventsPerProduce: 10}).DecodeProduce(p); err != nil {
		t.Fatal(err)
	}
	if _, err := (Limits{MaxEventsPerProduce: 9}).DecodeProduce(p); !errors.Is(err, result.ErrRequestTooLarge) {
		t.Fatalf("10 events with a limit of 9: %v", err)
	}
}

func TestCheckEvent(t *testing.T) {
	l := Limits{MaxEventBytes: 100, MaxHeaders: 2}
	for _, tc := range []struct {
		ev   EventIn
		want result.Code
	}{
		{EventIn{}, result.OK},
		{EventIn{Value: make([]byte, 100)}, result.OK},
		{EventIn{Key: make([]byte, 1), Value: make([]byte, 100)}, result.EventTooLarge},
		{EventIn{Headers: []Header{{Key: strings.Repeat("k", 60), Value: make([]byte, 41)}}}, result.EventTooLarge},
		{EventIn{Headers: make([]Header, 3)}, result.EventTooLarge},
		{EventIn{HasMask: true}, result.InvalidMask},
		{EventIn{HasMask: true, Mask: 1}, result.OK},
		{EventIn{HasPriority: true, Priority: event.Critical}, result.OK},
		{EventIn{HasPriority: true, Priority: 3}, result.InvalidPriority},
		{EventIn{Mask: 0, Priority: 200}, result.OK}, // absent: pipeline defaults apply
	} {
		p := AppendProduce(nil, 1, ProduceHeader{Pipeline: "p"}, []EventIn{tc.ev})[FrameHeaderSize:]
		req, err := DecodeProduce(p)
		if err != nil {
			t.Fatal(err)
		}
		it := req.Events()
		it.Next()
		if got := l.CheckEvent(it.Event()); got != tc.want {
			t.Fatalf("CheckEvent(%+v) = %s, want %s", tc.ev, got, tc.want)
		}
	}
}

func TestProduceResultView(t *testing.T) {
	rs := make([]EventResult, 1000)
	for i := range rs {
		rs[i] = EventResult{Code: result.Code(i % 27), Partition: int32(i % 7), Offset: int64(i) << 20}
	}
	f := readOne(t, AppendProduceResult(nil, 3, rs), TypeProduceResult, 3)
	var r ProduceResult
	allocs := testing.AllocsPerRun(10, func() {
		var err error
		if r, err = DecodeProduceResult(f.Payload); err != nil {
			t.Fatal(err)
		}
		for i := range r.Len() {
			if r.At(i) != rs[i] {
				t.Fatalf("entry %d: %+v, want %+v", i, r.At(i), rs[i])
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding a PRODUCE_RESULT allocates %.0f times", allocs)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("At(Len()) does not panic")
			}
		}()
		r.At(r.Len())
	}()
	for _, p := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},
		{0x80, 0, 0, 0, 1, 2, 3},
		append([]byte{0, 0, 0, 2}, make([]byte, 14*2+1)...),
		append([]byte{0, 0, 0, 2}, make([]byte, 14*2-1)...),
		{0, 0, 0},
	} {
		_, err := DecodeProduceResult(p)
		mustMalformed(t, err, fmt.Sprintf("result % x", p))
	}
}
