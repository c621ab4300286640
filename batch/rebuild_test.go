package batch

import (
	"bytes"
	"testing"
)

// Every codec's output reads back with Decompress, and a rebuilt batch
// keeps the original's header fields, records and codec, with the extra
// headers added.
func TestRebuildEveryCodec(t *testing.T) {
	var b Builder
	b.Reset(42, 7, 100)
	value := bytes.Repeat([]byte("compressible "), 200)
	for i := range 50 {
		b.Add(int64(1000+i), []byte{byte(i)}, value, RecordHeader{Key: "app", Value: []byte("x")})
	}
	plain := bytes.Clone(b.Finish())
	ph, _ := Check(plain)
	for _, codec := range []int{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		t.Run(codecName(codec), func(t *testing.T) {
			var r Rebuilder
			r.Reset(&ph)
			it, _ := NewIter(plain)
			for it.Next() {
				r.Add(it.Record(), nil)
			}
			in, err := r.FinishCompressed(codec)
			if err != nil {
				t.Fatal(err)
			}
			in = bytes.Clone(in)
			h, err := Check(in)
			if err != nil || h.Compression() != codec {
				t.Fatalf("compressed batch: %v, codec %d", err, h.Compression())
			}
			if codec != CompressionNone && len(in) >= len(plain)/2 {
				t.Fatalf("%d bytes compressed from %d: not compressed", len(in), len(plain))
			}
			recs, err := Decompress(nil, in)
			if err != nil || !bytes.Equal(recs, plain[HeaderSize:]) {
				t.Fatalf("decompressed records differ: %v", err)
			}
			// Rebuild with one extra header per record, keeping the codec.
			r.Reset(&h)
			it, _ = NewIterRecords(recs, h.RecordCount)
			for it.Next() {
				r.Add(it.Record(), []RawHeader{{Key: []byte("sense.p"), Value: []byte{2}}})
			}
			out, err := r.FinishCompressed(h.Compression())
			if err != nil {
				t.Fatal(err)
			}
			oh, err := Check(out)
			if err != nil {
				t.Fatal(err)
			}
			if oh.Compression() != codec || oh.ProducerID != 42 || oh.ProducerEpoch != 7 || oh.BaseSequence != 100 ||
				oh.BaseTimestamp != 1000 || oh.MaxTimestamp != 1049 || oh.RecordCount != 50 || oh.LastDelta != 49 {
				t.Fatalf("rebuilt header %+v", oh)
			}
			orecs, err := Decompress(nil, out)
			if err != nil {
				t.Fatal(err)
			}
			it, _ = NewIterRecords(orecs, oh.RecordCount)
			i := 0
			for it.Next() {
				rec := it.Record()
				hi := rec.Headers()
				k1, v1, _ := hi.Next()
				k2, v2, _ := hi.Next()
				if rec.TimestampDelta != int64(i) || rec.OffsetDelta != int32(i) || rec.Key[0] != byte(i) || !bytes.Equal(rec.Value, value) ||
					string(k1) != "app" || string(v1) != "x" || string(k2) != "sense.p" || !bytes.Equal(v2, []byte{2}) {
					t.Fatalf("record %d: %+v", i, rec)
				}
				i++
			}
			if it.Err() != nil || i != 50 {
				t.Fatalf("%d records, %v", i, it.Err())
			}
		})
	}
}

// AddEncoded with headers given encoded builds the same batch as Add with
// them as RawHeaders.
func TestRebuildAddEncodedMatchesAdd(t *testing.T) {
	var b Builder
	b.Reset(42, 7, 100)
	for i := range 20 {
		b.Add(int64(1000+i), []byte{byte(i)}, bytes.Repeat([]byte("v"), 10*i), RecordHeader{Key: "app", Value: []byte("x")})
	}
	b.Add(1100, nil, nil)
	plain := bytes.Clone(b.Finish())
	ph, _ := Check(plain)
	extra := []RawHeader{{Key: []byte("sense.j"), Value: []byte{0, 0, 0, 0, 0, 0, 0, 3}}, {Key: []byte("sense.p"), Value: []byte{1}}}
	enc := appendRawHeaders(nil, extra)
	var x, y Rebuilder
	x.Reset(&ph)
	y.Reset(&ph)
	it, _ := NewIter(plain)
	for k := 0; it.Next(); k++ {
		n := k % 3 // none, the first, both
		x.Add(it.Record(), extra[:n])
		y.AddEncoded(it.Record(), enc[:len(appendRawHeaders(nil, extra[:n]))], n)
	}
	if !bytes.Equal(x.Finish(), y.Finish()) {
		t.Fatal("AddEncoded rebuilds differently from Add")
	}
}
