package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// Internals the external tests (package kafka_test) look at.

// VersionRange returns the versions served for an API key.
func VersionRange(key int16) (lo, hi int16, ok bool) {
	v, ok := versions(supported, key)
	return v.min, v.max, ok
}

// SupportedKeys lists the API keys served.
func SupportedKeys() []int16 {
	keys := make([]int16, len(supported))
	for i, v := range supported {
		keys[i] = v.key
	}
	return keys
}

// ParsedRequest is what ParseRequest found in a frame.
type ParsedRequest struct {
	Key, Version int16
	Unsupported  bool
	Req          kmsg.Request
}

// ParseRequest parses a request frame (without its size) as the server
// does.
func ParseRequest(frame []byte) (ParsedRequest, error) {
	h, req, err := parseRequest(frame, supported, nil)
	return ParsedRequest{Key: h.key, Version: h.version, Unsupported: h.unsupported, Req: req}, err
}

// HasOwnDecoder reports whether an API key's bodies are decoded by our own
// code rather than kmsg's.
func HasOwnDecoder(key int16) bool { return ownDecoders[key] != nil }

// DecodeOwn decodes a body (after the request header) with the server's
// own decoder for key, as parseRequest does.
func DecodeOwn(key, version int16, body []byte) (kmsg.Request, error) {
	return ownDecoders[key](version, body)
}

// VersionRangeTV1 returns the versions served for an API key at
// transaction version 1.
func VersionRangeTV1(key int16) (lo, hi int16, ok bool) {
	v, ok := versions(versionTable(1), key)
	return v.min, v.max, ok
}

// ProduceDecoder decodes Produce bodies as a connection's reader does,
// into one request it reuses.
type ProduceDecoder struct {
	req   kmsg.ProduceRequest
	topic string
}

// Decode decodes body into the decoder's request (valid until the next
// Decode).
func (d *ProduceDecoder) Decode(version int16, body []byte) (kmsg.Request, error) {
	return decodeProduceInto(version, body, &d.req, &d.topic)
}

// AppendProduceResponse appends a Produce answer frame as the server
// writes it.
func AppendProduceResponse(dst []byte, corr int32, resp *kmsg.ProduceResponse) []byte {
	return appendProduceResponse(dst, header{key: 0, version: resp.Version, corr: corr, flexible: resp.Version >= 9}, resp)
}

// AppendResponseKmsg appends an answer frame encoded by kmsg.
func AppendResponseKmsg(dst []byte, corr int32, resp kmsg.Response) []byte {
	return appendResponse(dst, header{key: resp.Key(), version: resp.GetVersion(), corr: corr, flexible: resp.IsFlexible()}, resp)
}
