package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of the wire format. Decoders wrap them with the value they read,
// so check them with errors.Is.
var (
	// ErrBadHello: a connection's first bytes are not a hello of this
	// version (wrong magic or version), or the hello names another cluster,
	// an unknown sender or another target.
	ErrBadHello = errors.New("cluster: bad hello")
	// ErrFrameSize: a frame's length field is 0 or above the maximum.
	ErrFrameSize = errors.New("cluster: bad frame length")
)

const (
	// helloMagic opens every connection.
	helloMagic = "SNSC"
	// helloVersion is the version of the hello and frame formats.
	helloVersion = 1
	// maxNameLen bounds the cluster name and node ids: each is sent after
	// a one-byte length.
	maxNameLen = 255
	// frameHeaderLen is the length field and the kind byte.
	frameHeaderLen = 5
)

// hello is the first message on a connection, from the dialer.
type hello struct {
	Cluster string // the dialer's cluster name
	From    string // the dialer's node id
	To      string // the id of the node the dialer meant to reach
}

// helloLen is the encoded length of h.
func helloLen(h hello) int {
	return len(helloMagic) + 1 + 3 + len(h.Cluster) + len(h.From) + len(h.To)
}

// appendHello appends h to dst. Each string must be at most maxNameLen
// bytes (Config.Validate makes sure of it).
func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, helloMagic...)
	dst = append(dst, helloVersion)
	for _, s := range [...]string{h.Cluster, h.From, h.To} {
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// readHello reads one hello from r: exactly its bytes, no more. It checks
// the magic and version; the names are checked by the caller, who knows
// what to expect. A stream cut short gives io.EOF (nothing read) or
// io.ErrUnexpectedEOF.
func readHello(r io.Reader) (hello, error) {
	var head [len(helloMagic) + 1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return hello{}, err
	}
	if string(head[:4]) != helloMagic {
		return hello{}, fmt.Errorf("%w: magic %q, want %q", ErrBadHello, head[:4], helloMagic)
	}
	if head[4] != helloVersion {
		return hello{}, fmt.Errorf("%w: version %d, want %d", ErrBadHello, head[4], helloVersion)
	}
	var buf [1 + maxNameLen]byte
	var names [3]string
	for i := range names {
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return hello{}, unexpected(err)
		}
		s := buf[1 : 1+int(buf[0])]
		if _, err := io.ReadFull(r, s); err != nil {
			return hello{}, unexpected(err)
		}
		names[i] = string(s)
	}
	return hello{Cluster: names[0], From: names[1], To: names[2]}, nil
}

// unexpected turns io.EOF inside a message into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// putFrameHeader writes the header of a frame of kind with a payload of n
// bytes into b[:frameHeaderLen].
func putFrameHeader(b []byte, kind byte, n int) {
	binary.BigEndian.PutUint32(b, uint32(1+n))
	b[4] = kind
}

// appendFrame appends one whole frame to dst.
func appendFrame(dst []byte, kind byte, payload []byte) []byte {
	var h [frameHeaderLen]byte
	putFrameHeader(h[:], kind, len(payload))
	return append(append(dst, h[:]...), payload...)
}

// Read-buffer sizes of a frameReader. The buffer starts small, doubles up
// to keepReadBuf as frames need, and beyond that is sized to the frame;
// one larger than keepReadBuf is dropped once shrinkAfter frames in a row
// fit in keepReadBuf, so a rare huge frame does not pin its memory, while
// a stream of large appends between small heartbeats and answers keeps
// its buffer instead of allocating one per large frame.
const (
	minReadBuf  = 4 << 10
	keepReadBuf = 64 << 10
	shrinkAfter = 64
)

// frameReader reads frames from r (after the hello), reusing one buffer
// that never grows beyond max bytes.
type frameReader struct {
	r   io.Reader
	max int
	buf []byte
	hdr [4]byte
	// small counts the frames in a row that fit in keepReadBuf while the
	// buffer is larger.
	small int
}

func newFrameReader(r io.Reader, maxFrame int) *frameReader {
	return &frameReader{r: r, max: maxFrame}
}

// next reads one frame. The payload aliases the reader's buffer and is
// valid until the next call. At a frame boundary the end of the stream is
// io.EOF; inside a frame it is io.ErrUnexpectedEOF. A length field of 0
// or above the maximum is an error wrapping ErrFrameSize, returned before
// anything is allocated or read for the frame.
func (fr *frameReader) next() (kind byte, payload []byte, err error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	n64 := uint64(binary.BigEndian.Uint32(fr.hdr[:]))
	if n64 == 0 || n64 > uint64(fr.max) {
		return 0, nil, fmt.Errorf("%w: %d, want 1 to %d", ErrFrameSize, n64, fr.max)
	}
	n := int(n64)
	fr.grow(n)
	b := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return 0, nil, unexpected(err)
	}
	return b[0], b[1:], nil
}

// grow makes the buffer hold n bytes (n ≤ max), or shrinks an oversized
// one back when n is small.
func (fr *frameReader) grow(n int) {
	c := cap(fr.buf)
	switch {
	case n > c:
		size := n
		if n <= keepReadBuf {
			size = min(max(n, 2*c, minReadBuf), keepReadBuf)
		}
		fr.buf = make([]byte, min(size, fr.max))
		fr.small = 0
	case c > keepReadBuf && n <= keepReadBuf:
		if fr.small++; fr.small >= shrinkAfter {
			fr.buf = make([]byte, min(keepReadBuf, fr.max))
			fr.small = 0
		}
	case c > keepReadBuf:
		fr.small = 0
	}
}
