package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/sensehq/sense/result"
)

// Hello is the payload of HELLO, the first frame a client sends:
//
//	[4]byte magic "SNS1"
//	u16     min version
//	u16     max version
//	string  client id
//
// Bytes after the client id are ignored, so that later versions can extend
// HELLO without breaking older servers.
type Hello struct {
	MinVersion uint16
	MaxVersion uint16
	ClientID   string
}

// AppendHello appends a HELLO frame.
func AppendHello(dst []byte, corr uint32, h Hello) []byte {
	dst, start := BeginFrame(dst, TypeHello, 0, corr)
	dst = append(dst, Magic...)
	dst = binary.BigEndian.AppendUint16(dst, h.MinVersion)
	dst = binary.BigEndian.AppendUint16(dst, h.MaxVersion)
	dst = appendString(dst, h.ClientID)
	return EndFrame(dst, start)
}

// DecodeHello decodes a HELLO payload. A payload that does not start with
// the magic gives result.ErrMalformed: the peer does not speak this protocol.
func DecodeHello(p []byte) (Hello, error) {
	var h Hello
	c := newCursor(TypeHello, p)
	if c.need(len(Magic), "magic") && string(p[:len(Magic)]) != Magic {
		return h, malformed(TypeHello, "magic %q, want %q: the peer does not speak the Sense native protocol", p[:len(Magic)], Magic)
	}
	c.off += len(Magic)
	h.MinVersion = c.u16("min version")
	h.MaxVersion = c.u16("max version")
	h.ClientID = c.str("client id")
	return h, c.err // later versions may append fields
}

// NegotiateVersion picks the protocol version for a HELLO: the highest
// version both sides speak. With none in common it returns an error
// matching result.ErrUnsupportedVersion whose message states both ranges; the
// server sends it in an ERROR frame and closes the connection.
func NegotiateVersion(h Hello) (uint16, error) {
	v := min(h.MaxVersion, MaxVersion)
	if h.MinVersion > h.MaxVersion || v < h.MinVersion || v < MinVersion {
		return 0, &result.Error{Code: result.UnsupportedVersion, Message: fmt.Sprintf(
			"client speaks versions %d to %d, this server speaks %d to %d", h.MinVersion, h.MaxVersion, MinVersion, MaxVersion)}
	}
	return v, nil
}

// HelloOK is the payload of HELLO_OK, the server's answer to HELLO:
//
//	u16    chosen version
//	u32    max frame bytes           (largest length field the server accepts)
//	u32    max events per produce
//	u32    max event bytes           (key + value + header keys and values)
//	string server id                 (for example "sense/1.4.0 n1")
type HelloOK struct {
	// AuthRequired is flag bit 0 of the HELLO_OK frame (FlagAuthRequired),
	// not a payload field: the server requires an AUTHENTICATE exchange
	// before any other request. Clients of version 1 ignore flags.
	AuthRequired        bool
	Version             uint16
	MaxFrameBytes       uint32
	MaxEventsPerProduce uint32
	MaxEventBytes       uint32
	ServerID            string
}

// NewHelloOK returns the HELLO_OK for a version and a server's limits
// (zero fields of l mean the defaults).
func NewHelloOK(version uint16, l Limits, serverID string) HelloOK {
	l = l.withDefaults()
	return HelloOK{
		Version:             version,
		MaxFrameBytes:       uint32(l.MaxFrameBytes),
		MaxEventsPerProduce: uint32(l.MaxEventsPerProduce),
		MaxEventBytes:       uint32(l.MaxEventBytes),
		ServerID:            serverID,
	}
}

// Limits returns the limits the server announced. MaxHeaders is the
// version 1 default, which every server accepts.
func (h HelloOK) Limits() Limits {
	return Limits{
		MaxFrameBytes:       int(h.MaxFrameBytes),
		MaxEventsPerProduce: int(h.MaxEventsPerProduce),
		MaxEventBytes:       int(h.MaxEventBytes),
		MaxHeaders:          DefaultMaxHeaders,
	}
}

// AppendHelloOK appends a HELLO_OK frame.
func AppendHelloOK(dst []byte, corr uint32, h HelloOK) []byte {
	var flags uint8
	if h.AuthRequired {
		flags |= FlagAuthRequired
	}
	dst, start := BeginFrame(dst, TypeHelloOK, flags, corr)
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxFrameBytes)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxEventsPerProduce)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxEventBytes)
	dst = appendString(dst, h.ServerID)
	return EndFrame(dst, start)
}

// DecodeHelloOK decodes a HELLO_OK payload.
func DecodeHelloOK(p []byte) (HelloOK, error) {
	var h HelloOK
	c := newCursor(TypeHelloOK, p)
	h.Version = c.u16("version")
	h.MaxFrameBytes = c.u32("max frame bytes")
	h.MaxEventsPerProduce = c.u32("max events per produce")
	h.MaxEventBytes = c.u32("max event bytes")
	h.ServerID = c.str("server id")
	if err := c.end(); err != nil {
		return HelloOK{}, err
	}
	if h.MaxFrameBytes < FrameHeaderSize+64 {
		return HelloOK{}, malformed(TypeHelloOK, "max frame bytes %d is too small to carry any request", h.MaxFrameBytes)
	}
	return h, nil
}

// InitProducer is the payload of INIT_PRODUCER: empty, or a string holding
// a transactional id. Version 1 has no transactions: a server answers a
// non-empty TransactionalID with INVALID_REQUEST.
type InitProducer struct {
	TransactionalID string
}

// AppendInitProducer appends an INIT_PRODUCER frame; its payload is empty
// when TransactionalID is.
func AppendInitProducer(dst []byte, corr uint32, m InitProducer) []byte {
	dst, start := BeginFrame(dst, TypeInitProducer, 0, corr)
	if m.TransactionalID != "" {
		dst = appendString(dst, m.TransactionalID)
	}
	return EndFrame(dst, start)
}

// DecodeInitProducer decodes an INIT_PRODUCER payload.
func DecodeInitProducer(p []byte) (InitProducer, error) {
	if len(p) == 0 {
		return InitProducer{}, nil
	}
	c := newCursor(TypeInitProducer, p)
	m := InitProducer{TransactionalID: c.str("transactional id")}
	return m, c.end()
}

// InitProducerOK is the payload of INIT_PRODUCER_OK:
//
//	i64 producer id
//	i16 producer epoch
type InitProducerOK struct {
	ProducerID int64
	Epoch      int16
}

// AppendInitProducerOK appends an INIT_PRODUCER_OK frame.
func AppendInitProducerOK(dst []byte, corr uint32, m InitProducerOK) []byte {
	dst, start := BeginFrame(dst, TypeInitProducerOK, 0, corr)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Epoch))
	return EndFrame(dst, start)
}

// DecodeInitProducerOK decodes an INIT_PRODUCER_OK payload.
func DecodeInitProducerOK(p []byte) (InitProducerOK, error) {
	c := newCursor(TypeInitProducerOK, p)
	m := InitProducerOK{ProducerID: int64(c.u64("producer id")), Epoch: int16(c.u16("epoch"))}
	return m, c.end()
}
