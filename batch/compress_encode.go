package batch

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compress appends records (a batch's records section) compressed with
// codec to dst, in the form Kafka clients read: gzip, xerial-framed
// snappy, the LZ4 frame format (64 KiB blocks) or zstd, each at its
// fastest level. The node uses it when it re-encodes a producer's
// compressed batch (to add routing headers) and keeps the producer's codec.
func Compress(dst []byte, codec int, records []byte) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return append(dst, records...), nil
	case CompressionGzip:
		return gzipAppend(dst, records)
	case CompressionSnappy:
		return snappyAppend(dst, records), nil
	case CompressionLZ4:
		return lz4Append(dst, records)
	case CompressionZstd:
		return zstdEnc().EncodeAll(records, dst), nil
	}
	return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
}

var gzipWriters sync.Pool // *gzip.Writer

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func gzipAppend(dst, records []byte) ([]byte, error) {
	w := &appendWriter{b: dst}
	zw, _ := gzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		var err error
		if zw, err = gzip.NewWriterLevel(w, gzip.BestSpeed); err != nil {
			return dst, err
		}
	} else {
		zw.Reset(w)
	}
	defer gzipWriters.Put(zw)
	if _, err := zw.Write(records); err != nil {
		return dst, err
	}
	if err := zw.Close(); err != nil {
		return dst, err
	}
	return w.b, nil
}

// xerialChunk is the uncompressed size of one xerial chunk, snappy-java's
// default block size.
const xerialChunk = 32 << 10

func snappyAppend(dst, records []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, 1) // version
	dst = binary.BigEndian.AppendUint32(dst, 1) // minimum compatible version
	for len(records) > 0 {
		chunk := records[:min(len(records), xerialChunk)]
		records = records[len(chunk):]
		at := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, 0)
		n := s2.MaxEncodedLen(len(chunk))
		dst = growAmortized(dst, n)
		enc := s2.EncodeSnappy(dst[len(dst):len(dst)+n], chunk)
		binary.BigEndian.PutUint32(dst[at:], uint32(len(enc)))
		dst = dst[:len(dst)+len(enc)]
	}
	return dst
}

var lz4Writers sync.Pool // *lz4.Writer

func lz4Append(dst, records []byte) ([]byte, error) {
	w := &appendWriter{b: dst}
	zw, _ := lz4Writers.Get().(*lz4.Writer)
	if zw == nil {
		zw = lz4.NewWriter(w)
		if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.CompressionLevelOption(lz4.Fast), lz4.ConcurrencyOption(1)); err != nil {
			return dst, err
		}
	} else {
		zw.Reset(w)
	}
	defer func() {
		zw.Reset(nil)
		lz4Writers.Put(zw)
	}()
	if _, err := zw.Write(records); err != nil {
		return dst, err
	}
	if err := zw.Close(); err != nil {
		return dst, err
	}
	return w.b, nil
}

var zstdEnc = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic("batch: zstd encoder: " + err.Error())
	}
	return e
})

// compressInto re-encodes p (a whole uncompressed batch) with codec into
// dst, which it returns, reusing its capacity: the header with the codec's
// attribute bits and a new CRC, then the compressed records.
func compressInto(dst, p []byte, codec int) ([]byte, error) {
	dst = append(dst[:0], p[:HeaderSize]...)
	dst, err := Compress(dst, codec, p[HeaderSize:])
	if err != nil {
		return dst, err
	}
	attrs := binary.BigEndian.Uint16(dst[OffAttributes:])&^AttrCompressionMask | uint16(codec)
	binary.BigEndian.PutUint16(dst[OffAttributes:], attrs)
	binary.BigEndian.PutUint32(dst[OffLength:], uint32(len(dst)-LogOverhead))
	binary.BigEndian.PutUint32(dst[OffCRC:], Checksum(dst[OffAttributes:]))
	return dst, nil
}
