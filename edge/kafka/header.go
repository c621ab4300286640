package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// (see each API's file), when transaction version 2 (KIP-890 part 2) is
// in effect. ApiVersions advertises exactly this; a server that runs
// transaction version 1 advertises and serves tv1Versions instead
// (versionTable).
//
// Flexible versions (KIP-482, tagged fields) are not served yet, although
// the request header parser handles them: kmsg v1.15.0 decodes a body's
// tagged-field section with a loop that runs as many times as the count
// the client sent, even past the end of the input, so a 20-byte request
// can keep a core busy for hours (found by FuzzRequest, seed
// testdata/fuzz/FuzzRequest/cc38b871a837fd22). Serving them needs a body
// decoder that checks the count against the bytes left (our own, or a
// fixed kmsg). Every client negotiates down to these versions. The
// exceptions are the APIs with no version before KIP-482 (DescribeCluster,
// the SCRAM credential APIs, DescribeTransactions, ListTransactions), the
// flexible versions served of OffsetFetch (6, 7) and TxnOffsetCommit
// (3), for KIP-447, InitProducerId 2 to 5 (KIP-360 and KIP-588),
// AddPartitionsToTxn 3, AddOffsetsToTxn 3 and 4, and those of KIP-890
// part 2: ApiVersions 3 (its
// finalized features name the transaction version), Produce 9 to 12,
// EndTxn 3 to 5 and TxnOffsetCommit 4 and 5. Their bodies are decoded by
// our own code (ownDecoders).
var supported = []versionRange{
	{0, produceAdvertisedMin, produceMax},
	{1, fetchMin, fetchMax},
	{2, listOffsetsMin, listOffsetsMax},
	{3, metadataMin, metadataMax},
	{8, offsetCommitMin, offsetCommitMax},
	{9, offsetFetchMin, offsetFetchMax},
	{10, findCoordinatorMin, findCoordinatorMax},
	{11, joinGroupMin, joinGroupMax},
	{12, heartbeatMin, heartbeatMax},
	{13, leaveGroupMin, leaveGroupMax},
	{14, syncGroupMin, syncGroupMax},
	{15, describeGroupsMin, describeGroupsMax},
	{16, listGroupsMin, listGroupsMax},
	{17, saslHandshakeMin, saslHandshakeMax},
	{18, apiVersionsMin, apiVersionsMax},
	{19, createTopicsMin, createTopicsMax},
	{20, deleteTopicsMin, deleteTopicsMax},
	{21, deleteRecordsMin, deleteRecordsMax},
	{22, initProducerIDMin, initProducerIDMax},
	{24, addPartitionsToTxnMin, addPartitionsToTxnMax},
	{25, addOffsetsToTxnMin, addOffsetsToTxnMax},
	{26, endTxnMin, endTxnMax},
	{28, txnOffsetCommitMin, txnOffsetCommitMax},
	{29, describeACLsMin, describeACLsMax},
	{30, createACLsMin, createACLsMax},
	{31, deleteACLsMin, deleteACLsMax},
	{32, describeConfigsMin, describeConfigsMax},
	{33, alterConfigsMin, alterConfigsMax},
	{36, saslAuthenticateMin, saslAuthenticateMax},
	{37, createPartitionsMin, createPartitionsMax},
	{42, deleteGroupsMin, deleteGroupsMax},
	{44, incrementalAlterConfigsMin, incrementalAlterConfigsMax},
	{47, offsetDeleteMin, offsetDeleteMax},
	{50, describeUserSCRAMCredentialsMin, describeUserSCRAMCredentialsMax},
	{51, alterUserSCRAMCredentialsMin, alterUserSCRAMCredentialsMax},
	{60, describeClusterMin, describeClusterMax},
	{65, describeTransactionsMin, describeTransactionsMax},
	{66, listTransactionsMin, listTransactionsMax},
}

