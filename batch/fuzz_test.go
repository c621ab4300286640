package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// checkAll runs every reader in the package over p and checks the
// invariants that hold for any input. It returns whether the batch was
// fully decoded.
func checkAll(t *testing.T, p []byte) bool {
	t.Helper()
	if n, err := Size(p); err != nil {
		if !isSentinel(err) {
			t.Fatalf("Size: unexpected error %v", err)
		}
	} else if n < HeaderSize || n > MaxSize {
		t.Fatalf("Size = %d outside [%d, %d]", n, HeaderSize, MaxSize)
	}
	ph, perr := ParseHeader(p)
	if perr != nil && !isSentinel(perr) {
		t.Fatalf("ParseHeader: unexpected error %v", perr)
	}
	h, err := Check(p)
	if err != nil {
		if !isSentinel(err) {
			t.Fatalf("Check: unexpected error %v", err)
		}
		if _, ierr := NewIter(p); ierr == nil {
			t.Fatalf("Check failed (%v) but NewIter succeeded", err)
		}
		return false
	}
	// Check succeeded: the batch is exactly p.
	if perr != nil || ph != h {
		t.Fatalf("Check ok but ParseHeader = %+v, %v", ph, perr)
	}
	if n, err := Size(p); err != nil || n != len(p) || h.Size() != len(p) {
		t.Fatalf("Check ok but Size = %d, %v; h.Size() = %d; len = %d", n, err, h.Size(), len(p))
	}
	if h.Magic != Magic || h.RecordCount < 0 || h.LastDelta < 0 || int64(h.RecordCount) > int64(h.LastDelta)+1 {
		t.Fatalf("Check accepted header %+v", h)
	}
	if Checksum(p[OffAttributes:]) != h.CRC {
		t.Fatal("Check accepted a bad CRC")
	}

	it, err := NewIter(p)
	if err != nil {
		if h.Compression() == CompressionNone || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Check ok, NewIter = %v (compression %d)", err, h.Compression())
		}
		if it.Next() {
			t.Fatal("refused iterator iterates")
		}
		return false
	}
	if h.Compression() != CompressionNone {
		t.Fatalf("NewIter accepted compression %d", h.Compression())
	}
	var n int32
	var payload int
	for it.Next() {
		n++
		r := it.Record()
		if r.OffsetDelta < 0 {
			t.Fatalf("negative offset delta %d", r.OffsetDelta)
		}
		payload += len(r.Key) + len(r.Value)
		hi := r.Headers()
		nh := 0
		for {
			k, v, ok := hi.Next()
			if !ok {
				break
			}
			if k == nil {
				t.Fatal("HeaderIter returned a null key")
			}
			payload += len(k) + len(v)
			nh++
		}
		if nh != r.NumHeaders {
			t.Fatalf("HeaderIter gave %d headers, NumHeaders %d", nh, r.NumHeaders)
		}
		if n > h.RecordCount {
			t.Fatalf("iterated %d records, header says %d", n, h.RecordCount)
		}
	}
	if it.Next() {
		t.Fatal("Next true after the end")
	}
	if err := it.Err(); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Iter: unexpected error %v", err)
		}
		return false
	}
	if n != h.RecordCount {
		t.Fatalf("iterated %d records, header says %d", n, h.RecordCount)
	}
	if payload > len(p) {
		t.Fatalf("records hold %d payload bytes in a %d-byte batch", payload, len(p))
	}
	// Whatever we accept, a real Kafka client library must read the same.
	compareWithKmsg(t, p)
	return true
}

