// Package result holds Sense's result codes: one Code per outcome of a
// request or of one event in it, shared by the engine (package node), the
// native protocol (edge/native/wire, whose frames carry the numbers), the
// HTTP edge, the Kafka edge and the Go client.
//
// One table gives, for each code, its name, whether the same request may
// succeed later (Retriable), the Kafka error code a Kafka client receives
// for it (Kafka), the HTTP status of a request refused whole with it
// (HTTPStatus) and a sentence a user can act on (Explain). A code's number
// never changes meaning; new codes are only added (docs/protocol.md lists
// them).
//
// An *Error carries a code and a message from one layer to the next, so a
// code is never flattened into a string on the way: errors.Is matches an
// *Error against any *Error of the same code, and CodeOf finds the code in
// a wrapped chain.
package result

import (
	"errors"
	"strconv"
)

// Code is a result code. The zero value is OK.
type Code uint16

// The codes. The numbers are those of the native protocol.
const (
	OK                  Code = 0  // success
	Unknown             Code = 1  // unexpected server error
	Malformed           Code = 2  // bytes that do not follow the protocol; the connection is closed
	UnsupportedVersion  Code = 3  // no protocol version in common
	UnknownPipeline     Code = 4  // no pipeline of that name
	NoCompliantHub      Code = 5  // no buffer eligible for the event's mask, priority and pipeline (retriable)
	Overloaded          Code = 6  // the router sheds load (retriable)
	InvalidMask         Code = 7  // mask 0, or bits outside the registry
	EventTooLarge       Code = 8  // key+value+headers over the limit, or too many headers
	OutOfOrderSequence  Code = 9  // base sequence is not the next expected one
	DuplicateSequence   Code = 10 // the sequence was stored, but too long ago to return its offsets
	ProducerFenced      Code = 11 // the producer epoch is stale
	OffsetOutOfRange    Code = 12 // offset outside [log start, high watermark]
	NotReady            Code = 13 // the server or the partition is starting or moving (retriable)
	StorageError        Code = 14 // the buffer could not make the write durable (retriable)
	InvalidPriority     Code = 15 // priority other than low, medium, critical
	UnknownPartition    Code = 16 // no such partition in the pipeline
	RequestTooLarge     Code = 17 // frame or event count over the limits
	InvalidPipelineName Code = 18 // pipeline name breaks the naming rules
	NotHandshaken       Code = 19 // a request before HELLO_OK
	Timeout             Code = 20 // the request's work did not finish in time (retriable)
	InvalidRequest      Code = 21 // well-formed, but not acceptable in this state
	NotLeader           Code = 22 // this node does not lead the partition (retriable)
	BatchTooLarge       Code = 23 // a stored batch does not fit in the largest frame
	PolicyViolation     Code = 24 // a record's jurisdiction or priority forbids the partition it was sent to
	CorruptBatch        Code = 25 // a record batch fails its CRC or framing
	PipelineExists      Code = 26 // a pipeline of that name exists already
	// AuthenticationFailed: the credentials or token were refused, or a
	// request came before authentication where it is required; the
	// connection is closed.
	AuthenticationFailed Code = 27
	Unauthorized         Code = 28 // the authenticated principal may not do this
)

// numCodes is one more than the largest defined code.
const numCodes = 29

// Kafka error codes used by the table (their names as in the Kafka
// protocol; edge/kafka's tests check each number against franz-go's kerr).
const (
	kafkaUnknownServerError       int16 = -1
	kafkaNone                     int16 = 0
	kafkaOffsetOutOfRange         int16 = 1
	kafkaCorruptMessage           int16 = 2
	kafkaUnknownTopicOrPartition  int16 = 3
	kafkaNotLeaderOrFollower      int16 = 6
	kafkaRequestTimedOut          int16 = 7
	kafkaMessageTooLarge          int16 = 10
	kafkaInvalidTopicException    int16 = 17
	kafkaNotEnoughReplicas        int16 = 19
	kafkaUnsupportedVersion       int16 = 35
	kafkaTopicAlreadyExists       int16 = 36
	kafkaInvalidRequest           int16 = 42
	kafkaPolicyViolation          int16 = 44
	kafkaOutOfOrderSequenceNumber int16 = 45
	kafkaDuplicateSequenceNumber  int16 = 46
	kafkaInvalidProducerEpoch     int16 = 47
	kafkaStorageError             int16 = 56
	kafkaSaslAuthenticationFailed int16 = 58
	kafkaClusterAuthorization     int16 = 31
)

