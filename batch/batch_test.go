package batch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ---------------------------------------------------------------------------
// Helpers shared by the tests, fuzz targets and benchmarks of this package.

// rec is a record as a test adds it to a Builder.
type rec struct {
	ts    int64
	key   []byte
	value []byte
	hdrs  []RecordHeader
}

// gotRec is a record as read back through Iter, with copies of its bytes
// (nil preserved) and its absolute timestamp.
type gotRec struct {
	ts          int64
	tsDelta     int64
	offsetDelta int32
	key         []byte
	value       []byte
	hdrs        []RecordHeader
}

// clone copies b, keeping nil as nil and empty as empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// sameBytes is bytes.Equal that also tells null (nil) from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// build encodes recs with a fresh Builder and returns a copy of the batch.
func build(tb testing.TB, pid int64, epoch int16, seq int32, recs ...rec) []byte {
	tb.Helper()
	var b Builder
	b.Reset(pid, epoch, seq)
	for _, r := range recs {
		b.Add(r.ts, r.key, r.value, r.hdrs...)
	}
	if b.Len() != len(recs) {
		tb.Fatalf("Builder.Len() = %d, want %d", b.Len(), len(recs))
	}
	p := b.Finish()
	if len(recs) > 0 && b.Size() != len(p) {
		tb.Fatalf("Builder.Size() = %d, len(Finish()) = %d", b.Size(), len(p))
	}
	return clone(p)
}

// decodeAll reads every record of p through Iter and HeaderIter.
func decodeAll(p []byte) (Header, []gotRec, error) {
	h, err := Check(p)
	if err != nil {
		return h, nil, err
	}
	it, err := NewIter(p)
	if err != nil {
		return h, nil, err
	}
	var out []gotRec
	for it.Next() {
		r := it.Record()
		g := gotRec{
			ts:          h.BaseTimestamp + r.TimestampDelta,
			tsDelta:     r.TimestampDelta,
			offsetDelta: r.OffsetDelta,
			key:         clone(r.Key),
			value:       clone(r.Value),
		}
		hi := r.Headers()
		for {
			k, v, ok := hi.Next()
			if !ok {
				break
			}
			g.hdrs = append(g.hdrs, RecordHeader{Key: string(k), Value: clone(v)})
		}
		if len(g.hdrs) != r.NumHeaders {
			return h, out, fmt.Errorf("HeaderIter returned %d headers, NumHeaders = %d", len(g.hdrs), r.NumHeaders)
		}
		out = append(out, g)
	}
	if it.Next() {
		return h, out, errors.New("Next returned true after the end")
	}
	return h, out, it.Err()
}

// reseal rewrites the length field and the CRC so that p is self-consistent
// again after a test edited it.
func reseal(p []byte) []byte {
	binary.BigEndian.PutUint32(p[OffLength:], uint32(len(p)-LogOverhead))
	binary.BigEndian.PutUint32(p[OffCRC:], crc32.Checksum(p[OffAttributes:], crc32.MakeTable(crc32.Castagnoli)))
	return p
}

// rawBatch wraps hand-made record bytes in a sealed header.
func rawBatch(count, lastDelta int32, records []byte) []byte {
	p := make([]byte, HeaderSize, HeaderSize+len(records))
	binary.BigEndian.PutUint32(p[OffLeaderEpoch:], math.MaxUint32)
	p[OffMagic] = Magic
	binary.BigEndian.PutUint32(p[OffLastDelta:], uint32(lastDelta))
	binary.BigEndian.PutUint64(p[OffProducerID:], math.MaxUint64)
	binary.BigEndian.PutUint16(p[OffProducerEpoch:], math.MaxUint16)
	binary.BigEndian.PutUint32(p[OffBaseSequence:], math.MaxUint32)
	binary.BigEndian.PutUint32(p[OffRecordCount:], uint32(count))
	return reseal(append(p, records...))
}

// vi is a zig-zag varint.
func vi(v int64) []byte { return binary.AppendVarint(nil, v) }

// overlong encodes v as a zig-zag varint padded to exactly n bytes, a
// non-canonical encoding (Kafka's int32 varints are at most 5 bytes).
func overlong(v int64, n int) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	out := make([]byte, 0, n)
	for i := 0; i < n-1; i++ {
		out = append(out, byte(u&0x7f)|0x80)
		u >>= 7
	}
	return append(out, byte(u))
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// record prefixes a record body with its varint length.
func record(body ...[]byte) []byte {
	b := cat(body...)
	return cat(vi(int64(len(b))), b)
}

// okRecord is a minimal well-formed record body: attributes, timestamp
// delta, offset delta, key "k", null value, no headers.
func okRecordBody(offsetDelta int64) []byte {
	return cat([]byte{0}, vi(0), vi(offsetDelta), vi(1), []byte("k"), vi(-1), vi(0))
}

func isSentinel(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrShort)
}

// sampleRecords exercise every record field.
func sampleRecords() []rec {
	return []rec{
		{ts: 1_700_000_000_000, key: []byte("k1"), value: []byte("v1")},
		{ts: 1_700_000_000_005, key: nil, value: []byte("null key")},
		{ts: 1_699_999_999_990, key: []byte("null value"), value: nil}, // negative delta
		{ts: 1_700_000_000_005, key: []byte{}, value: []byte{}},        // empty, not null
		{ts: 1_700_000_000_100, key: []byte("h"), value: []byte("with headers"), hdrs: []RecordHeader{
			{Key: "trace", Value: []byte("abc")},
			{Key: "null", Value: nil},
			{Key: "", Value: []byte{}},
			{Key: "bin", Value: []byte{0, 0xff, 0x80}},
		}},
		{ts: 1_700_000_000_050, key: nil, value: nil},
	}
}

// ---------------------------------------------------------------------------
// Builder / Check / Iter round trips.

