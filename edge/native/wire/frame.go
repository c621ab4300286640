package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/sensehq/sense/result"
)

// Type is a frame's message type. A request type has bit 7 clear; the
// response to it is the same number with bit 7 set (HELLO 0x01, HELLO_OK
// 0x81). Every frame a server sends has bit 7 set.
type Type uint8

// The message types of protocol version 1.
const (
	TypeHello        Type = 0x01 // client: first frame, version negotiation
	TypeInitProducer Type = 0x02 // client: ask for an idempotent producer id
	TypeProduce      Type = 0x03 // client: events for one pipeline
	TypeSubscribe    Type = 0x04 // client: start a pushed, credit-paced read of one partition
	TypeCredit       Type = 0x05 // client: add credit to a subscription; never answered
	TypeUnsubscribe  Type = 0x06 // client: end a subscription
	TypeFetch        Type = 0x07 // client: one-shot read of one partition
	TypeAdmin        Type = 0x08 // client: JSON admin request
	TypePing         Type = 0x09 // client: liveness probe
	TypeAuthenticate Type = 0x0C // client: one step of an authentication exchange

	TypeHelloOK            Type = 0x81 // server: handshake accepted
	TypeInitProducerOK     Type = 0x82 // server: producer id and epoch
	TypeProduceResult      Type = 0x83 // server: one result per event
	TypeSubscribed         Type = 0x84 // server: subscription started
	TypeData               Type = 0x85 // server: record batches pushed on a subscription (paid for by CREDIT)
	TypeUnsubscribed       Type = 0x86 // server: no more DATA will follow on the subscription
	TypeFetchResult        Type = 0x87 // server: batches for a FETCH
	TypeAdminResult        Type = 0x88 // server: JSON admin result
	TypePong               Type = 0x89 // server: answer to PING
	TypeAuthenticateResult Type = 0x8C // server: the next step of an authentication, or its success
	TypeError              Type = 0xFF // server: a request failed, or (correlation id 0) the connection is closing
)

var typeNames = map[Type]string{
	TypeHello:              "HELLO",
	TypeInitProducer:       "INIT_PRODUCER",
	TypeProduce:            "PRODUCE",
	TypeSubscribe:          "SUBSCRIBE",
	TypeCredit:             "CREDIT",
	TypeUnsubscribe:        "UNSUBSCRIBE",
	TypeFetch:              "FETCH",
	TypeAdmin:              "ADMIN",
	TypePing:               "PING",
	TypeAuthenticate:       "AUTHENTICATE",
	TypeHelloOK:            "HELLO_OK",
	TypeInitProducerOK:     "INIT_PRODUCER_OK",
	TypeProduceResult:      "PRODUCE_RESULT",
	TypeSubscribed:         "SUBSCRIBED",
	TypeData:               "DATA",
	TypeUnsubscribed:       "UNSUBSCRIBED",
	TypeFetchResult:        "FETCH_RESULT",
	TypeAdminResult:        "ADMIN_RESULT",
	TypePong:               "PONG",
	TypeAuthenticateResult: "AUTHENTICATE_RESULT",
	TypeError:              "ERROR",
}

// String returns the type's name ("PRODUCE"), or "TYPE_0xNN" for a type
// this version does not define.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE_0x" + strconv.FormatUint(uint64(t)|0x100, 16)[1:]
}

// FromServer reports whether frames of type t travel from server to client
// (bit 7 set).
func (t Type) FromServer() bool { return t&0x80 != 0 }

// Protocol constants.
const (
	// Magic opens every HELLO payload.
	Magic = "SNS1"
	// MinVersion and MaxVersion are the protocol versions this package
	// speaks.
	MinVersion = 1
	MaxVersion = 1

	// LengthSize is the size of the length field that starts a frame.
	LengthSize = 4
	// HeaderLen is the smallest valid value of the length field: the type,
	// flags and correlation id that follow it.
	HeaderLen = 6
	// FrameHeaderSize is the size of a whole frame header: length, type,
	// flags and correlation id. The payload starts at this offset.
	FrameHeaderSize = LengthSize + HeaderLen

	// HandshakeMaxFrame is the largest frame a server accepts before it
	// has answered HELLO (the length field's value). A HELLO is tiny; the
	// small bound keeps an unauthenticated peer from making the server
	// buffer megabytes.
	HandshakeMaxFrame = 64 << 10
)

// Default limits; see Limits.
const (
	DefaultMaxFrameBytes       = 16 << 20
	DefaultMaxEventsPerProduce = 100_000
	DefaultMaxEventBytes       = 1 << 20
	DefaultMaxHeaders          = 1024
	// MaxPipelineLen is the longest pipeline name, as event.MaxPipelineLen.
	MaxPipelineLen = 249
	// MaxErrorMessage is the longest message AppendError writes; longer
	// messages are cut.
	MaxErrorMessage = 4096
)

