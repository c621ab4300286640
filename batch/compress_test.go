package batch

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// codecCase is one way producers compress a records section.
type codecCase struct {
	name  string
	codec int
	enc   func(tb testing.TB, raw []byte) []byte
}

func gzipEnc(tb testing.TB, raw []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// xerialEnc frames raw as snappy-java's SnappyOutputStream does (version 1,
// compatible 1, chunks of at most chunk input bytes).
func xerialEnc(raw []byte, chunk int) []byte {
	out := []byte("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
	for len(raw) > 0 {
		n := min(chunk, len(raw))
		blk := snappy.Encode(nil, raw[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
		out = append(out, blk...)
		raw = raw[n:]
	}
	return out
}

func lz4Enc(tb testing.TB, raw []byte) []byte {
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

var zstdEncoder, _ = zstd.NewWriter(nil)

// zstdStreamEnc writes a frame without a declared content size, with a
// 1 MiB window (zstd-jni's at its default level is 2 MiB or less).
func zstdStreamEnc(tb testing.TB, raw []byte) []byte {
	return zstdStreamWindow(tb, raw, 1<<20)
}

func zstdStreamWindow(tb testing.TB, raw []byte, window int) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(window))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

var codecCases = []codecCase{
	{"gzip", CompressionGzip, gzipEnc},
	{"snappy-xerial", CompressionSnappy, func(_ testing.TB, raw []byte) []byte { return xerialEnc(raw, 32<<10) }},
	{"snappy-xerial-tiny-chunks", CompressionSnappy, func(_ testing.TB, raw []byte) []byte { return xerialEnc(raw, 7) }},
	{"snappy-plain", CompressionSnappy, func(_ testing.TB, raw []byte) []byte { return snappy.Encode(nil, raw) }},
	{"snappy-plain-s2", CompressionSnappy, func(_ testing.TB, raw []byte) []byte { return s2.EncodeSnappy(nil, raw) }},
	{"lz4", CompressionLZ4, lz4Enc},
	{"zstd", CompressionZstd, func(_ testing.TB, raw []byte) []byte { return zstdEncoder.EncodeAll(raw, nil) }},
	{"zstd-stream", CompressionZstd, zstdStreamEnc},
}

// compressed returns plain (an uncompressed batch) with its records
// section replaced by payload and the codec set, sealed with a correct CRC.
func compressed(plain []byte, codec int, payload []byte) []byte {
	p := append(clone(plain[:HeaderSize]), payload...)
	attrs := binary.BigEndian.Uint16(p[OffAttributes:])&^AttrCompressionMask | uint16(codec)
	binary.BigEndian.PutUint16(p[OffAttributes:], attrs)
	return reseal(p)
}

// iterRecords reads records like decodeAll, for a decompressed section.
func iterRecords(h Header, records []byte) ([]gotRec, error) {
	it, err := NewIterRecords(records, h.RecordCount)
	if err != nil {
		return nil, err
	}
	var out []gotRec
	for it.Next() {
		r := it.Record()
		g := gotRec{ts: h.BaseTimestamp + r.TimestampDelta, tsDelta: r.TimestampDelta, offsetDelta: r.OffsetDelta, key: clone(r.Key), value: clone(r.Value)}
		hi := r.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			g.hdrs = append(g.hdrs, RecordHeader{Key: string(k), Value: clone(v)})
		}
		out = append(out, g)
	}
	return out, it.Err()
}

func bigRecords() []rec {
	var rs []rec
	for i := range 2000 {
		rs = append(rs, rec{ts: int64(1_700_000_000_000 + i), key: fmt.Appendf(nil, "key-%d", i),
			value: bytes.Repeat([]byte{byte(i)}, i%300), hdrs: []RecordHeader{{Key: "sense.jurisdiction", Value: []byte("MA")}}})
	}
	return rs
}

func TestDecompressCodecs(t *testing.T) {
	for _, recs := range [][]rec{sampleRecords(), bigRecords()} {
		plain := build(t, 7, 1, 0, recs...)
		raw := plain[HeaderSize:]
		_, want, err := decodeAll(plain)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range codecCases {
			p := compressed(plain, c.codec, c.enc(t, raw))
			h, err := Check(p)
			if err != nil || h.Compression() != c.codec {
				t.Fatalf("%s: Check = %v, codec %d", c.name, err, h.Compression())
			}
			got, err := Decompress(nil, p)
			if err != nil {
				t.Fatalf("%s (%d records): Decompress: %v", c.name, len(recs), err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("%s: decompressed %d bytes differ from the %d raw ones", c.name, len(got), len(raw))
			}
			// Appending into dst keeps its prefix.
			prefix := []byte("prefix")
			got2, err := Decompress(clone(prefix), p)
			if err != nil || !bytes.HasPrefix(got2, prefix) || !bytes.Equal(got2[len(prefix):], raw) {
				t.Fatalf("%s: Decompress into a prefix: %v", c.name, err)
			}
			recsGot, err := iterRecords(h, got)
			if err != nil {
				t.Fatalf("%s: iterate: %v", c.name, err)
			}
			if fmt.Sprint(recsGot) != fmt.Sprint(want) {
				t.Errorf("%s: records differ:\n got %v\nwant %v", c.name, recsGot, want)
			}
		}
	}
}

func TestDecompressNoneAliases(t *testing.T) {
	p := build(t, -1, -1, -1, sampleRecords()...)
	dst := make([]byte, 0, 1<<10)
	got, err := Decompress(dst, p)
	if err != nil || len(got) != len(p)-HeaderSize || &got[0] != &p[HeaderSize] {
		t.Fatalf("Decompress of an uncompressed batch: %d bytes, %v; want p[HeaderSize:] itself", len(got), err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Decompress(nil, p) }); n != 0 {
		t.Errorf("Decompress(none) allocates %v times", n)
	}
}

func TestDecompressRefusesBadBatch(t *testing.T) {
	plain := build(t, -1, -1, -1, sampleRecords()...)
	p := compressed(plain, CompressionGzip, gzipEnc(t, plain[HeaderSize:]))
	p[len(p)-1] ^= 1 // CRC no longer matches
	if _, err := Decompress(nil, p); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad CRC: %v, want ErrCorrupt", err)
	}
	for codec := 5; codec <= 7; codec++ {
		p := compressed(plain, codec, plain[HeaderSize:])
		if _, err := Decompress(nil, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("codec %d: %v, want ErrInvalid", codec, err)
		}
	}
}

func TestDecompressCorrupt(t *testing.T) {
	plain := build(t, -1, -1, -1, bigRecords()...)
	raw := plain[HeaderSize:]
	for _, c := range codecCases {
		enc := c.enc(t, raw)
		bad := map[string][]byte{
			"truncated": enc[:len(enc)/2],
			"garbage":   []byte("this is not compressed data at all, not at all"),
		}
		if c.name == "snappy-plain" || c.name == "snappy-plain-s2" {
			// Garbage may be a valid snappy block; a bad copy offset is not.
			bad["garbage"] = []byte{10, 0x05, 0xff} // len 10, copy-1 with offset 255 into nothing
		}
		for what, payload := range bad {
			_, err := Decompress([]byte("dst"), compressed(plain, c.codec, payload))
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) {
				t.Errorf("%s %s: %v, want ErrCorrupt", c.name, what, err)
			}
		}
	}
	// Corrupt xerial framing.
	x := xerialEnc(raw, 32<<10)
	for what, payload := range map[string][]byte{
		"chunk length past the end": append(clone(x[:16]), 0, 0, 1, 0, 1, 2, 3),
		"short chunk length":        append(clone(x), 0, 0),
		"empty chunk":               append(clone(x[:16]), 0, 0, 0, 0),
	} {
		if _, err := Decompress(nil, compressed(plain, CompressionSnappy, payload)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("xerial %s: %v, want ErrCorrupt", what, err)
		}
	}
}

// withLimit lowers the decompression bound for one test.
func withLimit(t *testing.T, n int) {
	old := maxDecompressed
	maxDecompressed = n
	t.Cleanup(func() { maxDecompressed = old })
}

func TestDecompressBombs(t *testing.T) {
	const limit = 1 << 20
	withLimit(t, limit)
	plain := build(t, -1, -1, -1, sampleRecords()...)
	zeros := make([]byte, 64<<20)

	// A snappy block whose preamble claims 1 GiB.
	hugeClaim := binary.AppendUvarint(nil, 1<<30)
	hugeClaim = append(hugeClaim, 0x00, 'x') // one literal byte
	// A zstd frame declaring 512 KiB (within the limit) in a few bytes.
	tiny := zstdEncoder.EncodeAll(make([]byte, 512<<10), nil)

	bombs := []struct {
		name    string
		codec   int
		payload []byte
		want    error
	}{
		{"gzip 64 MiB zeros", CompressionGzip, gzipEnc(t, zeros), ErrInvalid},
		{"lz4 64 MiB zeros", CompressionLZ4, lz4Enc(t, zeros), ErrInvalid},
		{"zstd 64 MiB zeros, size declared", CompressionZstd, zstdEncoder.EncodeAll(zeros, nil), ErrInvalid},
		{"zstd 64 MiB zeros, streamed", CompressionZstd, zstdStreamEnc(t, zeros), ErrInvalid},
		{"xerial 64 MiB zeros", CompressionSnappy, xerialEnc(zeros, 32<<10), ErrInvalid},
		{"snappy block claiming 1 GiB", CompressionSnappy, hugeClaim, ErrInvalid},
		{"xerial chunk claiming 1 GiB", CompressionSnappy, append(xerialEnc(nil, 1), append(binary.BigEndian.AppendUint32(nil, uint32(len(hugeClaim))), hugeClaim...)...), ErrInvalid},
		{"zstd frame declaring more than its bytes can hold", CompressionZstd, tiny[:min(len(tiny), 12)], ErrCorrupt},
	}
	for _, b := range bombs {
		p := compressed(plain, b.codec, b.payload)
		_, err := Decompress(nil, p) // warm up pools and the shared decoder
		alloc := allocatedBytes(func() { _, err = Decompress(nil, p) })
		if !errors.Is(err, b.want) {
			t.Errorf("%s: %v, want %v", b.name, err, b.want)
			continue
		}
		if b.want == ErrInvalid && (!strings.Contains(err.Error(), codecName(b.codec)) || !strings.Contains(err.Error(), fmt.Sprint(limit))) {
			t.Errorf("%s: %q does not name the codec and the limit", b.name, err)
		}
		// The lz4 reader keeps block buffers of up to 4 MiB in a pool of
		// its own; zstd retries with doubling capacities, each with 129 KiB
		// of slack; the others stay within twice the limit.
		bound := uint64(2*limit + 256<<10)
		if b.codec == CompressionZstd {
			bound = 3 * limit
		}
		if b.codec == CompressionLZ4 {
			bound += 8 << 20
		}
		if alloc > bound {
			t.Errorf("%s: allocated %d bytes, limit %d", b.name, alloc, limit)
		}
		t.Logf("%s: %d compressed bytes, %d bytes allocated, %v", b.name, len(b.payload), alloc, err)
	}

	// Exactly the limit is fine; one byte more is not.
	for _, c := range codecCases {
		for _, n := range []int{limit, limit + 1} {
			_, err := Decompress(nil, compressed(plain, c.codec, c.enc(t, zeros[:n])))
			if (n == limit) != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("%s, %d bytes: %v", c.name, n, err)
			}
		}
	}
}

func TestIterRecords(t *testing.T) {
	plain := build(t, -1, -1, -1, sampleRecords()...)
	h, _ := Check(plain)
	raw := plain[HeaderSize:]
	var it Iter
	n := testing.AllocsPerRun(100, func() {
		if err := it.ResetRecords(raw, h.RecordCount); err != nil {
			t.Fatal(err)
		}
		for it.Next() {
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
	})
	if n != 0 {
		t.Errorf("ResetRecords and Next allocate %v times", n)
	}
	for _, count := range []int32{-1, int32(len(raw)/7 + 1)} {
		if _, err := NewIterRecords(raw, count); !errors.Is(err, ErrInvalid) {
			t.Errorf("count %d: %v, want ErrInvalid", count, err)
		}
	}
	// Fewer records than the bytes hold: the rest is corrupt.
	it2, err := NewIterRecords(raw, h.RecordCount-1)
	if err != nil {
		t.Fatal(err)
	}
	for it2.Next() {
	}
	if !errors.Is(it2.Err(), ErrCorrupt) {
		t.Errorf("short count: %v, want ErrCorrupt", it2.Err())
	}
}

// TestXerialInterop decodes a stream framed byte for byte as snappy-java
// writes it (magic, version 1, compatible 1), with the chunk boundaries in
// the middle of records, as Java's 32 KiB blocks put them.
func TestXerialInterop(t *testing.T) {
	plain := build(t, -1, -1, -1, bigRecords()...)
	raw := plain[HeaderSize:]
	x := xerialEnc(raw, 32<<10)
	if !bytes.HasPrefix(x, []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}) {
		t.Fatalf("header % x", x[:16])
	}
	got, err := Decompress(nil, compressed(plain, CompressionSnappy, x))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("xerial: %v", err)
	}
	// The stdlib gzip writer (another producer's encoder) decodes too.
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	_, _ = io.Copy(w, bytes.NewReader(raw))
	_ = w.Close()
	if got, err := Decompress(nil, compressed(plain, CompressionGzip, buf.Bytes())); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("gzip: %v", err)
	}
}

// TestDecompressConcurrent shares the pooled readers and the zstd decoder
// between goroutines (run with -race).
func TestDecompressConcurrent(t *testing.T) {
	plain := build(t, -1, -1, -1, bigRecords()...)
	raw := plain[HeaderSize:]
	var ps [][]byte
	for _, c := range codecCases {
		ps = append(ps, compressed(plain, c.codec, c.enc(t, raw)))
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			var dst []byte
			for i := range 10 {
				p := ps[(g+i)%len(ps)]
				out, err := Decompress(dst[:0], p)
				if err == nil && !bytes.Equal(out, raw) {
					err = errors.New("output differs")
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, batch %d: %w", g, (g+i)%len(ps), err)
					return
				}
				dst = out
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