func TestBuildRoundTrip(t *testing.T) {
	many := make([]rec, 300) // offset deltas > 63 need two-byte varints
	for i := range many {
		many[i] = rec{ts: int64(1000 + i%7*1000), key: []byte(fmt.Sprintf("key-%d", i)), value: bytes.Repeat([]byte{byte(i)}, i%50)}
	}
	tests := []struct {
		name  string
		pid   int64
		epoch int16
		seq   int32
		recs  []rec
	}{
		{"one record", -1, -1, -1, []rec{{ts: 42, key: []byte("k"), value: []byte("v")}}},
		{"null key and value", -1, -1, -1, []rec{{ts: 0, key: nil, value: nil}}},
		{"empty key and value", -1, -1, -1, []rec{{ts: 0, key: []byte{}, value: []byte{}}}},
		{"every field", 1234, 5, 77, sampleRecords()},
		{"null header value", -1, -1, -1, []rec{{ts: 1, hdrs: []RecordHeader{{Key: "a", Value: nil}, {Key: "b", Value: []byte("x")}}}}},
		{"big value", -1, -1, -1, []rec{{ts: 7, key: []byte("big"), value: bytes.Repeat([]byte("x"), 70000)}}},
		{"many header", -1, -1, -1, []rec{{ts: 7, hdrs: func() []RecordHeader {
			h := make([]RecordHeader, 200)
			for i := range h {
				h[i] = RecordHeader{Key: fmt.Sprint("h", i), Value: []byte(fmt.Sprint(i))}
			}
			return h
		}()}}},
		{"300 records", 9, 0, math.MaxInt32 - 10, many},
		{"negative timestamps", -1, -1, -1, []rec{{ts: -5}, {ts: -10}, {ts: 3}}},
		{"extreme timestamps", -1, -1, -1, []rec{{ts: math.MinInt64}, {ts: math.MaxInt64}, {ts: 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, tt.pid, tt.epoch, tt.seq, tt.recs...)
			h, got, err := decodeAll(p)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if n, err := Size(p); err != nil || n != len(p) {
				t.Errorf("Size = %d, %v; want %d", n, err, len(p))
			}
			maxTS := tt.recs[0].ts
			for _, r := range tt.recs {
				maxTS = max(maxTS, r.ts)
			}
			want := Header{
				BaseOffset: 0, Length: int32(len(p) - LogOverhead), LeaderEpoch: -1, Magic: Magic,
				CRC: Checksum(p[OffAttributes:]), Attributes: 0, LastDelta: int32(len(tt.recs) - 1),
				BaseTimestamp: tt.recs[0].ts, MaxTimestamp: maxTS,
				ProducerID: tt.pid, ProducerEpoch: tt.epoch, BaseSequence: tt.seq,
				RecordCount: int32(len(tt.recs)),
			}
			if h != want {
				t.Errorf("header\n got %+v\nwant %+v", h, want)
			}
			if h.Size() != len(p) || h.LastOffset() != int64(len(tt.recs)-1) || h.NextOffset() != int64(len(tt.recs)) {
				t.Errorf("Size/LastOffset/NextOffset = %d/%d/%d", h.Size(), h.LastOffset(), h.NextOffset())
			}
			if h.Idempotent() != (tt.pid >= 0 && tt.seq >= 0) {
				t.Errorf("Idempotent = %v", h.Idempotent())
			}
			if len(got) != len(tt.recs) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.recs))
			}
			for i, r := range tt.recs {
				g := got[i]
				if g.offsetDelta != int32(i) {
					t.Errorf("record %d: offset delta %d", i, g.offsetDelta)
				}
				if g.ts != r.ts || g.tsDelta != r.ts-tt.recs[0].ts {
					t.Errorf("record %d: ts %d (delta %d), want %d", i, g.ts, g.tsDelta, r.ts)
				}
				if !sameBytes(g.key, r.key) || !sameBytes(g.value, r.value) {
					t.Errorf("record %d: key %q value %q, want %q %q (nil: %v %v want %v %v)",
						i, g.key, g.value, r.key, r.value, g.key == nil, g.value == nil, r.key == nil, r.value == nil)
				}
				if len(g.hdrs) != len(r.hdrs) {
					t.Fatalf("record %d: %d headers, want %d", i, len(g.hdrs), len(r.hdrs))
				}
				for j := range r.hdrs {
					if g.hdrs[j].Key != r.hdrs[j].Key || !sameBytes(g.hdrs[j].Value, r.hdrs[j].Value) {
						t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, g.hdrs[j].Key, g.hdrs[j].Value, r.hdrs[j].Key, r.hdrs[j].Value)
					}
				}
			}
		})
	}
}

func TestBuilderReuseAndEmpty(t *testing.T) {
	var b Builder
	b.Reset(-1, -1, -1)
	if p := b.Finish(); p != nil {
		t.Fatalf("Finish with no records = %d bytes, want nil", len(p))
	}
	b.Add(1, []byte("a"), []byte("first batch, rather long value"))
	b.Add(2, []byte("b"), nil)
	first := clone(b.Finish())
	b.Reset(5, 1, 0)
	if b.Len() != 0 || b.Size() != HeaderSize {
		t.Fatalf("after Reset: Len %d Size %d", b.Len(), b.Size())
	}
	b.Add(10, nil, []byte("second"))
	second := b.Finish()
	_, got, err := decodeAll(second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].value) != "second" || got[0].key != nil || got[0].ts != 10 {
		t.Fatalf("second batch decoded as %+v", got)
	}
	h, _ := Check(second)
	if h.ProducerID != 5 || h.ProducerEpoch != 1 || h.BaseSequence != 0 || h.LastSequence() != 0 {
		t.Errorf("second header %+v", h)
	}
	if _, _, err := decodeAll(first); err != nil {
		t.Errorf("first batch (copied) no longer valid: %v", err)
	}
}