// Frame is one decoded frame. Payload aliases the Reader's buffer: it is
// valid until the next call to Reader.Next.
type Frame struct {
	Type    Type
	Flags   uint8
	Corr    uint32
	Payload []byte
}

// AppendFrame appends a whole frame with the given payload to dst.
func AppendFrame(dst []byte, typ Type, flags uint8, corr uint32, payload []byte) []byte {
	dst, start := BeginFrame(dst, typ, flags, corr)
	dst = append(dst, payload...)
	return EndFrame(dst, start)
}

// BeginFrame appends a frame header whose length field is left to fill, and
// returns the extended slice and the offset of the frame in it. Append the
// payload, then call EndFrame(dst, start). Every AppendXxx function of this
// package is built this way, so a frame is encoded in one pass without an
// intermediate buffer.
func BeginFrame(dst []byte, typ Type, flags uint8, corr uint32) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(typ), flags)
	return binary.BigEndian.AppendUint32(dst, corr), start
}

// EndFrame writes the length field of the frame that starts at dst[start]
// and ends at the end of dst. It panics when the frame is longer than the
// length field can express (4 GiB), which no valid use reaches.
func EndFrame(dst []byte, start int) []byte {
	n := len(dst) - start - LengthSize
	if n < HeaderLen || uint64(n) > math.MaxUint32 {
		panic("wire: EndFrame: frame of " + strconv.Itoa(n) + " bytes cannot be encoded")
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst
}

// SetCorr rewrites the correlation id of the encoded frame at the start of
// frame, so that a client can resend an encoded request (for instance a
// PRODUCE retried with identical content) under a new correlation id.
func SetCorr(frame []byte, corr uint32) {
	binary.BigEndian.PutUint32(frame[LengthSize+2:], corr)
}

// Limits are the sizes a server accepts, announced to clients in HELLO_OK.
// The zero value means the defaults.
type Limits struct {
	// MaxFrameBytes bounds a frame's length field (everything after it).
	// Default 16 MiB.
	MaxFrameBytes int
	// MaxEventsPerProduce bounds the event count of a PRODUCE. Default
	// 100,000.
	MaxEventsPerProduce int
	// MaxEventBytes bounds an event's key, value, header keys and header
	// values added together. Default 1 MiB.
	MaxEventBytes int
	// MaxHeaders bounds the header count of an event. Default 1024; at most
	// 65535, which the encoding cannot exceed anyway.
	MaxHeaders int
}

// Validate fills zero fields with the defaults and rejects values out of
// range, naming the field.
func (l *Limits) Validate() error {
	check := func(name string, v *int, def, lo, hi int) error {
		if *v == 0 {
			*v = def
		}
		if *v < lo || *v > hi {
			return fmt.Errorf("wire: Limits.%s = %d; want %d to %d (0 for the default %d)", name, *v, lo, hi, def)
		}
		return nil
	}
	return errors.Join(
		check("MaxFrameBytes", &l.MaxFrameBytes, DefaultMaxFrameBytes, 1024, 1<<30),
		check("MaxEventsPerProduce", &l.MaxEventsPerProduce, DefaultMaxEventsPerProduce, 1, math.MaxInt32),
		check("MaxEventBytes", &l.MaxEventBytes, DefaultMaxEventBytes, 1, 1<<30),
		check("MaxHeaders", &l.MaxHeaders, DefaultMaxHeaders, 0, math.MaxUint16),
	)
}

// withDefaults returns l with zero fields set to the defaults, without
// checking ranges.
func (l Limits) withDefaults() Limits {
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if l.MaxEventsPerProduce <= 0 {
		l.MaxEventsPerProduce = DefaultMaxEventsPerProduce
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	return l
}

// readerBufferSize is the size of the bufio.Reader NewReader puts in front
// of a plain io.Reader.
const readerBufferSize = 64 << 10

// growStep is the first allocation for a payload larger than the Reader's
// buffer; the buffer then doubles as bytes arrive, so a peer that claims a
// large frame and sends little makes the Reader allocate little.
const growStep = 64 << 10

// Reader reads frames from a byte stream. It checks each length field
// against its maximum before it reads or allocates anything for the
// payload, and reuses one buffer for every payload, so that reading a
// stream of frames allocates nothing once the buffer has grown to the
// largest frame seen.
//
// After Next returns an error the stream's framing can no longer be
// trusted: every later call returns the same error, and the connection
// should be closed (after an ERROR frame, for a server).
//
// A Reader is not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader
	ownBR bool // br was made by the Reader, so Reset may reuse it
	buf   []byte
	max   int
	hdr   [FrameHeaderSize]byte
	err   error
}

// NewReader returns a Reader of r whose maximum frame is
// DefaultMaxFrameBytes. If r is a *bufio.Reader it is used as is; otherwise
// it is wrapped in one.
func NewReader(r io.Reader) *Reader {
	rd := &Reader{max: DefaultMaxFrameBytes}
	rd.Reset(r)
	return rd
}

// Reset makes the Reader read from r, keeping its maximum and its buffer,
// and clears any error.
func (r *Reader) Reset(rd io.Reader) {
	switch br, ok := rd.(*bufio.Reader); {
	case ok:
		r.br, r.ownBR = br, false
	case r.ownBR:
		r.br.Reset(rd)
	default:
		r.br, r.ownBR = bufio.NewReaderSize(rd, readerBufferSize), true
	}
	r.err = nil
}

// SetMaxFrame sets the largest length field accepted (the bytes after the
// length field: type, flags, correlation id and payload). n <= 0 restores
// DefaultMaxFrameBytes; n below HeaderLen is raised to it. A server
// typically starts with HandshakeMaxFrame and raises the limit once HELLO
// is answered.
func (r *Reader) SetMaxFrame(n int) {
	switch {
	case n <= 0:
		n = DefaultMaxFrameBytes
	case n < HeaderLen:
		n = HeaderLen
	}
	r.max = n
}

// MaxFrame returns the largest length field the Reader accepts.
func (r *Reader) MaxFrame() int { return r.max }

// Release drops the payload buffer if it is larger than 64 KiB, so that an
// idle connection does not hold on to the memory of its largest frame. The
// Frame last returned becomes invalid.
func (r *Reader) Release() {
	if cap(r.buf) > growStep {
		r.buf = nil
	}
}

// Swap hands the caller the buffer that holds the payload of the frame
// Next returned last (its bytes stay valid, now the caller's), and gives
// the Reader buf, whose capacity it reuses, to read the next frames into.
// A server that queues a request keeps its bytes this way without copying
// them; it hands the buffer of an answered request back with a later Swap.
func (r *Reader) Swap(buf []byte) []byte {
	old := r.buf
	r.buf = buf[:0]
	return old
}

// Next reads the next frame. Its payload is valid until the next call (or,
// after Swap, for as long as the caller keeps the buffer).
//
// At a clean end of stream (no byte of a new frame) it returns io.EOF; a
// stream that ends inside a frame gives an error wrapping
// io.ErrUnexpectedEOF. A length field below HeaderLen gives an error
// matching result.ErrMalformed (the Frame is zero: its header cannot be trusted).
// A length field above the maximum gives an error matching
// result.ErrRequestTooLarge together with the frame's type, flags and correlation
// id (Payload nil), so that a server can name the request it refuses. Other
// errors come from the underlying reader.
func (r *Reader) Next() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	f, err := r.next()
	if err != nil {
		r.err = err
	}
	return f, err
}