// FuzzCheck feeds arbitrary bytes to every reader. Random bytes almost never
// carry a valid CRC-32C, so each input is also tried "resealed": magic set
// to 2, compression bits cleared, length and CRC rewritten. That lets the
// fuzzer reach the record and header decoder.
func FuzzCheck(f *testing.F) {
	valid := build(f, 7, 1, 0, sampleRecords()...)
	f.Add(valid)
	f.Add(build(f, -1, -1, -1, rec{ts: 1, key: []byte("k"), value: []byte("v")}))
	f.Add(build(f, -1, -1, -1, rec{ts: 1, hdrs: []RecordHeader{{Key: "a", Value: nil}}}))

	withLength := func(l uint32) []byte {
		p := clone(valid)
		binary.BigEndian.PutUint32(p[OffLength:], l)
		return p
	}
	f.Add(withLength(math.MaxInt32))                      // huge length
	f.Add(withLength(math.MaxInt32)[:LogOverhead])        // huge length, nothing else
	f.Add(withLength(MaxSize - LogOverhead)[:HeaderSize]) // largest allowed, header only
	f.Add(withLength(uint32(1) << 31))                    // negative (min int32)
	f.Add(withLength(math.MaxUint32))                     // -1
	f.Add(withLength(0))                                  // length 0
	f.Add([]byte{})                                       // nothing
	f.Add(clone(valid[:40]))                              // truncated header
	f.Add(clone(valid[:HeaderSize]))                      // header only
	f.Add(clone(valid[:len(valid)-5]))                    // truncated records
	f.Add(reseal(clone(valid[:len(valid)-5])))            // truncated records, resealed
	f.Add(append(clone(valid), 0, 0, 0))                  // trailing bytes
	magic1 := clone(valid)
	magic1[OffMagic] = 1
	f.Add(magic1)

	counted := func(count, last uint32) []byte {
		p := clone(valid)
		binary.BigEndian.PutUint32(p[OffRecordCount:], count)
		binary.BigEndian.PutUint32(p[OffLastDelta:], last)
		return reseal(p)
	}
	f.Add(counted(math.MaxInt32, math.MaxInt32-1)) // record count 2^31-1
	f.Add(counted(math.MaxInt32, 5))
	f.Add(counted(100, 200))
	f.Add(counted(0, 0))
	compressed := clone(valid)
	compressed[OffAttributes+1] |= CompressionZstd
	f.Add(reseal(compressed))

	pad := make([]byte, 16)
	f.Add(rawBatch(1, 0, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1<<40), pad)))         // header count huge
	f.Add(rawBatch(1, 0, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(math.MaxInt32), pad))) // header count 2^31-1
	f.Add(rawBatch(1, 0, cat(bytes.Repeat([]byte{0xff}, 10), pad)))                                // varint overflow
	f.Add(rawBatch(1, 0, record([]byte{0}, bytes.Repeat([]byte{0xff}, 10), pad)))                  // varint overflow inside a record
	f.Add(rawBatch(1, 0, record([]byte{0}, vi(0), vi(0), overlong(1, 6), []byte("k"), vi(-1), vi(0))))
	f.Add(rawBatch(1, 0, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(-1), vi(-1)))) // null header key
	f.Add(rawBatch(2, 1, cat(record(okRecordBody(0)), record(okRecordBody(1)))))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkAll(t, data)
		if len(data) >= HeaderSize && len(data) <= MaxSize {
			q := clone(data)
			q[OffMagic] = Magic
			q[OffAttributes+1] &^= AttrCompressionMask
			checkAll(t, reseal(q))
		}
	})
}

// FuzzBuilderRoundTrip builds batches from fuzzed fields and checks that
// Iter (and franz-go) return exactly what was added.
func FuzzBuilderRoundTrip(f *testing.F) {
	f.Add([]byte("key"), []byte("value"), "header", []byte("hv"), int64(1_700_000_000_000))
	f.Add([]byte{}, []byte{}, "", []byte{}, int64(0))
	f.Add([]byte(nil), []byte(nil), "h", []byte(nil), int64(-1))
	f.Add(bytes.Repeat([]byte{0xff}, 300), bytes.Repeat([]byte{0}, 70000), "\x00\xff", []byte{0x80}, int64(math.MinInt64))
	f.Add([]byte("k"), []byte("v"), "h", []byte("v"), int64(math.MaxInt64))

	f.Fuzz(func(t *testing.T, key, value []byte, hk string, hv []byte, ts int64) {
		// Wrapping arithmetic is fine: deltas are taken and added back
		// modulo 2^64.
		recs := []rec{
			{ts: ts, key: key, value: value, hdrs: []RecordHeader{{Key: hk, Value: hv}}},
			{ts: ts - 1, key: nil, value: value},
			{ts: ts + 1, key: key, value: nil, hdrs: []RecordHeader{{Key: hk, Value: nil}, {Key: string(key), Value: value}}},
			{ts: ^ts, key: value, value: key, hdrs: []RecordHeader{{Key: hk, Value: hv}, {Key: "", Value: []byte{}}, {Key: hk + hk, Value: key}}},
		}
		var b Builder
		for _, recs := range [][]rec{recs[:1], recs} {
			b.Reset(-1, -1, -1)
			for _, r := range recs {
				b.Add(r.ts, r.key, r.value, r.hdrs...)
			}
			p := b.Finish()
			if len(p) > MaxSize {
				return // the Builder does not enforce MaxSize; Check would refuse
			}
			h, got, err := decodeAll(p)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if n, err := Size(p); err != nil || n != len(p) {
				t.Fatalf("Size = %d, %v; want %d", n, err, len(p))
			}
			maxTS := recs[0].ts
			for _, r := range recs {
				maxTS = max(maxTS, r.ts)
			}
			if h.BaseTimestamp != recs[0].ts || h.MaxTimestamp != maxTS || h.RecordCount != int32(len(recs)) || h.LastDelta != int32(len(recs)-1) {
				t.Fatalf("header %+v", h)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i, r := range recs {
				g := got[i]
				if g.ts != r.ts || g.offsetDelta != int32(i) || !sameBytes(g.key, r.key) || !sameBytes(g.value, r.value) || len(g.hdrs) != len(r.hdrs) {
					t.Fatalf("record %d: got %+v, added %+v", i, g, r)
				}
				for j := range r.hdrs {
					if g.hdrs[j].Key != r.hdrs[j].Key || !sameBytes(g.hdrs[j].Value, r.hdrs[j].Value) {
						t.Fatalf("record %d header %d: got %q=%q, added %q=%q", i, j, g.hdrs[j].Key, g.hdrs[j].Value, r.hdrs[j].Key, r.hdrs[j].Value)
					}
				}
			}
			compareWithKmsg(t, p)
		}
	})
}
