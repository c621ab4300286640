package config

import (
	"strconv"
	"strings"
)

// FieldError reports one bad setting. Load, Parse and Validate return one
// FieldError per problem, joined with errors.Join, so a caller sees every
// mistake at once; use errors.As to inspect one.
//
// Its message reads
//
//	config: hubs[1].jurisdiction "XX" is not a registered jurisdiction (registered: MA, SN); add it to jurisdictions or fix the hub (sense.yaml line 14)
//
// that is the key, the value, what is wrong and what to do, and where the
// value came from.
type FieldError struct {
	// Key is the setting's path as written in the YAML file, such as
	// "router.memory_limit", "hubs[1].jurisdiction" or "groups.ECOWAS[0]".
	Key string
	// Value is the offending value as text; it is empty when the problem is
	// the key itself (an unknown key) or a missing value.
	Value string
	// Source says where the value came from: "sense.yaml line 14",
	// "env SENSE_DATA", "flag --data"; empty for values set in Go or filled
	// in as defaults.
	Source string
	// Err says what is wrong and what to do, phrased to follow the key and
	// the value. It may wrap the error of the parser that rejected the value
	// (for example event.ErrInvalidPriority), for errors.Is.
	Err error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.Key)
	if e.Value != "" {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(e.Value))
	}
	b.WriteByte(' ')
	b.WriteString(e.Err.Error())
	if e.Source != "" {
		b.WriteString(" (")
		b.WriteString(e.Source)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the cause, so that errors.Is sees through a FieldError.
func (e *FieldError) Unwrap() error { return e.Err }

// hintError is a problem phrased to follow a key and its value, such as
// "is not a size; use ...". It may carry the parser's own error as its cause.
type hintError struct {
	msg   string
	cause error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.cause }

func hint(msg string) error { return &hintError{msg: msg} }

func hintWrap(msg string, cause error) error { return &hintError{msg: msg, cause: cause} }