// entry is one row of the table.
type entry struct {
	name      string
	retriable bool
	kafka     int16
	http      int
	explain   string
}

// HTTP statuses, spelled out so this package needs no net/http.
const (
	httpOK                  = 200
	httpBadRequest          = 400
	httpUnauthorized        = 401
	httpForbidden           = 403
	httpNotFound            = 404
	httpConflict            = 409
	httpEntityTooLarge      = 413
	httpRangeNotSatisfiable = 416
	httpUnprocessable       = 422
	httpTooManyRequests     = 429
	httpInternalError       = 500
	httpUnavailable         = 503
	httpGatewayTimeout      = 504
)

// table is the one place that says what each code means to each protocol.
//
// Kafka mappings worth a word: a jurisdiction refusal (NO_COMPLIANT_HUB,
// POLICY_VIOLATION, INVALID_MASK, INVALID_PRIORITY) is POLICY_VIOLATION,
// which Kafka clients do not retry: resending the same record to the same
// partition cannot succeed. OVERLOADED is NOT_ENOUGH_REPLICAS, which every
// Kafka client retries after its back-off; NOT_READY and TIMEOUT are
// REQUEST_TIMED_OUT, likewise retried.
var table = [numCodes]entry{
	OK:                  {"NONE", false, kafkaNone, httpOK, "success"},
	Unknown:             {"UNKNOWN", false, kafkaUnknownServerError, httpInternalError, "an unexpected server error; the server's log has the details"},
	Malformed:           {"MALFORMED", false, kafkaInvalidRequest, httpBadRequest, "the request does not follow the protocol"},
	UnsupportedVersion:  {"UNSUPPORTED_VERSION", false, kafkaUnsupportedVersion, httpBadRequest, "the client and the server have no protocol version in common; upgrade one of them"},
	UnknownPipeline:     {"UNKNOWN_PIPELINE", false, kafkaUnknownTopicOrPartition, httpNotFound, "no such pipeline (and router.auto_create_pipelines is off)"},
	NoCompliantHub:      {"NO_COMPLIANT_HUB", true, kafkaPolicyViolation, httpUnprocessable, "no up hub in the event's jurisdictions may hold this pipeline's events of this priority; the event was not stored"},
	Overloaded:          {"OVERLOADED", true, kafkaNotEnoughReplicas, httpTooManyRequests, "the node is shedding low and medium events (their lane waits too long, or memory is short); retry after a back-off, or send critical events"},
	InvalidMask:         {"INVALID_MASK", false, kafkaPolicyViolation, httpBadRequest, "the jurisdiction set is empty or holds unregistered jurisdictions"},
	EventTooLarge:       {"EVENT_TOO_LARGE", false, kafkaMessageTooLarge, httpEntityTooLarge, "the event's key, value and headers are larger than router.max_event_bytes, or it has too many headers"},
	OutOfOrderSequence:  {"OUT_OF_ORDER_SEQUENCE", false, kafkaOutOfOrderSequenceNumber, httpConflict, "the producer's sequence number is not the next one expected; events may be missing"},
	DuplicateSequence:   {"DUPLICATE_SEQUENCE", false, kafkaDuplicateSequenceNumber, httpConflict, "the events were stored before, too long ago to return their offsets"},
	ProducerFenced:      {"PRODUCER_FENCED", false, kafkaInvalidProducerEpoch, httpConflict, "a newer producer with the same id took over; this one must stop"},
	OffsetOutOfRange:    {"OFFSET_OUT_OF_RANGE", false, kafkaOffsetOutOfRange, httpRangeNotSatisfiable, "the offset is before the log start or past the high watermark"},
	NotReady:            {"NOT_READY", true, kafkaRequestTimedOut, httpUnavailable, "the node is starting or stopping, or the pipeline is being deleted; retry"},
	StorageError:        {"STORAGE_ERROR", true, kafkaStorageError, httpUnavailable, "the buffer could not make the write durable; the server's log names the cause"},
	InvalidPriority:     {"INVALID_PRIORITY", false, kafkaPolicyViolation, httpBadRequest, "the priority is not low, medium or critical"},
	UnknownPartition:    {"UNKNOWN_PARTITION", false, kafkaUnknownTopicOrPartition, httpNotFound, "the pipeline has no such partition"},
	RequestTooLarge:     {"REQUEST_TOO_LARGE", false, kafkaMessageTooLarge, httpEntityTooLarge, "the request is larger than the server's limits"},
	InvalidPipelineName: {"INVALID_PIPELINE_NAME", false, kafkaInvalidTopicException, httpBadRequest, "the pipeline name breaks the naming rules (1-249 of a-z A-Z 0-9 . _ -, not . or ..)"},
	NotHandshaken:       {"NOT_HANDSHAKEN", false, kafkaInvalidRequest, httpBadRequest, "a request came before the handshake"},
	Timeout:             {"TIMEOUT", true, kafkaRequestTimedOut, httpGatewayTimeout, "the request's work did not finish in time"},
	InvalidRequest:      {"INVALID_REQUEST", false, kafkaInvalidRequest, httpBadRequest, "the request is well formed but not acceptable in this state"},
	NotLeader:           {"NOT_LEADER", true, kafkaNotLeaderOrFollower, httpUnavailable, "this node does not lead the partition; ask for the current leader and retry"},
	BatchTooLarge:       {"BATCH_TOO_LARGE", false, kafkaMessageTooLarge, httpInternalError, "a stored batch is larger than the largest frame this connection allows"},
	PolicyViolation:     {"POLICY_VIOLATION", false, kafkaPolicyViolation, httpForbidden, "a record's jurisdiction or priority forbids the partition it was sent to"},
	CorruptBatch:        {"CORRUPT_BATCH", false, kafkaCorruptMessage, httpBadRequest, "the record batch fails its CRC or framing"},
	PipelineExists:      {"PIPELINE_EXISTS", false, kafkaTopicAlreadyExists, httpConflict, "a pipeline of that name exists already; describe it, or delete it first"},
	// The Kafka edge answers a denial with the authorization code of the
	// resource it checked (TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED);
	// CLUSTER_AUTHORIZATION_FAILED is the fallback.
	AuthenticationFailed: {"AUTHENTICATION_FAILED", false, kafkaSaslAuthenticationFailed, httpUnauthorized, "the server requires authentication and the credentials or token were missing or refused; give a user and password or a token (docs/security.md)"},
	Unauthorized:         {"UNAUTHORIZED", false, kafkaClusterAuthorization, httpForbidden, "the authenticated principal is not allowed to do this"},
}