func TestSetBaseOffsetAndLeaderEpoch(t *testing.T) {
	p := build(t, -1, -1, -1, sampleRecords()...)
	crc := binary.BigEndian.Uint32(p[OffCRC:])
	for _, c := range []struct {
		off   int64
		epoch int32
	}{{0, 0}, {1 << 40, 7}, {math.MaxInt64 - 100, math.MaxInt32}, {-1, -1}} {
		SetBaseOffset(p, c.off)
		SetLeaderEpoch(p, c.epoch)
		h, err := Check(p)
		if err != nil {
			t.Fatalf("Check after SetBaseOffset(%d)/SetLeaderEpoch(%d): %v", c.off, c.epoch, err)
		}
		if h.BaseOffset != c.off || h.LeaderEpoch != c.epoch || h.CRC != crc {
			t.Errorf("header %+v, want base %d epoch %d crc %08x", h, c.off, c.epoch, crc)
		}
		if h.LastOffset() != c.off+int64(len(sampleRecords())-1) {
			t.Errorf("LastOffset = %d", h.LastOffset())
		}
	}
}

func TestLastSequenceWraps(t *testing.T) {
	for _, c := range []struct {
		base, delta, want int32
	}{{-1, 5, -1}, {0, 0, 0}, {10, 5, 15}, {math.MaxInt32, 1, 0}, {math.MaxInt32 - 1, 3, 1}} {
		h := Header{BaseSequence: c.base, LastDelta: c.delta}
		if got := h.LastSequence(); got != c.want {
			t.Errorf("LastSequence(base %d, delta %d) = %d, want %d", c.base, c.delta, got, c.want)
		}
	}
}

// ---------------------------------------------------------------------------
// Damage: bit flips, truncation, bad fields.

func TestEveryBitFlip(t *testing.T) {
	orig := build(t, 99, 1, 0, sampleRecords()...)
	p := clone(orig)
	for i := range p {
		for bit := 0; bit < 8; bit++ {
			p[i] ^= 1 << bit
			h, err := Check(p)
			_, iterErr := NewIter(p)
			switch {
			case i < OffLength || (i >= OffLeaderEpoch && i < OffMagic):
				// Base offset and leader epoch: outside the CRC.
				if err != nil || iterErr != nil {
					t.Errorf("flip byte %d bit %d (base offset/leader epoch): Check %v, NewIter %v; want success", i, bit, err, iterErr)
				}
				if i < OffLength && h.BaseOffset != int64(binary.BigEndian.Uint64(p)) {
					t.Errorf("flip byte %d: BaseOffset %d", i, h.BaseOffset)
				}
			case i >= OffCRC:
				// The CRC itself and everything it covers.
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("flip byte %d bit %d: Check error %v, want ErrCorrupt", i, bit, err)
				}
				if !errors.Is(iterErr, ErrCorrupt) {
					t.Errorf("flip byte %d bit %d: NewIter error %v, want ErrCorrupt", i, bit, iterErr)
				}
			default:
				// Length field or magic: refused one way or another.
				if err == nil || !isSentinel(err) || iterErr == nil {
					t.Errorf("flip byte %d bit %d: Check %v, NewIter %v; want a batch error", i, bit, err, iterErr)
				}
			}
			p[i] ^= 1 << bit
		}
	}
	if !bytes.Equal(p, orig) {
		t.Fatal("test bug: batch not restored")
	}
}

func TestTruncation(t *testing.T) {
	p := build(t, -1, -1, -1, sampleRecords()...)
	for n := 0; n < len(p); n++ {
		q := clone(p[:n]) // exact capacity: any read past the end panics
		if _, err := Check(q); !errors.Is(err, ErrShort) {
			t.Errorf("Check(p[:%d]) = %v, want ErrShort", n, err)
		}
		if _, err := NewIter(q); !errors.Is(err, ErrShort) {
			t.Errorf("NewIter(p[:%d]) = %v, want ErrShort", n, err)
		}
		_, herr := ParseHeader(q)
		size, serr := Size(q)
		if n < LogOverhead {
			if !errors.Is(serr, ErrShort) {
				t.Errorf("Size(p[:%d]) = %v, want ErrShort", n, serr)
			}
		} else if serr != nil || size != len(p) {
			t.Errorf("Size(p[:%d]) = %d, %v; want %d", n, size, serr, len(p))
		}
		if n < HeaderSize {
			if !errors.Is(herr, ErrShort) {
				t.Errorf("ParseHeader(p[:%d]) = %v, want ErrShort", n, herr)
			}
		} else if herr != nil {
			t.Errorf("ParseHeader(p[:%d]) = %v, want success (header complete)", n, herr)
		}
	}
	// Bytes after the batch are not part of it.
	if _, err := Check(append(clone(p), 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check(batch + 1 byte) = %v, want ErrInvalid", err)
	}
}

// TestTruncatedRecordsResealed cuts the records at every length and fixes
// the length and CRC, so only the record structure is wrong.
func TestTruncatedRecordsResealed(t *testing.T) {
	p := build(t, -1, -1, -1, sampleRecords()...)
	for n := HeaderSize; n < len(p); n++ {
		q := reseal(clone(p[:n]))
		_, got, err := decodeAll(q)
		if err == nil {
			t.Errorf("records cut to %d bytes: decoded %d records without error", n-HeaderSize, len(got))
			continue
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
			t.Errorf("records cut to %d bytes: %v, want ErrCorrupt or ErrInvalid", n-HeaderSize, err)
		}
	}
}

func TestLengthField(t *testing.T) {
	valid := build(t, -1, -1, -1, sampleRecords()...)
	tests := []struct {
		name    string
		length  int64
		sizeErr error // from Size
		fullErr error // from Check on the whole batch
	}{
		{"zero", 0, ErrCorrupt, ErrCorrupt},
		{"negative", -1, ErrCorrupt, ErrCorrupt},
		{"min int32", math.MinInt32, ErrCorrupt, ErrCorrupt},
		{"below header", HeaderSize - LogOverhead - 1, ErrCorrupt, ErrCorrupt},
		{"above MaxSize", MaxSize - LogOverhead + 1, ErrCorrupt, ErrCorrupt},
		{"huge", math.MaxInt32, ErrCorrupt, ErrCorrupt},
		{"MaxSize exactly", MaxSize - LogOverhead, nil, ErrShort},
		{"header only", HeaderSize - LogOverhead, nil, ErrInvalid},
		{"one too long", int64(len(valid) - LogOverhead + 1), nil, ErrShort},
		{"one too short", int64(len(valid) - LogOverhead - 1), nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := clone(valid)
			binary.BigEndian.PutUint32(p[OffLength:], uint32(int32(tt.length)))
			n, err := Size(p)
			if !errors.Is(err, tt.sizeErr) || (err == nil && n != LogOverhead+int(tt.length)) {
				t.Errorf("Size = %d, %v; want %v", n, err, tt.sizeErr)
			}
			if _, err := Check(p); !errors.Is(err, tt.fullErr) || err == nil {
				t.Errorf("Check = %v, want %v", err, tt.fullErr)
			}
			if _, err := NewIter(p); err == nil {
				t.Error("NewIter succeeded")
			}
			// Only the first 12 bytes: the length must be judged, and
			// nothing allocated for it, before anything else is read.
			short := clone(p[:LogOverhead])
			if _, err := Check(short); err == nil {
				t.Error("Check(12 bytes) succeeded")
			}
			if tt.sizeErr != nil {
				if _, err := ParseHeader(short); !errors.Is(err, ErrCorrupt) {
					t.Errorf("ParseHeader(12 bytes) = %v, want ErrCorrupt", err)
				}
			}
			if got := allocatedBytes(func() {
				Size(short)
				ParseHeader(short)
				Check(short)
				Check(p)
				NewIter(p)
			}); got > 64<<10 {
				t.Errorf("length %d: %d bytes allocated", tt.length, got)
			}
		})
	}
}

