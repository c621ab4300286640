// Package event defines the unit of data Sense ingests, stores and delivers.
//
// An Event is a Kafka-style record (key, value, headers, timestamp) plus the
// routing metadata Sense decides placement by: the pipeline it belongs to,
// its jurisdiction mask (where it may rest) and its priority class (how long
// it may wait). Validate checks an event before the router sees it, without
// allocating when the event is valid.
//
// Stored records keep their routing metadata in two record headers, so that
// an audit or a migration can read it back from disk:
//
//	sense.j  8 bytes  the jurisdiction mask, big-endian uint64, never 0
//	sense.p  1 byte   the priority class: 0 low, 1 medium, 2 critical
//
// AppendMaskHeader, DecodeMaskHeader, AppendPriorityHeader and
// DecodePriorityHeader encode and decode those header values.
package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sensehq/sense/jurisdiction"
)

// Event is one event with its routing metadata. The byte slices are not
// copied by this package; whoever builds an Event decides who owns them.
type Event struct {
	// Pipeline names the stream the event belongs to (Kafka's topic).
	Pipeline string
	// Key, when set, keeps events with equal keys on one buffer while the
	// set of eligible buffers is stable. It may be nil.
	Key []byte
	// Value is the payload. It may be nil.
	Value []byte
	// Headers are the producer's own headers, in order.
	Headers []Header
	// Timestamp is the producer's or the edge's time for the event.
	Timestamp time.Time
	// Mask is the set of jurisdictions the event may be stored in. 0 is
	// invalid.
	Mask jurisdiction.Mask
	// Priority is the event's class; the zero value is Low.
	Priority Priority
}

// Header is one record header. Keys need not be unique.
type Header struct {
	Key   string
	Value []byte
}

// Priority is an event's class. Events of a higher class never wait behind
// events of a lower one. The zero value is Low, the default.
type Priority uint8

// The priority classes, in increasing urgency.
const (
	Low Priority = iota
	Medium
	Critical
)

// numPriorities is the number of valid classes: a Priority p is valid when
// p < numPriorities.
const numPriorities = 3

var priorityNames = [numPriorities]string{"low", "medium", "critical"}

// String returns "low", "medium" or "critical", or "priority(N)" for a value
// that is none of them.
func (p Priority) String() string {
	if p.Valid() {
		return priorityNames[p]
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// Valid reports whether p is Low, Medium or Critical.
func (p Priority) Valid() bool { return p < numPriorities }

// ParsePriority returns the class named by s: "low", "medium" or "critical",
// in any case.
func ParsePriority(s string) (Priority, error) {
	for i, name := range priorityNames {
		if len(s) == len(name) && equalFoldASCII(s, name) {
			return Priority(i), nil
		}
	}
	return Low, fmt.Errorf("%w %q; use low, medium or critical", ErrInvalidPriority, s)
}

// MarshalText encodes p as its name, so that it reads well in JSON and YAML.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("%w %d; valid values are 0 (low), 1 (medium) and 2 (critical)", ErrInvalidPriority, uint8(p))
	}
	return []byte(priorityNames[p]), nil
}