func (r *Reader) next() (Frame, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:LengthSize]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("wire: stream ends inside a length field: %w", err)
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:])
	if n < HeaderLen {
		return Frame{}, &result.Error{Code: result.Malformed, Message: "frame length " + strconv.FormatUint(uint64(n), 10) + " is below the 6-byte header"}
	}
	if _, err := io.ReadFull(r.br, r.hdr[LengthSize:]); err != nil {
		return Frame{}, unexpected(err, "frame header")
	}
	f := Frame{
		Type:  Type(r.hdr[4]),
		Flags: r.hdr[5],
		Corr:  binary.BigEndian.Uint32(r.hdr[6:]),
	}
	if uint64(n) > uint64(r.max) {
		return f, &result.Error{Code: result.RequestTooLarge, Message: fmt.Sprintf("%s frame of %d bytes exceeds the limit of %d", f.Type, n, r.max)}
	}
	p, err := r.readPayload(int(n) - HeaderLen)
	if err != nil {
		return Frame{}, unexpected(err, f.Type.String()+" payload")
	}
	f.Payload = p
	return f, nil
}

// readPayload reads n bytes into the reused buffer. When the buffer is too
// small it grows with the bytes actually received, never to n up front.
func (r *Reader) readPayload(n int) ([]byte, error) {
	if n <= cap(r.buf) {
		b := r.buf[:n]
		_, err := io.ReadFull(r.br, b)
		return b, err
	}
	b := r.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			c := min(max(2*cap(b), growStep), n)
			nb := make([]byte, len(b), c)
			copy(nb, b)
			b = nb
			r.buf = nb
		}
		m, err := io.ReadFull(r.br, b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, err
		}
	}
	r.buf = b
	return b, nil
}

func unexpected(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("wire: stream ends inside a %s: %w", what, io.ErrUnexpectedEOF)
	}
	return err
}