// allocatedBytes measures how many heap bytes f allocates.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestMagic(t *testing.T) {
	valid := build(t, -1, -1, -1, sampleRecords()...)
	for _, m := range []int8{0, 1, 3, -1, 0x42} {
		p := clone(valid)
		p[OffMagic] = byte(m)
		for name, f := range map[string]func([]byte) error{
			"ParseHeader": func(p []byte) error { _, err := ParseHeader(p); return err },
			"Check":       func(p []byte) error { _, err := Check(p); return err },
			"NewIter":     func(p []byte) error { _, err := NewIter(p); return err },
		} {
			err := f(p)
			// The package doc lists "unsupported magic" under ErrInvalid,
			// the code returns ErrCorrupt; accept either, demand one.
			if err == nil || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid)) || !strings.Contains(err.Error(), "magic") {
				t.Errorf("magic %d: %s = %v, want an error about the magic", m, name, err)
			}
		}
	}
}

func TestCounts(t *testing.T) {
	valid := build(t, -1, -1, -1, sampleRecords()[:3]...) // count 3, last delta 2
	tests := []struct {
		name      string
		count     int32
		lastDelta int32
		checkErr  error // nil: Check passes
		iterErr   error // when Check passes: error from iterating (nil: success)
	}{
		{"as built", 3, 2, nil, nil},
		{"count above last delta + 1", 4, 2, ErrInvalid, nil},
		{"count 2^31-1", math.MaxInt32, 2, ErrInvalid, nil},
		{"count 2^31-1, last delta consistent", math.MaxInt32, math.MaxInt32 - 1, ErrInvalid, nil},
		{"negative count", -1, 2, ErrInvalid, nil},
		{"negative last delta", 3, -1, ErrInvalid, nil},
		{"min int last delta", 0, math.MinInt32, ErrInvalid, nil},
		{"gaps (compacted)", 3, 10, nil, nil},
		{"count below records present", 2, 2, nil, ErrCorrupt},
		{"count 0 with records", 0, 2, nil, ErrCorrupt},
		{"last delta one above", 3, 3, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := clone(valid)
			binary.BigEndian.PutUint32(p[OffRecordCount:], uint32(tt.count))
			binary.BigEndian.PutUint32(p[OffLastDelta:], uint32(tt.lastDelta))
			reseal(p)
			_, err := Check(p)
			if tt.checkErr != nil {
				if !errors.Is(err, tt.checkErr) {
					t.Fatalf("Check = %v, want %v", err, tt.checkErr)
				}
				if _, err := NewIter(p); !errors.Is(err, tt.checkErr) {
					t.Fatalf("NewIter = %v, want %v", err, tt.checkErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check = %v, want success", err)
			}
			_, got, err := decodeAll(p)
			if !errors.Is(err, tt.iterErr) || (tt.iterErr != nil && err == nil) {
				t.Fatalf("iterating: %v, want %v", err, tt.iterErr)
			}
			if err == nil && len(got) != int(tt.count) {
				t.Fatalf("got %d records, want %d", len(got), tt.count)
			}
		})
	}
	// One more record counted than present.
	b := build(t, -1, -1, -1, sampleRecords()[:3]...)
	binary.BigEndian.PutUint32(b[OffRecordCount:], 4)
	binary.BigEndian.PutUint32(b[OffLastDelta:], 3)
	reseal(b)
	if _, _, err := decodeAll(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("4 counted, 3 present: %v, want ErrCorrupt", err)
	}
}

func TestCompressedRefused(t *testing.T) {
	valid := build(t, -1, -1, -1, sampleRecords()...)
	for codec := 1; codec <= 7; codec++ {
		p := clone(valid)
		binary.BigEndian.PutUint16(p[OffAttributes:], uint16(codec))
		reseal(p)
		h, err := Check(p)
		if err != nil {
			t.Fatalf("codec %d: Check = %v (compressed batches are valid)", codec, err)
		}
		if h.Compression() != codec {
			t.Errorf("Compression() = %d, want %d", h.Compression(), codec)
		}
		it, err := NewIter(p)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "compress") {
			t.Errorf("codec %d: NewIter = %v, want ErrInvalid saying the records are compressed", codec, err)
		}
		if it.Next() || it.Err() == nil {
			t.Errorf("codec %d: refused iterator still iterates (Err %v)", codec, it.Err())
		}
	}
	// The other attribute bits do not stop iteration.
	for _, attr := range []int16{AttrLogAppendTime, AttrTransactional, AttrControl | AttrTransactional} {
		p := clone(valid)
		binary.BigEndian.PutUint16(p[OffAttributes:], uint16(attr))
		reseal(p)
		if _, got, err := decodeAll(p); err != nil || len(got) != len(sampleRecords()) {
			t.Errorf("attributes %#x: %d records, %v", attr, len(got), err)
		}
	}
}

