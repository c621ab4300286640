package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// benchEvents returns n events with an 8-byte key, a 100-byte value and a
// jurisdiction mask, as a client would send them.
func benchEvents(n int) []EventIn {
	value := bytes.Repeat([]byte{'v'}, 100)
	evs := make([]EventIn, n)
	for i := range evs {
		evs[i] = EventIn{Key: []byte(fmt.Sprintf("key%05d", i)), Value: value, HasMask: true, Mask: 0b101}
	}
	return evs
}

var benchHeader = ProduceHeader{Pipeline: "payments", ProducerID: 1, Epoch: 0, BaseSequence: 0}

// BenchmarkProduceEncode encodes a PRODUCE of 1000 events with 100-byte
// values into a reused buffer.
func BenchmarkProduceEncode(b *testing.B) {
	evs := benchEvents(1000)
	buf := AppendProduce(nil, 1, benchHeader, evs)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var e ProduceEncoder
	for b.Loop() {
		e.Begin(buf[:0], 1, benchHeader)
		for i := range evs {
			e.Add(evs[i])
		}
		buf = e.Finish()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// BenchmarkProduceDecode decodes the same PRODUCE and iterates over every
// event, as a server does.
func BenchmarkProduceDecode(b *testing.B) {
	evs := benchEvents(1000)
	p := AppendProduce(nil, 1, benchHeader, evs)[FrameHeaderSize:]
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	var sum int
	for b.Loop() {
		req, err := DecodeProduce(p)
		if err != nil {
			b.Fatal(err)
		}
		it := req.Events()
		for it.Next() {
			ev := it.Event()
			sum += len(ev.Value) + int(ev.Mask)
		}
		if it.Err() != nil {
			b.Fatal(it.Err())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
	_ = sum
}

// BenchmarkReaderProduce reads PRODUCE frames of 1000 events from a stream
// with a Reader, then decodes and iterates them.
func BenchmarkReaderProduce(b *testing.B) {
	frame := AppendProduce(nil, 1, benchHeader, benchEvents(1000))
	stream := bytes.Repeat(frame, 16)
	br := bytes.NewReader(stream)
	r := NewReader(br)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.Next()
		if err != nil {
			br.Reset(stream)
			r.Reset(br)
			if f, err = r.Next(); err != nil {
				b.Fatal(err)
			}
		}
		req, err := DecodeProduce(f.Payload)
		if err != nil {
			b.Fatal(err)
		}
		it := req.Events()
		for it.Next() {
		}
	}
}

// BenchmarkProduceResultEncode encodes the 1000 results of a PRODUCE.
func BenchmarkProduceResultEncode(b *testing.B) {
	rs := make([]EventResult, 1000)
	for i := range rs {
		rs[i] = EventResult{Partition: int32(i % 4), Offset: int64(i)}
	}
	buf := AppendProduceResult(nil, 1, rs)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendProduceResult(buf[:0], 1, rs)
	}
}