// tv1Versions are the versions that differ when transaction version 1 is
// in effect (Options.TransactionVersion): the newest before KIP-890 part
// 2, as Sense served them before it. A client then adds partitions and
// groups with AddPartitionsToTxn and AddOffsetsToTxn, and the epoch stays
// for the producer's life.
var tv1Versions = []versionRange{
	{0, produceAdvertisedMin, produceMaxTV1},
	{18, apiVersionsMin, apiVersionsMax},
	{26, endTxnMin, endTxnMaxTV1},
	{28, txnOffsetCommitMin, txnOffsetCommitMaxTV1},
}

// versionTable returns the versions a server serves at transaction
// version tv (1 or 2).
func versionTable(tv int) []versionRange {
	if tv >= 2 {
		return supported
	}
	out := slices.Clone(supported)
	for i, v := range out {
		for _, w := range tv1Versions {
			if w.key == v.key {
				out[i] = w
			}
		}
	}
	return out
}

// ownDecoders decode the bodies of the APIs served with flexible versions,
// so that kmsg's body decoder, with its unchecked tagged-field count (see
// supported), never sees a client's flexible bytes. Each takes the version
// and the body (after the request header's tagged fields), checks every
// length against the bytes left, and rejects trailing bytes. The map is
// keyed by API key only: a decoder of an API with versions before and
// after KIP-482 (OffsetFetch, TxnOffsetCommit) decodes the flexible ones
// itself and hands the others to kmsg (kmsgBody), whose reader is safe on
// bodies without tagged fields. An API none of whose served versions is
// flexible is decoded by kmsg.
var ownDecoders = map[int16]func(version int16, body []byte) (kmsg.Request, error){
	0:  decodeProduce,
	9:  decodeOffsetFetch,
	18: decodeApiVersions,
	22: decodeInitProducerID,
	24: decodeAddPartitionsToTxn,
	25: decodeAddOffsetsToTxn,
	26: decodeEndTxn,
	28: decodeTxnOffsetCommit,
	50: decodeDescribeUserSCRAMCredentials,
	51: decodeAlterUserSCRAMCredentials,
	60: decodeDescribeCluster,
	65: decodeDescribeTransactions,
	66: decodeListTransactions,
}

// kmsgBody decodes a body of a version before KIP-482 with kmsg, for an
// own decoder of an API that has both kinds of versions.
func kmsgBody(req kmsg.Request, version int16, body []byte) (kmsg.Request, error) {
	req.SetVersion(version)
	if req.IsFlexible() {
		return nil, fmt.Errorf("version %d is flexible: kmsg must not decode it", version)
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, err
	}
	return req, nil
}

func versions(table []versionRange, key int16) (versionRange, bool) {
	for _, v := range table {
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
	// unsupported is set for a request of an API key or version this
	// server does not implement: it is answered with UNSUPPORTED_VERSION
	// (ApiVersions by apiVersions, anything else by unsupportedResponse).
	unsupported bool
}

var errShort = errors.New("request header truncated")

// parseState is what a connection's reader keeps from one request to the
// next, so that parsing the usual request allocates nothing: the last
// client id and topic name read (a client sends the same ones), and a
// Produce to decode a Produce into.
type parseState struct {
	clientID string
	topic    string
	produce  *kmsg.ProduceRequest // nil: a new one
}

// parseRequest decodes one request frame (without its size): the header
// and, for an API key and version of table, the body. Every length is
// checked against the bytes of the frame before anything is allocated
// (kmsg's readers do the same for the body). st, which may be nil, is the
// connection's parse state.
func parseRequest(frame []byte, table []versionRange, st *parseState) (header, kmsg.Request, error) {
	var h header
	if len(frame) < minRequestBytes {
		return h, nil, errShort
	}
	h.key = int16(binary.BigEndian.Uint16(frame))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.corr = int32(binary.BigEndian.Uint32(frame[4:]))
	b := frame[8:]
	vr, known := versions(table, h.key)
	h.flexible = isFlexible(h.key, h.version)
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
		switch {
		case st == nil:
			h.clientID = string(b[:n])
		case string(b[:n]) == st.clientID:
			h.clientID = st.clientID
		default:
			h.clientID = string(b[:n])
			st.clientID = h.clientID
		}
		b = b[n:]
	} else if n < -1 {
		return h, nil, fmt.Errorf("client id length %d", n)
	}
	if !known || h.version < vr.min || h.version > vr.max {
		// Answered with UNSUPPORTED_VERSION (see unsupportedResponse);
		// the body is not decoded.
		h.unsupported = true
		if h.key == 18 {
			req := kmsg.NewPtrApiVersionsRequest()
			req.SetVersion(h.version)
			return h, req, nil
		}
		return h, nil, nil
	}
	if h.flexible {
		var err error
		if b, err = skipTags(b); err != nil {
			return h, nil, err
		}
	}
	if h.key == 0 && st != nil && st.produce != nil {
		r, err := decodeProduceInto(h.version, b, st.produce, &st.topic)
		if err != nil {
			return h, nil, fmt.Errorf("API key %d version %d: %w", h.key, h.version, err)
		}
		return h, r, nil
	}
	if decode := ownDecoders[h.key]; decode != nil {
		r, err := decode(h.version, b)
		if err != nil {
			return h, nil, fmt.Errorf("API key %d version %d: %w", h.key, h.version, err)
		}
		return h, r, nil
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, nil, fmt.Errorf("API key %d: no decoder", h.key)
	}
	req.SetVersion(h.version)
	if err := req.ReadFrom(b); err != nil {
		return h, nil, fmt.Errorf("API key %d version %d: %w", h.key, h.version, err)
	}
	return h, req, nil
}