// TestBadRecords feeds well-sealed batches (valid header and CRC) whose
// record bytes are malformed.
func TestBadRecords(t *testing.T) {
	pad := make([]byte, 16) // keeps count*7 <= record bytes so Check passes
	tests := []struct {
		name    string
		count   int32
		records []byte
	}{
		{"record length -1", 1, cat(vi(-1), pad)},
		{"record length -2", 1, cat(vi(-2), pad)},
		{"record length past the end", 1, cat(vi(100), pad)},
		{"record length 0", 1, cat(vi(0), pad)},
		{"record length varint overflow", 1, cat(bytes.Repeat([]byte{0xff}, 10), pad)},
		{"record length varint unterminated", 1, bytes.Repeat([]byte{0x80}, 8)},
		{"timestamp delta varint overflow", 1, record([]byte{0}, bytes.Repeat([]byte{0xff}, 10), pad)},
		{"offset delta negative", 1, record([]byte{0}, vi(0), vi(-1), vi(-1), vi(-1), vi(0))},
		{"offset delta above int32", 1, record([]byte{0}, vi(0), vi(math.MaxInt32+1), vi(-1), vi(-1), vi(0))},
		{"key length -2", 1, record([]byte{0}, vi(0), vi(0), vi(-2), vi(-1), vi(0))},
		{"key length past the record", 1, record([]byte{0}, vi(0), vi(0), vi(50), vi(-1), vi(0))},
		{"value length past the record", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(50), vi(0))},
		{"header count huge", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1<<40), pad)},
		{"header count 2^31-1", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(math.MaxInt32), pad)},
		{"header count negative", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(-1))},
		{"header count varint overflow", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), bytes.Repeat([]byte{0xff}, 10))},
		{"header count above headers present", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(2), vi(1), []byte("a"), vi(-1))},
		{"null header key", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(-1), vi(-1))},
		{"header key past the record", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(30), vi(-1), pad[:2])},
		{"header value length -2", 1, record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(1), []byte("a"), vi(-2))},
		{"bytes after the headers", 1, record(okRecordBody(0), []byte{0})},
		{"record ends inside the body", 1, cat(record([]byte{0}, vi(0)), pad)},
		{"bytes after the last record", 1, cat(record(okRecordBody(0)), record(okRecordBody(1)))},
		{"second record missing", 2, cat(record(okRecordBody(0)), pad)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rawBatch(tt.count, tt.count, tt.records)
			if _, err := Check(p); err != nil {
				t.Fatalf("test bug: Check = %v; the header should be fine", err)
			}
			_, got, err := decodeAll(p)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decoded %d records, error %v; want ErrCorrupt", len(got), err)
			}
		})
	}
	// The minimal well-formed records used above do decode.
	p := rawBatch(2, 1, cat(record(okRecordBody(0)), record(okRecordBody(1))))
	if _, got, err := decodeAll(p); err != nil || len(got) != 2 || string(got[1].key) != "k" || got[1].value != nil {
		t.Fatalf("minimal records: %+v, %v", got, err)
	}
}

// TestOverlongVarints: Kafka's record-level varints (record length, offset
// delta, key/value/header lengths, header count) are int32 varints of at
// most 5 bytes; Java's ByteUtils.readVarint and franz-go's kbin.Varint
// reject longer encodings. A batch that Sense accepts but Kafka clients
// cannot parse would poison every consumer of the partition.
func TestOverlongVarints(t *testing.T) {
	tests := []struct {
		name string
		rec  []byte
	}{
		{"record length, 6 bytes", cat(overlong(int64(len(okRecordBody(0))), 6), okRecordBody(0))},
		{"offset delta, 6 bytes", record([]byte{0}, vi(0), overlong(0, 6), vi(1), []byte("k"), vi(-1), vi(0))},
		{"key length, 6 bytes", record([]byte{0}, vi(0), vi(0), overlong(1, 6), []byte("k"), vi(-1), vi(0))},
		{"null key, 10 bytes", record([]byte{0}, vi(0), vi(0), overlong(-1, 10), vi(-1), vi(0))},
		{"value length, 7 bytes", record([]byte{0}, vi(0), vi(0), vi(-1), overlong(2, 7), []byte("vv"), vi(0))},
		{"header count, 10 bytes", record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), overlong(0, 10))},
		{"header key length, 6 bytes", record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), overlong(1, 6), []byte("h"), vi(-1))},
		{"header value length, 6 bytes", record([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(1), []byte("h"), overlong(-1, 6))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kr kmsg.Record
			if err := kr.ReadFrom(tt.rec); err == nil {
				t.Fatalf("test premise: franz-go accepted the record %x", tt.rec)
			}
			p := rawBatch(1, 0, tt.rec)
			if _, got, err := decodeAll(p); !errors.Is(err, ErrCorrupt) {
				t.Errorf("decoded %d records, error %v; want ErrCorrupt (Kafka clients reject this record)", len(got), err)
			}
		})
	}
	// Five-byte encodings within int32 are legal and must still decode.
	body := cat([]byte{0}, vi(0), overlong(0, 5), overlong(1, 5), []byte("k"), vi(-1), vi(0))
	p := rawBatch(1, 0, cat(overlong(int64(len(body)), 5), body))
	var kr kmsg.Record
	if err := kr.ReadFrom(p[HeaderSize:]); err != nil {
		t.Fatalf("franz-go rejects 5-byte varints: %v", err)
	}
	if _, got, err := decodeAll(p); err != nil || len(got) != 1 || string(got[0].key) != "k" {
		t.Errorf("5-byte varints: %+v, %v; want one record with key k", got, err)
	}
}

