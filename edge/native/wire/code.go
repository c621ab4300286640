package wire

import (
	"errors"
	"strconv"
)

// Code is an error code carried by ERROR frames, by each entry of a
// PRODUCE_RESULT and by FETCH_RESULT. Codes are stable: a code's number never
// changes meaning, and new codes are only added.
type Code uint16

// The error codes. See docs/protocol.md for when each is sent.
const (
	CodeNone                Code = 0  // success
	CodeUnknown             Code = 1  // unexpected server error
	CodeMalformed           Code = 2  // bytes that do not follow the protocol; the connection is closed
	CodeUnsupportedVersion  Code = 3  // no protocol version in common
	CodeUnknownPipeline     Code = 4  // no pipeline of that name
	CodeNoCompliantHub      Code = 5  // no buffer eligible for the event's mask, priority and pipeline (retriable)
	CodeOverloaded          Code = 6  // the router sheds load (retriable)
	CodeInvalidMask         Code = 7  // mask 0, or bits outside the registry
	CodeEventTooLarge       Code = 8  // key+value+headers over the limit, or too many headers
	CodeOutOfOrderSequence  Code = 9  // base sequence is not the next expected one
	CodeDuplicateSequence   Code = 10 // the sequence was stored, but too long ago to return its offsets
	CodeProducerFenced      Code = 11 // the producer epoch is stale
	CodeOffsetOutOfRange    Code = 12 // offset outside [log start, high watermark]
	CodeNotReady            Code = 13 // the server or the partition is starting or moving (retriable)
	CodeStorageError        Code = 14 // the buffer could not make the write durable (retriable)
	CodeInvalidPriority     Code = 15 // priority byte other than 0, 1, 2
	CodeUnknownPartition    Code = 16 // no such partition in the pipeline
	CodeRequestTooLarge     Code = 17 // frame or event count over the limits
	CodeInvalidPipelineName Code = 18 // pipeline name breaks the naming rules
	CodeNotHandshaken       Code = 19 // a request before HELLO_OK
	CodeTimeout             Code = 20 // the request's work did not finish in time (retriable)
	CodeInvalidRequest      Code = 21 // well-formed, but not acceptable in this state
	CodeNotLeader           Code = 22 // this node does not lead the partition (retriable)
	CodeBatchTooLarge       Code = 23 // a stored batch does not fit in the largest frame
)

// numCodes is one more than the largest defined code.
const numCodes = 24

var codeNames = [numCodes]string{
	"NONE",
	"UNKNOWN",
	"MALFORMED",
	"UNSUPPORTED_VERSION",
	"UNKNOWN_PIPELINE",
	"NO_COMPLIANT_HUB",
	"OVERLOADED",
	"INVALID_MASK",
	"EVENT_TOO_LARGE",
	"OUT_OF_ORDER_SEQUENCE",
	"DUPLICATE_SEQUENCE",
	"PRODUCER_FENCED",
	"OFFSET_OUT_OF_RANGE",
	"NOT_READY",
	"STORAGE_ERROR",
	"INVALID_PRIORITY",
	"UNKNOWN_PARTITION",
	"REQUEST_TOO_LARGE",
	"INVALID_PIPELINE_NAME",
	"NOT_HANDSHAKEN",
	"TIMEOUT",
	"INVALID_REQUEST",
	"NOT_LEADER",
	"BATCH_TOO_LARGE",
}

// String returns the code's UPPER_SNAKE name, or "CODE_N" for a code this
// version does not know.
func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// Retriable reports whether the same request may succeed if sent again
// later, unchanged: NO_COMPLIANT_HUB, OVERLOADED, NOT_READY, STORAGE_ERROR,
// TIMEOUT and NOT_LEADER. Codes this version does not know are not
// retriable.
func (c Code) Retriable() bool {
	switch c {
	case CodeNoCompliantHub, CodeOverloaded, CodeNotReady, CodeStorageError, CodeTimeout, CodeNotLeader:
		return true
	}
	return false
}

