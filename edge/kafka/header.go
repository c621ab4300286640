package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/node"
)

// minRequestBytes is the smallest request: api key, api version and
// correlation id.
const minRequestBytes = 8

// versionRange is what this server implements of one API key.
type versionRange struct {
	key      int16
	min, max int16
}

// supported lists every API this server implements, with the versions
// (see each API's file). ApiVersions advertises exactly this.
//
// Flexible versions (KIP-482, tagged fields) are not served yet, although
// the request header parser handles them: kmsg v1.15.0 decodes a body's
// tagged-field section with a loop that runs as many times as the count
// the client sent, even past the end of the input, so a 20-byte request
// can keep a core busy for hours (found by FuzzRequest, seed
// testdata/fuzz/FuzzRequest/cc38b871a837fd22). Serving them needs a body
// decoder that checks the count against the bytes left (our own, or a
// fixed kmsg). Every client negotiates down to these versions.
var supported = []versionRange{
	{0, produceMin, produceMax},
	{1, fetchMin, fetchMax},
	{2, listOffsetsMin, listOffsetsMax},
	{3, metadataMin, metadataMax},
	{18, apiVersionsMin, apiVersionsMax},
	{22, initProducerIDMin, initProducerIDMax},
}

func versions(key int16) (versionRange, bool) {
	for _, v := range supported {
		if v.key == key {
			return v, true
		}
	}
	return versionRange{}, false
}

// header is a request header (v1, or v2 with tagged fields for flexible
// versions; header v0 is only ControlledShutdown v0, which is not served).
type header struct {
	key      int16
	version  int16
	corr     int32
	clientID string
	flexible bool
	// unsupported is set for an ApiVersions request of a version this
	// server does not implement: it is answered with UNSUPPORTED_VERSION.
	unsupported bool
}

var errShort = errors.New("request header truncated")

// parseRequest decodes one request frame (without its size): the header
// and, for a supported API key and version, the body. Every length is
// checked against the bytes of the frame before anything is allocated
// (kmsg's readers do the same for the body).
func parseRequest(frame []byte) (header, kmsg.Request, error) {
	var h header
	if len(frame) < minRequestBytes {
		return h, nil, errShort
	}
	h.key = int16(binary.BigEndian.Uint16(frame))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.corr = int32(binary.BigEndian.Uint32(frame[4:]))
	b := frame[8:]
	vr, ok := versions(h.key)
	if !ok {
		return h, nil, fmt.Errorf("unsupported API key %d", h.key)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	h.flexible = req.IsFlexible()
	// Client id: a nullable int16-length string.
	if len(b) < 2 {
		return h, nil, errShort
	}
	n := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > 0 {
		if len(b) < int(n) {
			return h, nil, errShort
		}
		h.clientID = string(b[:n])
		b = b[n:]
	} else if n < -1 {
		return h, nil, fmt.Errorf("client id length %d", n)
	}
	if h.flexible {
		var err error
		if b, err = skipTags(b); err != nil {
			return h, nil, err
		}
	}
	if h.version < vr.min || h.version > vr.max {
		if h.key == 18 {
			h.unsupported = true
			return h, req, nil
		}
		return h, nil, fmt.Errorf("unsupported version %d of API key %d (this server implements %d to %d)", h.version, h.key, vr.min, vr.max)
	}
	if err := req.ReadFrom(b); err != nil {
		return h, nil, fmt.Errorf("API key %d version %d: %w", h.key, h.version, err)
	}
	return h, req, nil
}

// skipTags skips a tagged-field section, checking every length.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errShort
	}
	b = b[n:]
	if count > uint64(len(b)) {
		return nil, errShort
	}
	for range count {
		_, n := binary.Uvarint(b) // tag
		if n <= 0 {
			return nil, errShort
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errShort
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// appendResponse appends a framed response: size, correlation id, tagged
// fields for flexible versions (not for ApiVersions, whose response header
// is always v0), body.
func appendResponse(dst []byte, h header, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.corr))
	if h.flexible && h.key != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// errorCode maps a node code to a Kafka error code.
func errorCode(c node.Code) int16 {
	switch c {
	case node.OK:
		return 0
	case node.PolicyViolation, node.NoCompliantHub, node.InvalidMask, node.InvalidPriority:
		return kerr.PolicyViolation.Code
	case node.CorruptBatch:
		return kerr.CorruptMessage.Code
	case node.OutOfOrderSequence:
		return kerr.OutOfOrderSequenceNumber.Code
	case node.DuplicateSequence:
		return kerr.DuplicateSequenceNumber.Code
	case node.ProducerFenced:
		return kerr.InvalidProducerEpoch.Code
	case node.UnknownPartition, node.UnknownPipeline:
		return kerr.UnknownTopicOrPartition.Code
	case node.InvalidPipelineName:
		return kerr.InvalidTopicException.Code
	case node.StorageError:
		return kerr.KafkaStorageError.Code
	case node.NotReady:
		return kerr.RequestTimedOut.Code
	case node.Overloaded:
		return kerr.NotEnoughReplicas.Code
	case node.EventTooLarge:
		return kerr.MessageTooLarge.Code
	case node.OffsetOutOfRange:
		return kerr.OffsetOutOfRange.Code
	}
	return kerr.UnknownServerError.Code
}