func TestIterReuseAndErrSticky(t *testing.T) {
	a := build(t, -1, -1, -1, sampleRecords()...)
	b := build(t, -1, -1, -1, rec{ts: 3, key: []byte("only")})
	var it Iter
	for round := 0; round < 2; round++ {
		for _, c := range []struct {
			p []byte
			n int
		}{{a, len(sampleRecords())}, {b, 1}} {
			if err := it.Reset(c.p); err != nil {
				t.Fatal(err)
			}
			n := 0
			for it.Next() {
				n++
			}
			if n != c.n || it.Err() != nil {
				t.Fatalf("round %d: %d records, %v; want %d", round, n, it.Err(), c.n)
			}
		}
	}
	bad := clone(a)
	bad[len(bad)-1] ^= 1
	if err := it.Reset(bad); !errors.Is(err, ErrCorrupt) || it.Next() || !errors.Is(it.Err(), ErrCorrupt) {
		t.Fatalf("Reset(corrupt) = %v, Err %v", err, it.Err())
	}
	if err := it.Reset(b); err != nil || !it.Next() || it.Err() != nil {
		t.Fatalf("Reset after error: %v / %v", err, it.Err())
	}
	// A zero Record has no headers.
	var r Record
	hi := r.Headers()
	if _, _, ok := hi.Next(); ok {
		t.Error("zero Record has headers")
	}
}

// TestNoAllocs: checking and iterating allocate nothing; adding records to
// a warmed-up Builder allocates nothing.
func TestNoAllocs(t *testing.T) {
	p := build(t, -1, -1, -1, benchRecords(200, 100)...)
	var it Iter
	if a := testing.AllocsPerRun(50, func() {
		if _, err := Check(p); err != nil {
			panic(err)
		}
	}); a != 0 {
		t.Errorf("Check: %v allocs", a)
	}
	sample := build(t, -1, -1, -1, sampleRecords()...)
	if a := testing.AllocsPerRun(50, func() {
		for _, q := range [][]byte{p, sample} {
			if err := it.Reset(q); err != nil {
				panic(err)
			}
			for it.Next() {
				r := it.Record()
				hi := r.Headers()
				for {
					if _, _, ok := hi.Next(); !ok {
						break
					}
				}
			}
			if it.Err() != nil {
				panic(it.Err())
			}
		}
	}); a != 0 {
		t.Errorf("Iter: %v allocs", a)
	}
	recs := append(benchRecords(200, 100), sampleRecords()...)
	var b Builder
	if a := testing.AllocsPerRun(50, func() {
		b.Reset(-1, -1, -1)
		for _, r := range recs {
			b.Add(r.ts, r.key, r.value, r.hdrs...)
		}
		b.Add(1, nil, []byte("x"), RecordHeader{Key: "inline", Value: []byte("h")})
		b.Finish()
	}); a != 0 {
		t.Errorf("Builder after warm-up: %v allocs", a)
	}
}

// ---------------------------------------------------------------------------
// Interoperability with franz-go's independent Kafka protocol code.

// TestInteropOursToKmsg: a batch from our Builder, parsed by franz-go.
func TestInteropOursToKmsg(t *testing.T) {
	recs := sampleRecords()
	p := build(t, 4321, 3, 1000, recs...)
	SetBaseOffset(p, 1<<33)
	SetLeaderEpoch(p, 12)
	compareWithKmsg(t, p)

	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(p); err != nil {
		t.Fatal(err)
	}
	if kb.FirstOffset != 1<<33 || kb.PartitionLeaderEpoch != 12 || kb.ProducerID != 4321 ||
		kb.ProducerEpoch != 3 || kb.FirstSequence != 1000 || kb.NumRecords != int32(len(recs)) ||
		kb.LastOffsetDelta != int32(len(recs)-1) || kb.FirstTimestamp != recs[0].ts ||
		kb.MaxTimestamp != 1_700_000_000_100 || kb.Magic != 2 || kb.Attributes != 0 {
		t.Errorf("kmsg header %+v", kb)
	}
	rest := kb.Records
	for i, r := range recs {
		kr := nextKmsgRecord(t, &rest)
		if kr.OffsetDelta != int32(i) || kb.FirstTimestamp+kr.TimestampDelta64 != r.ts ||
			!sameBytes(kr.Key, r.key) || !sameBytes(kr.Value, r.value) || len(kr.Headers) != len(r.hdrs) {
			t.Fatalf("record %d: kmsg %+v, added %+v", i, kr, r)
		}
		for j, h := range r.hdrs {
			if kr.Headers[j].Key != h.Key || !sameBytes(kr.Headers[j].Value, h.Value) {
				t.Errorf("record %d header %d: kmsg %q=%q, added %q=%q", i, j, kr.Headers[j].Key, kr.Headers[j].Value, h.Key, h.Value)
			}
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the records", len(rest))
	}
}

// nextKmsgRecord decodes the record at the start of *rest with kmsg.
func nextKmsgRecord(tb testing.TB, rest *[]byte) kmsg.Record {
	tb.Helper()
	l, n := binary.Varint(*rest)
	if n <= 0 || l < 0 || int64(len(*rest)-n) < l {
		tb.Fatalf("bad record length prefix in %x", *rest)
	}
	end := n + int(l)
	var kr kmsg.Record
	if err := kr.ReadFrom((*rest)[:end]); err != nil {
		tb.Fatalf("kmsg.Record.ReadFrom(%x): %v", (*rest)[:end], err)
	}
	if int64(kr.Length) != l {
		tb.Fatalf("kmsg record length %d, want %d", kr.Length, l)
	}
	*rest = (*rest)[end:]
	return kr
}

// compareWithKmsg checks that franz-go decodes p (a batch our Iter fully
// accepts) to the same header and records. It is used by the fuzz targets
// as a differential oracle.
func compareWithKmsg(tb testing.TB, p []byte) {
	tb.Helper()
	h, err := Check(p)
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(p); err != nil {
		tb.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
	}
	if kb.FirstOffset != h.BaseOffset || kb.Length != h.Length || kb.PartitionLeaderEpoch != h.LeaderEpoch ||
		kb.Magic != h.Magic || uint32(kb.CRC) != h.CRC || kb.Attributes != h.Attributes ||
		kb.LastOffsetDelta != h.LastDelta || kb.FirstTimestamp != h.BaseTimestamp ||
		kb.MaxTimestamp != h.MaxTimestamp || kb.ProducerID != h.ProducerID ||
		kb.ProducerEpoch != h.ProducerEpoch || kb.FirstSequence != h.BaseSequence || kb.NumRecords != h.RecordCount {
		tb.Fatalf("headers differ:\nkmsg %+v\nours %+v", kb, h)
	}
	if uint32(kb.CRC) != crc32.Checksum(p[21:], crc32.MakeTable(crc32.Castagnoli)) {
		tb.Fatalf("CRC %08x does not match an independent CRC-32C", uint32(kb.CRC))
	}
	if !bytes.Equal(kb.Records, p[HeaderSize:]) {
		tb.Fatal("kmsg records region differs")
	}
	if h.Compression() != CompressionNone {
		return
	}
	it, err := NewIter(p)
	if err != nil {
		tb.Fatalf("NewIter: %v", err)
	}
	rest := kb.Records
	for i := 0; it.Next(); i++ {
		r := it.Record()
		kr := nextKmsgRecord(tb, &rest)
		if kr.TimestampDelta64 != r.TimestampDelta || kr.OffsetDelta != r.OffsetDelta ||
			!sameBytes(kr.Key, r.Key) || !sameBytes(kr.Value, r.Value) || len(kr.Headers) != r.NumHeaders {
			tb.Fatalf("record %d differs:\nkmsg %+v\nours %+v", i, kr, *r)
		}
		hi := r.Headers()
		for j := range kr.Headers {
			k, v, ok := hi.Next()
			if !ok || string(k) != kr.Headers[j].Key || !sameBytes(v, kr.Headers[j].Value) {
				tb.Fatalf("record %d header %d: ours %q=%q (%v), kmsg %q=%q", i, j, k, v, ok, kr.Headers[j].Key, kr.Headers[j].Value)
			}
		}
	}
	if err := it.Err(); err != nil {
		tb.Fatalf("Iter: %v", err)
	}
	if len(rest) != 0 {
		tb.Fatalf("%d record bytes left over", len(rest))
	}
}

// kmsgBatch encodes a batch entirely with franz-go, computing the CRC-32C
// with hash/crc32 over the bytes from the attributes on.
func kmsgBatch(kb kmsg.RecordBatch, recs []kmsg.Record) []byte {
	var records []byte
	for _, r := range recs {
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1) // a zero length is one byte
		records = r.AppendTo(records)
	}
	if kb.Records == nil {
		kb.Records = records
	}
	kb.Magic = 2
	kb.Length = int32(49 + len(kb.Records))
	kb.CRC = 0
	raw := kb.AppendTo(nil)
	kb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return kb.AppendTo(nil)
}

