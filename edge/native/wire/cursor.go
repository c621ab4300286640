package wire

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/sensehq/sense/result"
)

// cursor decodes the fixed fields of a payload with a sticky error: read
// every field, then check err once. Each read checks the bytes left before
// it touches them; a length-prefixed field's length is compared with the
// bytes left before the field is sliced. Nothing is allocated unless the
// payload is malformed.
type cursor struct {
	p   []byte
	off int
	msg Type
	err error
}

func newCursor(msg Type, p []byte) cursor { return cursor{p: p, msg: msg} }

func (c *cursor) left() int { return len(c.p) - c.off }

// need reports whether n more bytes are present, and records an error
// naming field when they are not.
func (c *cursor) need(n int, field string) bool {
	if c.err != nil {
		return false
	}
	if n > c.left() {
		c.err = malformed(c.msg, "%s needs %d bytes, %d left", field, n, c.left())
		return false
	}
	return true
}

func (c *cursor) u8(field string) uint8 {
	if !c.need(1, field) {
		return 0
	}
	v := c.p[c.off]
	c.off++
	return v
}

func (c *cursor) u16(field string) uint16 {
	if !c.need(2, field) {
		return 0
	}
	v := binary.BigEndian.Uint16(c.p[c.off:])
	c.off += 2
	return v
}

func (c *cursor) u32(field string) uint32 {
	if !c.need(4, field) {
		return 0
	}
	v := binary.BigEndian.Uint32(c.p[c.off:])
	c.off += 4
	return v
}

func (c *cursor) u64(field string) uint64 {
	if !c.need(8, field) {
		return 0
	}
	v := binary.BigEndian.Uint64(c.p[c.off:])
	c.off += 8
	return v
}

// bytes reads a u32 length and that many bytes, aliasing the payload. The
// result is never nil when the read succeeds.
func (c *cursor) bytes(field string) []byte {
	if c.err != nil {
		return nil
	}
	if c.left() < 4 {
		c.err = malformed(c.msg, "%s length needs 4 bytes, %d left", field, c.left())
		return nil
	}
	n := binary.BigEndian.Uint32(c.p[c.off:])
	c.off += 4
	if uint64(n) > uint64(c.left()) {
		c.err = malformed(c.msg, "%s length %d exceeds the %d bytes left", field, n, c.left())
		return nil
	}
	b := c.p[c.off : c.off+int(n) : c.off+int(n)]
	c.off += int(n)
	return b
}

// str is bytes copied into a string.
func (c *cursor) str(field string) string { return string(c.bytes(field)) }

// pipeline reads a pipeline name, refusing names longer than
// MaxPipelineLen with INVALID_PIPELINE_NAME (the frame itself is sound).
func (c *cursor) pipeline() []byte {
	b := c.bytes("pipeline")
	if c.err == nil && len(b) > MaxPipelineLen {
		c.err = &result.Error{Code: result.InvalidPipelineName, Message: c.msg.String() + ": pipeline name of " +
			strconv.Itoa(len(b)) + " bytes is longer than " + strconv.Itoa(MaxPipelineLen)}
	}
	return b
}

// rest returns the bytes left and consumes them.
func (c *cursor) rest() []byte {
	if c.err != nil {
		return nil
	}
	b := c.p[c.off:len(c.p):len(c.p)]
	c.off = len(c.p)
	return b
}

// end returns the sticky error, or an error if bytes are left over.
func (c *cursor) end() error {
	if c.err == nil && c.left() != 0 {
		c.err = malformed(c.msg, "%d unexpected bytes after the last field", c.left())
	}
	return c.err
}

func malformed(msg Type, format string, args ...any) error {
	return &result.Error{Code: result.Malformed, Message: msg.String() + ": " + fmt.Sprintf(format, args...)}
}

// appendBytes appends a u32 length and b.
func appendBytes(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// appendString appends a u32 length and s.
func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}