// Parse returns the code named name (as String gives it), or false.
func Parse(name string) (Code, bool) {
	for c := range Code(numCodes) {
		if table[c].name == name {
			return c, true
		}
	}
	return 0, false
}

// Known reports whether this version defines c.
func (c Code) Known() bool { return c < numCodes }

// String returns the code's UPPER_SNAKE name, or "CODE_N" for a code this
// version does not know.
func (c Code) String() string {
	if c.Known() {
		return table[c].name
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// Retriable reports whether the same request may succeed if sent again
// later, unchanged: NO_COMPLIANT_HUB, OVERLOADED, NOT_READY, STORAGE_ERROR,
// TIMEOUT and NOT_LEADER. Codes this version does not know are not
// retriable.
func (c Code) Retriable() bool { return c.Known() && table[c].retriable }

// Kafka returns the Kafka protocol error code for c (UNKNOWN_SERVER_ERROR,
// -1, for a code this version does not know).
func (c Code) Kafka() int16 {
	if c.Known() {
		return table[c].kafka
	}
	return kafkaUnknownServerError
}

// HTTPStatus returns the HTTP status of a request refused whole with c (500
// for a code this version does not know).
func (c Code) HTTPStatus() int {
	if c.Known() {
		return table[c].http
	}
	return httpInternalError
}

// Explain returns a sentence saying what c means and, where there is
// something to do, what to do.
func (c Code) Explain() string {
	if c.Known() {
		return table[c].explain
	}
	return c.String()
}

// Err returns the sentinel *Error for c (for example ErrMalformed), or nil
// for OK. For a code this version does not know it returns a new *Error
// carrying it.
func (c Code) Err() error {
	if c == OK {
		return nil
	}
	if c.Known() {
		return sentinels[c]
	}
	return &Error{Code: c}
}

// Error is an error with a result code. errors.Is matches an *Error against
// any *Error of the same code, so
//
//	errors.Is(err, result.ErrNoCompliantHub)
//
// holds for every error carrying NO_COMPLIANT_HUB, whatever its message.
type Error struct {
	Code    Code
	Message string
}

// New returns an *Error with code c and message msg.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Error returns "sense: CODE: message", or "sense: CODE" without a message.
func (e *Error) Error() string {
	if e.Message == "" {
		return "sense: " + e.Code.String()
	}
	return "sense: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Retriable reports whether e.Code is retriable.
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// CodeOf returns the code of the first *Error in err's chain: OK for a nil
// err, Unknown for an error that carries no code.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Unknown
}

// MessageOf returns the message of the first *Error in err's chain, or
// err's text when it carries no code.
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Message == "" {
			return e.Code.Explain()
		}
		return e.Message
	}
	return err.Error()
}

