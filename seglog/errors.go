package seglog

import (
	"errors"
	"fmt"

	"github.com/sensehq/sense/result"
)

var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("seglog: log is closed")
	// ErrFailed means a write or fsync on the log failed earlier. The log
	// refuses appends from then on and never retries the fsync: reopen it
	// (which recovers from what is on disk) once the cause is fixed.
	ErrFailed = errors.New("seglog: log failed after a write or fsync error")
	// ErrOffsetOutOfRange means an offset lies before the log's start or past
	// its end.
	ErrOffsetOutOfRange = errors.New("seglog: offset out of range")
	// ErrOutOfOrderSequence means an idempotent batch's sequence does not
	// follow the producer's last one (a gap), or an unknown producer did not
	// start at 0. Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("seglog: out-of-order sequence number")
	// ErrDuplicateSequence means an idempotent batch repeats sequences older
	// than the window of the producer's last 5 batches, so its original
	// offset is no longer known. Kafka: DUPLICATE_SEQUENCE_NUMBER.
	ErrDuplicateSequence = errors.New("seglog: duplicate sequence number older than the idempotence window")
	// ErrProducerFenced means a batch carries an older producer epoch than
	// one already seen for its producer id. Kafka: INVALID_PRODUCER_EPOCH.
	ErrProducerFenced = errors.New("seglog: producer epoch is older than the current one")
	// ErrUnexpectedOffset means AppendAt was given a batch whose base offset
	// is not the log's next offset.
	ErrUnexpectedOffset = errors.New("seglog: batch base offset is not the log's next offset")
	// ErrNotBatchBoundary means an offset given to Truncate falls inside a
	// batch.
	ErrNotBatchBoundary = errors.New("seglog: offset is not the start of a batch")
	// ErrTruncated means the batch was removed by Truncate before it was
	// acknowledged.
	ErrTruncated = errors.New("seglog: batch was removed by a truncation before it was acknowledged")
	// ErrTooLarge means a batch is larger than a segment may be.
	ErrTooLarge = errors.New("seglog: batch larger than the segment size")
	// ErrCorrupt is matched (with errors.Is) by every *CorruptionError.
	ErrCorrupt = errors.New("seglog: corrupt data")
)

// CorruptionError reports damaged data at a known place: a batch whose CRC or
// framing is wrong before the torn tail, found on read or during recovery.
// Damaged data is never returned and never silently truncated.
type CorruptionError struct {
	Segment  string // path of the segment file
	Position int64  // byte position of the damaged batch in the segment
	Offset   int64  // offset expected at that position, or -1 if unknown
	Err      error  // what was wrong
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("seglog: corrupt batch in %s at byte %d (expected offset %d): %v; the data there cannot be served: restore it from a replica or backup",
		e.Segment, e.Position, e.Offset, e.Err)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying error.
func (e *CorruptionError) Unwrap() error { return e.Err }

// failedError wraps the first write or fsync error of a failed log.
type failedError struct{ cause error }

func (e *failedError) Error() string {
	return fmt.Sprintf("seglog: log refuses appends after a write or fsync error (%v); nothing after the last acknowledged batch is durable; fix the disk and reopen the log", e.cause)
}
func (e *failedError) Is(target error) bool { return target == ErrFailed }
func (e *failedError) Unwrap() error        { return e.cause }

// ProducerCode returns the result code of a producer-sequence error of
// this package (ErrOutOfOrderSequence, ErrDuplicateSequence,
// ErrProducerFenced); ok is false for any other error.
func ProducerCode(err error) (c result.Code, ok bool) {
	switch {
	case errors.Is(err, ErrOutOfOrderSequence):
		return result.OutOfOrderSequence, true
	case errors.Is(err, ErrDuplicateSequence):
		return result.DuplicateSequence, true
	case errors.Is(err, ErrProducerFenced):
		return result.ProducerFenced, true
	}
	return result.Unknown, false
}
