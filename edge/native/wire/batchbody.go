package wire

import "encoding/binary"

// BatchContentType is the media type of an HTTP produce body in the native
// batch encoding (docs/http.md): the part of a PRODUCE payload that
// follows the base sequence, that is
//
//	u32 event count
//	events, each laid out as in PRODUCE
//
// The pipeline comes from the URL, and there is no producer id: HTTP
// produce is not idempotent. The HTTP edge decodes such a body with
// DecodeProduce after putting the missing fields in front of it
// (PutBatchBodyPrefix); the Go client sends the tail of a PRODUCE frame it
// encoded (ProduceBatchBody).
const BatchContentType = "application/vnd.sense.batch"

// BatchBodyPrefixLen is the length of the PRODUCE payload fields that
// precede the events for pipeline: the pipeline (u32 length and name),
// producer id, epoch and base sequence.
func BatchBodyPrefixLen(pipeline string) int { return 4 + len(pipeline) + 8 + 2 + 4 }

// PutBatchBodyPrefix writes the PRODUCE fields that precede the events
// into p[:BatchBodyPrefixLen(pipeline)]: the pipeline, and -1 for the
// producer id, epoch and base sequence. With a batch body right after it,
// p is a PRODUCE payload that Limits.DecodeProduce reads.
func PutBatchBodyPrefix(p []byte, pipeline string) {
	binary.BigEndian.PutUint32(p, uint32(len(pipeline)))
	off := 4 + copy(p[4:], pipeline)
	for i := off; i < off+14; i++ {
		p[i] = 0xff
	}
}

// ProduceBatchBody returns the batch body inside frame, a whole PRODUCE
// frame for pipeline (as AppendProduce or ProduceEncoder make it): the
// bytes after its header and its payload's prefix. It aliases frame.
func ProduceBatchBody(frame []byte, pipeline string) []byte {
	return frame[FrameHeaderSize+BatchBodyPrefixLen(pipeline):]
}

// AppendBatchBody appends a batch body holding events to dst. Mask,
// priority and timestamp are sent when their Has flag is set; the others
// take the request's defaults.
func AppendBatchBody(dst []byte, events []EventIn) []byte {
	const name = "p"
	frame := AppendProduce(nil, 0, ProduceHeader{Pipeline: name, ProducerID: -1, Epoch: -1, BaseSequence: -1}, events)
	return append(dst, ProduceBatchBody(frame, name)...)
}