// Sentinel errors, one per code, for errors.Is. Do not modify them.
var (
	ErrUnknown              = &Error{Code: Unknown}
	ErrMalformed            = &Error{Code: Malformed}
	ErrUnsupportedVersion   = &Error{Code: UnsupportedVersion}
	ErrUnknownPipeline      = &Error{Code: UnknownPipeline}
	ErrNoCompliantHub       = &Error{Code: NoCompliantHub}
	ErrOverloaded           = &Error{Code: Overloaded}
	ErrInvalidMask          = &Error{Code: InvalidMask}
	ErrEventTooLarge        = &Error{Code: EventTooLarge}
	ErrOutOfOrderSequence   = &Error{Code: OutOfOrderSequence}
	ErrDuplicateSequence    = &Error{Code: DuplicateSequence}
	ErrProducerFenced       = &Error{Code: ProducerFenced}
	ErrOffsetOutOfRange     = &Error{Code: OffsetOutOfRange}
	ErrNotReady             = &Error{Code: NotReady}
	ErrStorageError         = &Error{Code: StorageError}
	ErrInvalidPriority      = &Error{Code: InvalidPriority}
	ErrUnknownPartition     = &Error{Code: UnknownPartition}
	ErrRequestTooLarge      = &Error{Code: RequestTooLarge}
	ErrInvalidPipelineName  = &Error{Code: InvalidPipelineName}
	ErrNotHandshaken        = &Error{Code: NotHandshaken}
	ErrTimeout              = &Error{Code: Timeout}
	ErrInvalidRequest       = &Error{Code: InvalidRequest}
	ErrNotLeader            = &Error{Code: NotLeader}
	ErrBatchTooLarge        = &Error{Code: BatchTooLarge}
	ErrPolicyViolation      = &Error{Code: PolicyViolation}
	ErrCorruptBatch         = &Error{Code: CorruptBatch}
	ErrPipelineExists       = &Error{Code: PipelineExists}
	ErrAuthenticationFailed = &Error{Code: AuthenticationFailed}
	ErrUnauthorized         = &Error{Code: Unauthorized}
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
	ErrPolicyViolation,
	ErrCorruptBatch,
	ErrPipelineExists,
	ErrAuthenticationFailed,
	ErrUnauthorized,
}
