package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressed bounds the decompressed records section of one batch.
// Decompress refuses (ErrInvalid) a batch whose records would exceed it,
// and finds out while decompressing: output grows with what the codec
// actually produces, and a size that a codec's header claims is allocated
// only once checked against this bound and against what the compressed
// bytes could possibly produce.
const MaxDecompressed = 64 << 20

// maxDecompressed is the bound in force; tests lower it.
var maxDecompressed = MaxDecompressed

// xerialMagic starts the framing that Kafka's Java client (snappy-java's
// SnappyOutputStream), librdkafka and franz-go give snappy: the magic, a
// big-endian int32 version and an int32 minimum compatible version, then
// chunks of a big-endian uint32 length and a raw snappy block.
var xerialMagic = []byte("\x82SNAPPY\x00")

const xerialHeaderSize = 16

// snappyMaxRatio bounds how much a raw snappy block can expand: its
// densest element, a copy with a 2-byte offset, spends 3 bytes on 64 output
// bytes. A block whose preamble claims more than this is refused before its
// claimed length is allocated.
const snappyMaxRatio = 22

// zstdMaxRatio bounds a zstd frame's expansion: every block costs at least
// a 3-byte header and one byte and yields at most 128 KiB.
const zstdMaxRatio = 128 << 10 / 4

func codecName(c int) string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec %d", c)
}

// errTooLarge is returned by the readers when the bound is passed; the
// caller turns it into ErrInvalid with the codec's name.
var errTooLarge = errors.New("records decompress to more than the limit")

// Decompress checks the single batch p (see Check) and returns its records
// section decompressed, appended to dst. For an uncompressed batch it
// returns p[HeaderSize:] itself, without copying, and dst is unused. Iterate
// the result with NewIterRecords and the header's record count.
//
// A records section that would decompress to more than MaxDecompressed
// bytes is refused with an error wrapping ErrInvalid; data the codec cannot
// decode yields an error wrapping ErrCorrupt. On error it returns dst as
// given (its spare capacity may have been written).
func Decompress(dst []byte, p []byte) ([]byte, error) {
	h, err := Check(p)
	if err != nil {
		return dst, err
	}
	src := p[HeaderSize:]
	limit := maxDecompressed
	c := h.Compression()
	var out []byte
	switch c {
	case CompressionNone:
		return src, nil
	case CompressionGzip:
		out, err = gunzip(dst, src, limit)
	case CompressionSnappy:
		out, err = unsnappy(dst, src, limit)
	case CompressionLZ4:
		out, err = unlz4(dst, src, limit)
	case CompressionZstd:
		out, err = unzstd(dst, src, limit)
	default:
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return dst, fmt.Errorf("%w: %s: %v of %d bytes", ErrInvalid, codecName(c), err, limit)
		}
		return dst, fmt.Errorf("%w: %s: %v", ErrCorrupt, codecName(c), err)
	}
	return out, nil
}

// readLimited appends everything r yields to dst, failing with errTooLarge
// once more than limit bytes come. It grows dst by doubling, never past
// limit+1 new bytes, so what it allocates stays within twice what the
// stream actually produced (plus a first guess from the compressed size).
func readLimited(dst []byte, r io.Reader, limit, hint int) ([]byte, error) {
	start := len(dst)
	end := start + limit + 1 // one byte more than allowed detects excess
	if want := min(hint, limit+1); cap(dst)-len(dst) < want {
		dst = grow(dst, want)
	}
	for empty := 0; ; {
		if len(dst) == cap(dst) {
			if len(dst) >= end {
				return dst, errTooLarge
			}
			dst = grow(dst, min(max(len(dst)-start, 4096), end-len(dst)))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), end)])
		dst = dst[:len(dst)+n]
		if n > 0 {
			empty = 0
		} else if empty++; empty > 100 {
			return dst, io.ErrNoProgress
		}
		if len(dst)-start > limit {
			return dst, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// grow returns dst with room for at least n more bytes, allocating exactly.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	d := make([]byte, len(dst), len(dst)+n)
	copy(d, dst)
	return d
}

var gzipReaders sync.Pool // *gzip.Reader

func gunzip(dst, src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(br)
	} else {
		err = zr.Reset(br)
	}
	if err != nil {
		return dst, err
	}
	defer gzipReaders.Put(zr)
	return readLimited(dst, zr, limit, 4*len(src))
}

var lz4Readers sync.Pool // *lz4.Reader

func unlz4(dst, src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	zr, _ := lz4Readers.Get().(*lz4.Reader)
	if zr == nil {
		zr = lz4.NewReader(br)
	} else {
		zr.Reset(br)
	}
	defer func() {
		zr.Reset(nil)
		lz4Readers.Put(zr)
	}()
	return readLimited(dst, zr, limit, 4*len(src))
}