func kmsgRecords() []kmsg.Record {
	return []kmsg.Record{
		{TimestampDelta64: 0, OffsetDelta: 0, Key: []byte("alpha"), Value: []byte("one")},
		{TimestampDelta64: -250, OffsetDelta: 2, Key: nil, Value: []byte("null key"),
			Headers: []kmsg.Header{{Key: "h1", Value: []byte("v1")}, {Key: "nullv", Value: nil}, {Key: "", Value: []byte{}}}},
		{TimestampDelta64: 1 << 40, OffsetDelta: 5, Key: []byte{}, Value: nil},
		{TimestampDelta64: 7, OffsetDelta: 300, Key: bytes.Repeat([]byte("k"), 200), Value: bytes.Repeat([]byte("v"), 5000)},
	}
}

// TestInteropKmsgToOurs: batches encoded by franz-go pass our Check and Iter.
func TestInteropKmsgToOurs(t *testing.T) {
	recs := kmsgRecords()
	tests := []struct {
		name  string
		attrs int16
		last  int32
		recs  []kmsg.Record
	}{
		{"plain, offset gaps", 0, 300, recs},
		{"last delta beyond the records (compacted)", 0, 1000, recs},
		{"log append time", AttrLogAppendTime, 300, recs},
		{"transactional", AttrTransactional, 300, recs},
		{"control", AttrControl | AttrTransactional, 0, []kmsg.Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}},
		{"one record", 0, 0, recs[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := kmsgBatch(kmsg.RecordBatch{
				FirstOffset: 4242, PartitionLeaderEpoch: 9, Attributes: tt.attrs, LastOffsetDelta: tt.last,
				FirstTimestamp: 1_600_000_000_000, MaxTimestamp: 1_600_000_000_000 + 1<<40,
				ProducerID: 77, ProducerEpoch: 3, FirstSequence: 100, NumRecords: int32(len(tt.recs)),
			}, tt.recs)
			h, got, err := decodeAll(p)
			if err != nil {
				t.Fatalf("our decode of a franz-go batch: %v", err)
			}
			if h.BaseOffset != 4242 || h.LeaderEpoch != 9 || h.Attributes != tt.attrs || h.LastDelta != tt.last ||
				h.ProducerID != 77 || h.ProducerEpoch != 3 || h.BaseSequence != 100 || h.RecordCount != int32(len(tt.recs)) ||
				h.BaseTimestamp != 1_600_000_000_000 || h.MaxTimestamp != 1_600_000_000_000+1<<40 || h.Size() != len(p) {
				t.Errorf("header %+v", h)
			}
			if len(got) != len(tt.recs) {
				t.Fatalf("%d records, want %d", len(got), len(tt.recs))
			}
			for i, kr := range tt.recs {
				g := got[i]
				if g.offsetDelta != kr.OffsetDelta || g.tsDelta != kr.TimestampDelta64 ||
					!sameBytes(g.key, kr.Key) || !sameBytes(g.value, kr.Value) || len(g.hdrs) != len(kr.Headers) {
					t.Fatalf("record %d: ours %+v, kmsg %+v", i, g, kr)
				}
				for j, kh := range kr.Headers {
					if g.hdrs[j].Key != kh.Key || !sameBytes(g.hdrs[j].Value, kh.Value) {
						t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, g.hdrs[j].Key, g.hdrs[j].Value, kh.Key, kh.Value)
					}
				}
			}
			compareWithKmsg(t, p)
		})
	}

	t.Run("gzip compressed", func(t *testing.T) {
		var plain []byte
		for _, r := range recs {
			r.Length = int32(len(r.AppendTo(nil)) - 1)
			plain = r.AppendTo(plain)
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(plain)
		zw.Close()
		p := kmsgBatch(kmsg.RecordBatch{
			Attributes: CompressionGzip, LastOffsetDelta: 300, FirstTimestamp: 1, MaxTimestamp: 2,
			ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: z.Bytes(),
		}, nil)
		h, err := Check(p)
		if err != nil || h.Compression() != CompressionGzip {
			t.Fatalf("Check = %+v, %v; want a valid gzip batch", h, err)
		}
		if _, err := NewIter(p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "compressed") {
			t.Fatalf("NewIter = %v, want ErrInvalid about compression", err)
		}
		compareWithKmsg(t, p)
	})
}

