package wire

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/sensehq/sense/result"
)

// AppendAdmin appends an ADMIN frame whose payload is body, a JSON object
// {"op": "...", ...}. The server defines the operations; this package only
// frames them.
func AppendAdmin(dst []byte, corr uint32, body []byte) []byte {
	return AppendFrame(dst, TypeAdmin, 0, corr, body)
}

// AppendAdminResult appends an ADMIN_RESULT frame whose payload is body, a
// JSON document. An operation that fails is answered with ERROR instead.
func AppendAdminResult(dst []byte, corr uint32, body []byte) []byte {
	return AppendFrame(dst, TypeAdminResult, 0, corr, body)
}

// AppendPing appends a PING frame. data is opaque (at most 64 bytes is
// plenty, for instance a send time); the server echoes it in PONG.
func AppendPing(dst []byte, corr uint32, data []byte) []byte {
	return AppendFrame(dst, TypePing, 0, corr, data)
}

// AppendPong appends a PONG frame echoing a PING's payload.
func AppendPong(dst []byte, corr uint32, data []byte) []byte {
	return AppendFrame(dst, TypePong, 0, corr, data)
}

// AppendError appends an ERROR frame:
//
//	u16    code
//	string message  (UTF-8, for people; at most MaxErrorMessage bytes)
//
// code must not be result.OK. corr is the correlation id of the failed
// request, or 0 when the server closes the connection because its framing
// is lost. A message longer than
// MaxErrorMessage is cut (on a rune boundary).
func AppendError(dst []byte, corr uint32, code result.Code, msg string) []byte {
	if len(msg) > MaxErrorMessage {
		n := MaxErrorMessage
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n]
	}
	dst, start := BeginFrame(dst, TypeError, 0, corr)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = appendString(dst, msg)
	return EndFrame(dst, start)
}

// AppendErrorFrom appends an ERROR frame for err, which must not be nil: its code is result.CodeOf(err)
// (result.Unknown for an error without one), and its message err's text, or
// just the *result.Error's Message when err is an *result.Error itself, so that the code
// is not repeated in the text.
func AppendErrorFrom(dst []byte, corr uint32, err error) []byte {
	var e *result.Error
	if errors.As(err, &e) && error(e) == err {
		return AppendError(dst, corr, e.Code, e.Message)
	}
	return AppendError(dst, corr, result.CodeOf(err), err.Error())
}

// DecodeError decodes an ERROR payload into an *result.Error.
func DecodeError(p []byte) (*result.Error, error) {
	c := newCursor(TypeError, p)
	e := &result.Error{Code: result.Code(c.u16("code"))}
	e.Message = c.str("message")
	if err := c.end(); err != nil {
		return nil, err
	}
	return e, nil
}
