package batch

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecompress feeds arbitrary bytes as the compressed records of a
// well-sealed batch, for each codec: Decompress must not panic, must fail
// with ErrCorrupt or ErrInvalid or return at most the limit, must keep dst's
// prefix, must give the same answer twice (pooled decoders keep no state),
// and its output must be safe to iterate.
func FuzzDecompress(f *testing.F) {
	const limit = 1 << 20
	old := maxDecompressed
	maxDecompressed = limit
	f.Cleanup(func() { maxDecompressed = old })

	plain := build(f, -1, -1, -1, sampleRecords()...)
	h, _ := Check(plain)
	raw := plain[HeaderSize:]
	for _, c := range codecCases {
		f.Add(uint8(c.codec-1), c.enc(f, raw))
	}
	f.Add(uint8(CompressionSnappy-1), xerialEnc(make([]byte, 100<<10), 32<<10))
	f.Add(uint8(CompressionZstd-1), zstdEncoder.EncodeAll(make([]byte, 2<<20), nil))
	f.Add(uint8(CompressionGzip-1), []byte{})

	prefix := []byte("dst-prefix")
	f.Fuzz(func(t *testing.T, c uint8, payload []byte) {
		codec := 1 + int(c%4)
		p := compressed(plain, codec, payload)
		out, err := Decompress(bytes.Clone(prefix), p)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("codec %d: dst prefix lost: %q", codec, out[:min(len(out), len(prefix))])
		}
		out2, err2 := Decompress(nil, p)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("codec %d: differs between runs: %v, then %v", codec, err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("codec %d: error %v wraps neither ErrCorrupt nor ErrInvalid", codec, err)
			}
			return
		}
		got := out[len(prefix):]
		if len(got) > limit {
			t.Fatalf("codec %d: %d bytes out, limit %d", codec, len(got), limit)
		}
		if !bytes.Equal(got, out2) {
			t.Fatalf("codec %d: two runs decompress differently", codec)
		}
		it, err := NewIterRecords(got, h.RecordCount)
		if err == nil {
			for it.Next() {
				r := it.Record()
				hi := r.Headers()
				for _, _, ok := hi.Next(); ok; _, _, ok = hi.Next() {
				}
			}
		}
	})
}