func TestAddRawMatchesAdd(t *testing.T) {
	var a, b Builder
	a.Reset(1, 2, 3)
	b.Reset(1, 2, 3)
	a.Add(100, []byte("k"), []byte("v"), RecordHeader{Key: "sense.j", Value: []byte{1}}, RecordHeader{Key: "x", Value: nil})
	b.AddRaw(100, []byte("k"), []byte("v"), []RawHeader{{Key: []byte("sense.j"), Value: []byte{1}}, {Key: []byte("x")}})
	a.Add(90, nil, nil)
	b.AddRaw(90, nil, nil, nil)
	if !bytes.Equal(a.Finish(), b.Finish()) {
		t.Fatal("AddRaw encodes differently from Add")
	}
}

// AddEncoded with headers given already encoded builds the same bytes as
// AddRaw with them as RawHeaders, with or without further headers, for
// values long enough to need a two-byte length and timestamps before the
// batch's first.
func TestAddEncodedMatchesAddRaw(t *testing.T) {
	h1 := RawHeader{Key: []byte("sense.j"), Value: []byte{0, 0, 0, 0, 0, 0, 0, 5}}
	h2 := RawHeader{Key: []byte("sense.p"), Value: []byte{2}}
	extra := []RawHeader{{Key: []byte("trace"), Value: []byte("abc")}, {Key: []byte("nil")}}
	enc := appendRawHeaders(nil, []RawHeader{h1, h2})
	long := bytes.Repeat([]byte("v"), 300)
	var a, b Builder
	a.Reset(7, 1, 9)
	b.Reset(7, 1, 9)
	for i, r := range []struct {
		ts         int64
		key, value []byte
		extra      []RawHeader
	}{{100, []byte("k"), []byte("v"), nil}, {90, nil, long, extra}, {5000, []byte{}, nil, extra[:1]}} {
		a.AddRaw(r.ts, r.key, r.value, append([]RawHeader{h1, h2}, r.extra...))
		b.AddEncoded(r.ts, r.key, r.value, enc, 2, r.extra)
		if a.Size() != b.Size() {
			t.Fatalf("record %d: size %d with AddRaw, %d with AddEncoded", i, a.Size(), b.Size())
		}
	}
	pa, pb := a.Finish(), b.Finish()
	if !bytes.Equal(pa, pb) {
		t.Fatal("AddEncoded encodes differently from AddRaw")
	}
	compareWithKmsg(t, pb)
}

// CheckFraming trusts the CRC (the batch was built here) but still refuses
// bad framing: a wrong length, a bad magic, inconsistent counts.
func TestCheckFraming(t *testing.T) {
	orig := build(t, 99, 1, 0, sampleRecords()...)
	p := clone(orig)
	if _, err := CheckFraming(p); err != nil {
		t.Fatalf("built batch: %v", err)
	}
	p[OffCRC] ^= 1
	if _, err := CheckFraming(p); err != nil {
		t.Fatalf("CheckFraming computed the CRC: %v", err)
	}
	if _, err := Check(p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check of a bad CRC: %v", err)
	}
	if _, err := CheckFraming(p[:len(p)-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("cut batch: %v", err)
	}
	q := clone(orig)
	q[OffMagic] = 1
	if _, err := CheckFraming(q); err == nil {
		t.Fatal("bad magic accepted")
	}
	q = clone(orig)
	binary.BigEndian.PutUint32(q[OffRecordCount:], 1000)
	if _, err := CheckFraming(q); !errors.Is(err, ErrInvalid) {
		t.Fatalf("record count 1000: %v", err)
	}
}

// TestReadVarint32MatchesReference: the unrolled decoder accepts exactly
// the inputs a decoder built on binary.Varint accepts (at most 5 bytes, a
// value within int32), with the same value and rest, for every 1- and
// 2-byte input and for random and boundary longer ones.
func TestReadVarint32MatchesReference(t *testing.T) {
	ref := func(p []byte) (int64, []byte, bool) {
		v, n := binary.Varint(p)
		if n <= 0 || n > binary.MaxVarintLen32 || v < math.MinInt32 || v > math.MaxInt32 {
			return 0, nil, false
		}
		return v, p[n:], true
	}
	check := func(p []byte) {
		t.Helper()
		wv, wrest, wok := ref(p)
		v, rest, err := readVarint32(p)
		if (err == nil) != wok || v != wv || len(rest) != len(wrest) {
			t.Fatalf("readVarint32(% x) = %d, %d left, %v; reference %d, %d left, ok %v", p, v, len(rest), err, wv, len(wrest), wok)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("readVarint32(% x): error %v is not ErrCorrupt", p, err)
		}
	}
	check(nil)
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	for _, v := range []int64{math.MinInt32, math.MinInt32 - 1, math.MaxInt32, math.MaxInt32 + 1, -1, 1 << 28, -(1 << 28), 1<<34 - 1} {
		p := binary.AppendVarint(nil, v)
		check(p)
		check(append(p, 7))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		p := make([]byte, 1+rng.IntN(7))
		for i := range p {
			p[i] = byte(rng.Uint32())
			if rng.IntN(3) > 0 {
				p[i] |= 0x80
			}
		}
		check(p)
	}
}