// UnmarshalText decodes a name accepted by ParsePriority.
func (p *Priority) UnmarshalText(text []byte) error {
	v, err := ParsePriority(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Errors returned by Validate and the header decoders, checked with
// errors.Is. The returned errors wrap these and name the bad value.
var (
	ErrInvalidPipeline = errors.New("event: invalid pipeline name")
	ErrNoJurisdiction  = errors.New("event: jurisdiction mask is 0")
	ErrInvalidPriority = errors.New("event: invalid priority")
	ErrBadHeader       = errors.New("event: malformed routing header")
)

// MaxPipelineLen is the longest pipeline name, the same limit Kafka puts on
// topic names.
const MaxPipelineLen = 249

// ValidatePipelineName checks a pipeline name against the rules Kafka applies
// to topic names, so that every pipeline can be served as a Kafka topic:
// 1 to 249 characters from [a-zA-Z0-9._-], and neither "." nor "..".
func ValidatePipelineName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the name is empty; use 1 to %d of a-z, A-Z, 0-9, '.', '_', '-'", ErrInvalidPipeline, MaxPipelineLen)
	}
	if len(name) > MaxPipelineLen {
		return fmt.Errorf("%w: %.32q... is %d bytes long, at most %d are allowed", ErrInvalidPipeline, name, len(name), MaxPipelineLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q is reserved; pick another name", ErrInvalidPipeline, name)
	}
	for i := 0; i < len(name); i++ {
		if !pipelineByte(name[i]) {
			return fmt.Errorf("%w: %q has %q at byte %d; use only a-z, A-Z, 0-9, '.', '_', '-'", ErrInvalidPipeline, name, name[i], i)
		}
	}
	return nil
}

// Validate checks that e has a valid pipeline name, a non-zero mask and a
// known priority. It does not check the mask against a jurisdiction
// registry; see jurisdiction.Registry.Check. It does not allocate when e is
// valid.
func (e *Event) Validate() error {
	if err := ValidatePipelineName(e.Pipeline); err != nil {
		return err
	}
	if e.Mask == 0 {
		return fmt.Errorf("%w for an event of pipeline %q; give at least one jurisdiction", ErrNoJurisdiction, e.Pipeline)
	}
	if !e.Priority.Valid() {
		return fmt.Errorf("%w %d for an event of pipeline %q; use low (0), medium (1) or critical (2)", ErrInvalidPriority, uint8(e.Priority), e.Pipeline)
	}
	return nil
}

// Record header names carrying an event's routing metadata in stored
// records, and the exact lengths of their values.
const (
	HeaderMask        = "sense.j"
	HeaderPriority    = "sense.p"
	MaskHeaderLen     = 8
	PriorityHeaderLen = 1
)

// AppendMaskHeader appends the value of the sense.j header for m to dst: m as
// a big-endian uint64.
func AppendMaskHeader(dst []byte, m jurisdiction.Mask) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(m))
}

// DecodeMaskHeader decodes the value of a sense.j header. A value that is not
// exactly 8 bytes long yields ErrBadHeader, and a zero mask
// ErrNoJurisdiction.
func DecodeMaskHeader(v []byte) (jurisdiction.Mask, error) {
	if len(v) != MaskHeaderLen {
		return 0, fmt.Errorf("%w: %s value is %d bytes, want %d", ErrBadHeader, HeaderMask, len(v), MaskHeaderLen)
	}
	m := jurisdiction.Mask(binary.BigEndian.Uint64(v))
	if m == 0 {
		return 0, fmt.Errorf("%w in header %s", ErrNoJurisdiction, HeaderMask)
	}
	return m, nil
}

// AppendPriorityHeader appends the value of the sense.p header for p to dst:
// one byte.
func AppendPriorityHeader(dst []byte, p Priority) []byte {
	return append(dst, byte(p))
}

// DecodePriorityHeader decodes the value of a sense.p header. A value that is
// not exactly 1 byte long yields ErrBadHeader, and an unknown class
// ErrInvalidPriority.
func DecodePriorityHeader(v []byte) (Priority, error) {
	if len(v) != PriorityHeaderLen {
		return Low, fmt.Errorf("%w: %s value is %d bytes, want %d", ErrBadHeader, HeaderPriority, len(v), PriorityHeaderLen)
	}
	p := Priority(v[0])
	if !p.Valid() {
		return Low, fmt.Errorf("%w %d in header %s; valid values are 0 (low), 1 (medium) and 2 (critical)", ErrInvalidPriority, v[0], HeaderPriority)
	}
	return p, nil
}

func pipelineByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// equalFoldASCII compares s with lower, an ASCII lower-case string of the
// same length, ignoring the case of s.
func equalFoldASCII(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