// unsnappy decodes Kafka's xerial-framed snappy, or a single raw snappy
// block when the magic is absent.
func unsnappy(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < xerialHeaderSize || !bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		return snappyBlock(dst, src, limit, len(dst))
	}
	start := len(dst)
	for p := src[xerialHeaderSize:]; len(p) > 0; {
		if len(p) < 4 {
			return dst, fmt.Errorf("xerial chunk length: %d bytes left", len(p))
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(n) > uint64(len(p)) {
			return dst, fmt.Errorf("xerial chunk of %d bytes with %d left", n, len(p))
		}
		var err error
		if dst, err = snappyBlock(dst, p[:n], limit, start); err != nil {
			return dst, err
		}
		p = p[n:]
	}
	return dst, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst; start
// is where the batch's output began, for the limit.
func snappyBlock(dst, block []byte, limit, start int) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return dst, err
	}
	if n > limit-(len(dst)-start) {
		return dst, errTooLarge
	}
	if n > snappyMaxRatio*len(block) {
		return dst, fmt.Errorf("block of %d bytes claims %d decoded bytes", len(block), n)
	}
	if n == 0 {
		return dst, nil
	}
	dst = growAmortized(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], block)
	if err != nil {
		return dst, err
	}
	if len(out) != n {
		return dst, fmt.Errorf("block decoded to %d bytes, claimed %d", len(out), n)
	}
	return dst[:len(dst)+n], nil
}

// growAmortized is grow for repeated appends: it at least doubles.
func growAmortized(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	return grow(dst, max(n, len(dst)))
}

// zstdDecoder is the shared DecodeAll decoder for one limit (only tests
// change the limit).
type zstdDecoder struct {
	limit int
	d     *zstd.Decoder
}

var (
	zstdCur atomic.Pointer[zstdDecoder]
	zstdMu  sync.Mutex
)

func zstdFor(limit int) (*zstd.Decoder, error) {
	if z := zstdCur.Load(); z != nil && z.limit == limit {
		return z.d, nil
	}
	zstdMu.Lock()
	defer zstdMu.Unlock()
	if z := zstdCur.Load(); z != nil && z.limit == limit {
		return z.d, nil
	}
	// The decoder also refuses frames whose window is larger than the
	// limit (a window never needs to be larger than the content).
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, err
	}
	// A replaced decoder may still be in use; it is left to the collector.
	zstdCur.Store(&zstdDecoder{limit: limit, d: d})
	return d, nil
}

// zstdSlack is room past the limit for the block that crosses it (a block
// is at most 128 KiB, and the decoder over-allocates a little), so that
// crossing the limit never makes the decoder reallocate the output.
const zstdSlack = 128<<10 + 1<<10

// unzstd decodes zstd frames with the shared DecodeAll decoder, which is
// set to decode no further than the capacity it is given: it starts from
// a guess (eight times the compressed size, or the declared content size
// once that is checked) and doubles up to the limit, so what it allocates
// follows what the frames actually produce, not what they claim. A
// declared size past the limit is refused before anything is allocated,
// and so is one that the compressed bytes could not possibly produce.
func unzstd(dst, src []byte, limit int) ([]byte, error) {
	want := min(max(8*len(src), 64<<10), limit)
	var fh zstd.Header
	if err := fh.Decode(src); err == nil && fh.HasFCS {
		if fh.FrameContentSize > uint64(limit) {
			return dst, errTooLarge
		}
		if fh.FrameContentSize > uint64(zstdMaxRatio)*uint64(len(src)) {
			return dst, fmt.Errorf("frame of %d bytes declares %d decoded bytes", len(src), fh.FrameContentSize)
		}
		want = max(want, int(fh.FrameContentSize))
	}
	d, err := zstdFor(limit)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	for {
		out, err := d.DecodeAll(src, grow(dst, want+zstdSlack))
		full := zstdFull(err)
		if full && want < limit {
			want = min(2*want, limit)
			continue
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return dst, fmt.Errorf("%w (frame window larger than the limit)", errTooLarge)
		}
		if full || len(out)-start > limit {
			return dst, errTooLarge
		}
		if err != nil {
			return dst, err
		}
		return out, nil
	}
}

// zstdFull reports whether DecodeAll stopped because the output reached the
// capacity it was given: at the frame level it says ErrDecoderSizeExceeded,
// inside a block's sequences only a message (the package has no error
// value for it).
func zstdFull(err error) bool {
	return err != nil && (errors.Is(err, zstd.ErrDecoderSizeExceeded) ||
		strings.Contains(err.Error(), "output bigger than max block size"))
}

// NewIterRecords returns an iterator over count records laid out in records,
// a batch's records section as Decompress returns it.
func NewIterRecords(records []byte, count int32) (*Iter, error) {
	it := new(Iter)
	return it, it.ResetRecords(records, count)
}

// ResetRecords points the iterator at count records laid out in records (a
// decompressed records section), reusing it. It allocates nothing.
func (it *Iter) ResetRecords(records []byte, count int32) error {
	*it = Iter{}
	if count < 0 || int64(count)*7 > int64(len(records)) {
		it.err = fmt.Errorf("%w: record count %d cannot fit in %d bytes", ErrInvalid, count, len(records))
		return it.err
	}
	it.p = records
	it.left = count
	return nil
}
