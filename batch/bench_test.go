package batch

import (
	"fmt"
	"testing"
)

// benchRecords returns n records with an 8-byte key and a valueSize-byte
// value, one millisecond apart.
func benchRecords(n, valueSize int) []rec {
	recs := make([]rec, n)
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte(i)
	}
	for i := range recs {
		recs[i] = rec{ts: 1_700_000_000_000 + int64(i), key: []byte(fmt.Sprintf("key%05d", i)), value: value}
	}
	return recs
}

// BenchmarkCheck validates a batch of 1000 records of 100-byte values
// (length, magic, CRC-32C, counts).
func BenchmarkCheck(b *testing.B) {
	p := build(b, -1, -1, -1, benchRecords(1000, 100)...)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuilderAdd measures one Add of a record with a 100-byte value
// and a header; the Builder is finished and reset every 1000 records, so
// after the warm-up it reuses its buffer and allocates nothing.
func BenchmarkBuilderAdd(b *testing.B) {
	recs := benchRecords(1000, 100)
	hdr := []RecordHeader{{Key: "trace", Value: []byte("0123456789abcdef")}}
	var bl Builder
	bl.Reset(-1, -1, -1)
	for _, r := range recs { // warm-up: grow the buffer once
		bl.Add(r.ts, r.key, r.value, hdr...)
	}
	bl.Finish()
	bl.Reset(-1, -1, -1)
	b.SetBytes(int64(len(recs[0].key) + len(recs[0].value)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &recs[i%len(recs)]
		bl.Add(r.ts, r.key, r.value, hdr...)
		if bl.Len() == len(recs) {
			bl.Finish()
			bl.Reset(-1, -1, -1)
		}
	}
}

// BenchmarkIter checks and walks a batch of 1000 records of 100-byte
// values, visiting every record and header.
func BenchmarkIter(b *testing.B) {
	p := build(b, -1, -1, -1, benchRecords(1000, 100)...)
	var it Iter
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := it.Reset(p); err != nil {
			b.Fatal(err)
		}
		n := 0
		for it.Next() {
			r := it.Record()
			n += len(r.Key) + len(r.Value)
			hi := r.Headers()
			for {
				if _, _, ok := hi.Next(); !ok {
					break
				}
			}
		}
		if it.Err() != nil || n == 0 {
			b.Fatal(it.Err())
		}
	}
}
