package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// maskedBatch builds a batch at base offset base whose i-th record has
// value name-i and mask masks[i] (0: no mask header).
func maskedBatch(t *testing.T, base int64, name string, codec int, masks ...jurisdiction.Mask) []byte {
	t.Helper()
	var b batch.Builder
	b.Reset(7, 1, 100)
	for i, m := range masks {
		var hs []batch.RawHeader
		if m != 0 {
			hs = append(hs, batch.RawHeader{Key: []byte(event.HeaderMask), Value: event.AppendMaskHeader(nil, m)})
		}
		b.AddRaw(1000+int64(i), nil, fmt.Appendf(nil, "%s-%d", name, i), hs)
	}
	p := append([]byte(nil), b.Finish()...)
	binary.BigEndian.PutUint64(p[batch.OffBaseOffset:], uint64(base))
	if codec != batch.CompressionNone {
		c, err := batch.Compress(nil, codec, p[batch.HeaderSize:])
		if err != nil {
			t.Fatal(err)
		}
		p = append(p[:batch.HeaderSize:batch.HeaderSize], c...)
		attrs := binary.BigEndian.Uint16(p[batch.OffAttributes:])
		binary.BigEndian.PutUint16(p[batch.OffAttributes:], attrs|uint16(codec))
		binary.BigEndian.PutUint32(p[batch.OffLength:], uint32(len(p)-batch.LogOverhead))
		binary.BigEndian.PutUint32(p[batch.OffCRC:], batch.Checksum(p[batch.OffAttributes:]))
	}
	return p
}

// TestMaskFilter: records a reader may not receive leave the batches;
// batches keep their offsets, producer fields and a valid CRC; a batch
// whose records all pass is passed as it is, compressed or not.
func TestMaskFilter(t *testing.T) {
	const ma, sn = jurisdiction.Mask(1), jurisdiction.Mask(2)
	whole := maskedBatch(t, 0, "whole", batch.CompressionZstd, ma|sn, sn)
	mixed := maskedBatch(t, 2, "mixed", batch.CompressionGzip, ma, ma|sn, 0, sn, ma)
	none := maskedBatch(t, 7, "none", batch.CompressionNone, ma, ma)
	src := append(append(append([]byte(nil), whole...), mixed...), none...)

	var f MaskFilter
	out, err := f.Filter(nil, src, func(m jurisdiction.Mask) bool { return sn&^m == 0 })
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		off   int64
		value string
	}
	var got []rec
	var bases []int64
	var nexts []int64
	for p := out; len(p) > 0; {
		ph, err := batch.ParseHeader(p)
		if err != nil || len(p) < ph.Size() {
			t.Fatalf("a filtered batch does not parse: %v", err)
		}
		h, err := batch.Check(p[:ph.Size()])
		if err != nil {
			t.Fatalf("a filtered batch does not check: %v", err)
		}
		if h.ProducerID != 7 || h.ProducerEpoch != 1 || h.BaseSequence != 100 {
			t.Fatalf("producer fields %d/%d/%d, want 7/1/100", h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		bases, nexts = append(bases, h.BaseOffset), append(nexts, h.NextOffset())
		records := p[batch.HeaderSize:h.Size()]
		if h.Compression() != batch.CompressionNone {
			if records, err = batch.Decompress(nil, p[:h.Size()]); err != nil {
				t.Fatal(err)
			}
		}
		var it batch.Iter
		if err := it.ResetRecords(records, h.RecordCount); err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			r := it.Record()
			got = append(got, rec{h.BaseOffset + int64(r.OffsetDelta), string(r.Value)})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		p = p[h.Size():]
	}
	want := []rec{{0, "whole-0"}, {1, "whole-1"}, {3, "mixed-1"}, {5, "mixed-3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if fmt.Sprint(bases) != "[0 2 7]" || fmt.Sprint(nexts) != "[2 7 9]" {
		t.Fatalf("batches at %v ending before %v, want [0 2 7] and [2 7 9]", bases, nexts)
	}
	if string(out[:len(whole)]) != string(whole) {
		t.Fatal("a batch whose records all pass was re-encoded")
	}

	// Every mask passes: the batches are the source's, but for the record
	// without a mask, which is never passed.
	out, err = f.Filter(out[:0], src, func(jurisdiction.Mask) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, whole) || !bytes.HasSuffix(out, none) || len(out) >= len(src)+len(mixed) {
		t.Fatalf("all masks passing: %d bytes from %d; the whole batches are not kept as they are", len(out), len(src))
	}
	ph, err := batch.ParseHeader(out[len(whole):])
	if err != nil {
		t.Fatal(err)
	}
	h, err := batch.Check(out[len(whole) : len(whole)+ph.Size()])
	if err != nil || h.RecordCount != 4 || h.BaseOffset != 2 || h.NextOffset() != 7 {
		t.Fatalf("the mixed batch, all masks passing: %+v, %v; want its 4 masked records at 2..6", h, err)
	}
	if _, err := f.Filter(nil, src[:len(src)-1], func(jurisdiction.Mask) bool { return true }); err == nil {
		t.Fatal("a truncated batch filtered without an error")
	}
}