// flexibleFrom is, per API key kmsg knows, its first flexible version (-1
// when none is), so that a request's header is parsed without allocating
// a request of its kind.
var flexibleFrom = func() map[int16]int16 {
	m := map[int16]int16{}
	for key := int16(0); key < 1000; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		m[key] = -1
		// Past MaxVersion too: a client may send a newer version.
		for v := int16(0); v <= 127; v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				m[key] = v
				break
			}
		}
	}
	return m
}()

// isFlexible reports whether version of API key is flexible (KIP-482), as
// kmsg says; false for a key kmsg does not know.
func isFlexible(key, version int16) bool {
	from, ok := flexibleFrom[key]
	return ok && from >= 0 && version >= from
}

// uvarint reads Kafka's unsigned varint: at most 5 bytes, a uint32 (Go's
// binary.Uvarint reads 10, a uint64). n <= 0 when b holds none.
func uvarint(b []byte) (v uint64, n int) {
	v, n = binary.Uvarint(b)
	if n > 5 || n < 0 || v > math.MaxUint32 {
		return 0, -1
	}
	return v, n
}

// skipTags skips a tagged-field section, checking every length.
func skipTags(b []byte) ([]byte, error) {
	count, n := uvarint(b)
	if n <= 0 {
		return nil, errShort
	}
	b = b[n:]
	if count > uint64(len(b)) {
		return nil, errShort
	}
	for range count {
		_, n := uvarint(b) // tag
		if n <= 0 {
			return nil, errShort
		}
		b = b[n:]
		size, n := uvarint(b)
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

// unsupportedResponse appends the answer to a request of an API key or
// version this server does not implement (other than ApiVersions), so the
// client gets an error rather than a dropped connection. For an API kmsg
// knows, it is that API's response in the requested version (capped at the
// newest kmsg knows), empty but for UNSUPPORTED_VERSION in the top-level
// error code when the response has one; clients that negotiated with
// ApiVersions never send such requests. For an unknown key it is the
// correlation id and the error code alone, the shape of an ApiVersions v0
// error.
func appendUnsupported(dst []byte, h header) []byte {
	resp := kmsg.ResponseForKey(h.key)
	if resp == nil {
		dst = binary.BigEndian.AppendUint32(dst, 6)
		dst = binary.BigEndian.AppendUint32(dst, uint32(h.corr))
		return binary.BigEndian.AppendUint16(dst, uint16(kerr.UnsupportedVersion.Code))
	}
	resp.SetVersion(min(h.version, resp.MaxVersion()))
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 && f.CanSet() {
		f.SetInt(int64(kerr.UnsupportedVersion.Code))
	}
	return appendResponse(dst, h, resp)
}