// Err returns the sentinel *Error for c (for example ErrMalformed), or nil
// for CodeNone. For a code this version does not know it returns a new
// *Error carrying it.
func (c Code) Err() error {
	if c == CodeNone {
		return nil
	}
	if c < numCodes {
		return sentinels[c]
	}
	return &Error{Code: c}
}

// Error is an error with a protocol code: decoded from an ERROR frame, or
// returned by this package's decoders (mostly MALFORMED). errors.Is matches
// an *Error against any *Error of the same code, so
//
//	errors.Is(err, wire.ErrNoCompliantHub)
//
// holds for every error carrying NO_COMPLIANT_HUB, whatever its message.
type Error struct {
	Code    Code
	Message string
}

// Error returns "wire: CODE: message", or "wire: CODE" without a message.
func (e *Error) Error() string {
	if e.Message == "" {
		return "wire: " + e.Code.String()
	}
	return "wire: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Retriable reports whether e.Code is retriable.
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// CodeOf returns the code of the first *Error in err's chain: CodeNone for a
// nil err, CodeUnknown for an error that carries no code. A server uses it
// to turn an error into an ERROR frame.
func CodeOf(err error) Code {
	if err == nil {
		return CodeNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnknown
}

// Sentinel errors, one per code, for errors.Is. Do not modify them.
var (
	ErrUnknown             = &Error{Code: CodeUnknown}
	ErrMalformed           = &Error{Code: CodeMalformed}
	ErrUnsupportedVersion  = &Error{Code: CodeUnsupportedVersion}
	ErrUnknownPipeline     = &Error{Code: CodeUnknownPipeline}
	ErrNoCompliantHub      = &Error{Code: CodeNoCompliantHub}
	ErrOverloaded          = &Error{Code: CodeOverloaded}
	ErrInvalidMask         = &Error{Code: CodeInvalidMask}
	ErrEventTooLarge       = &Error{Code: CodeEventTooLarge}
	ErrOutOfOrderSequence  = &Error{Code: CodeOutOfOrderSequence}
	ErrDuplicateSequence   = &Error{Code: CodeDuplicateSequence}
	ErrProducerFenced      = &Error{Code: CodeProducerFenced}
	ErrOffsetOutOfRange    = &Error{Code: CodeOffsetOutOfRange}
	ErrNotReady            = &Error{Code: CodeNotReady}
	ErrStorageError        = &Error{Code: CodeStorageError}
	ErrInvalidPriority     = &Error{Code: CodeInvalidPriority}
	ErrUnknownPartition    = &Error{Code: CodeUnknownPartition}
	ErrRequestTooLarge     = &Error{Code: CodeRequestTooLarge}
	ErrInvalidPipelineName = &Error{Code: CodeInvalidPipelineName}
	ErrNotHandshaken       = &Error{Code: CodeNotHandshaken}
	ErrTimeout             = &Error{Code: CodeTimeout}
	ErrInvalidRequest      = &Error{Code: CodeInvalidRequest}
	ErrNotLeader           = &Error{Code: CodeNotLeader}
	ErrBatchTooLarge       = &Error{Code: CodeBatchTooLarge}
)

var sentinels = [numCodes]*Error{
	nil,
	ErrUnknown,
	ErrMalformed,
	ErrUnsupportedVersion,
	ErrUnknownPipeline,
	ErrNoCompliantHub,
	ErrOverloaded,
	ErrInvalidMask,
	ErrEventTooLarge,
	ErrOutOfOrderSequence,
	ErrDuplicateSequence,
	ErrProducerFenced,
	ErrOffsetOutOfRange,
	ErrNotReady,
	ErrStorageError,
	ErrInvalidPriority,
	ErrUnknownPartition,
	ErrRequestTooLarge,
	ErrInvalidPipelineName,
	ErrNotHandshaken,
	ErrTimeout,
	ErrInvalidRequest,
	ErrNotLeader,
	ErrBatchTooLarge,
}
