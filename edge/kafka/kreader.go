package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The bodies of flexible versions (KIP-482) that this server serves are
// decoded by its own decoders (ownDecoders in header.go), on kreader:
// kmsg v1.15.0's decoder trusts a client's tagged-field count. The
// encodings: a compact string or bytes is a uvarint N+1 then N bytes (0:
// null); a compact array a uvarint N+1 then N elements (0: null); a
// tagged-field section a uvarint count then, per field, a uvarint tag, a
// uvarint size and that many bytes; a uvarint is at most 5 bytes (a
// uint32); integers are big-endian.

// kreader reads the compact encodings of flexible Kafka bodies with a
// sticky error, checking every length against the bytes left.
type kreader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("request body truncated")

func (r *kreader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// compactLen reads a compact length (N+1; 0 is null, returned as -1).
func (r *kreader) compactLen() int {
	v := r.uvarint()
	if r.err != nil {
		return -1
	}
	if v > uint64(len(r.b))+1 {
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", v-1, len(r.b))
		return -1
	}
	return int(v) - 1
}

func (r *kreader) bytes() []byte {
	n := r.compactLen()
	if n < 0 || r.err != nil {
		return nil
	}
	out := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return out
}

// span reads compact nullable bytes (nil for null) without copying them:
// the result aliases the body, as kmsg's reader aliases it (a Produce's
// records, handed to the log as they came).
func (r *kreader) span() []byte {
	n := r.compactLen()
	if n < 0 || r.err != nil {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *kreader) string() string {
	n := r.compactLen()
	if n < 0 {
		if r.err == nil {
			r.err = errors.New("null string where one is required")
		}
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// stringAs is string, giving *last instead of a new string when the
// bytes read are the same, and keeping the string read in *last.
func (r *kreader) stringAs(last *string) string { return r.internedOf(r.compactLen(), last) }

// internedOf reads the n bytes of a string whose length was just read (n
// < 0: null, an error), giving *last when they are the same as it
// (without allocating), else a new string, kept in *last.
func (r *kreader) internedOf(n int, last *string) string {
	if n < 0 {
		if r.err == nil {
			r.err = errors.New("null string where one is required")
		}
		return ""
	}
	if string(r.b[:n]) != *last {
		*last = string(r.b[:n])
	}
	r.b = r.b[n:]
	return *last
}

func (r *kreader) int8() int8 {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := int8(r.b[0])
	r.b = r.b[1:]
	return v
}

// nullableString reads a compact nullable string (nil for null).
func (r *kreader) nullableString() *string {
	n := r.compactLen()
	if n < 0 || r.err != nil {
		return nil
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return &s
}

func (r *kreader) int16() int16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

// bool reads a boolean: a byte, 0 false, anything else true (as kmsg
// and Kafka read it).
func (r *kreader) bool() bool { return r.int8() != 0 }

func (r *kreader) int32() int32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *kreader) int64() int64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := int64(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *kreader) fail() {
	if r.err == nil {
		r.err = errTruncated
	}
}

// array reads a compact array's count (-1: null), bounding it by the
// bytes left at min bytes an element.
func (r *kreader) array(min int) int {
	n := r.compactLen()
	if r.err == nil && n > len(r.b)/min {
		r.err = fmt.Errorf("array of %d elements in %d bytes", n, len(r.b))
		return -1
	}
	return n
}

// requiredArray is array for an array that is not nullable: null is an
// error, as Kafka's own decoders make it.
func (r *kreader) requiredArray(min int) int {
	n := r.array(min)
	if n < 0 && r.err == nil {
		r.err = errors.New("null array where one is required")
	}
	return n
}

func (r *kreader) tags() {
	if r.err != nil {
		return
	}
	b, err := skipTags(r.b)
	if err != nil {
		r.err = err
		return
	}
	r.b = b
}

func (r *kreader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the body", len(r.b))
	}
	return r.err
}

// The encodings of the versions before KIP-482 (read by the Produce
// decoder, for versions 3 to 8): a string is an int16 length then its
// bytes (nullable: -1 is null), bytes an int32 length (-1: null), an
// array an int32 count.

// legacyLen reads an int16 (wide: int32) length, checked against the
// bytes left; -1 (null) is returned as is, any other negative length is an
// error.
func (r *kreader) legacyLen(wide bool) int {
	var n int
	if wide {
		n = int(r.int32())
	} else {
		n = int(r.int16())
	}
	switch {
	case r.err != nil:
		return -1
	case n < -1:
		r.err = fmt.Errorf("length %d", n)
		return -1
	case n > len(r.b):
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", n, len(r.b))
		return -1
	}
	return n
}

// legacyNullableString reads a nullable string (nil for null).
func (r *kreader) legacyNullableString() *string {
	n := r.legacyLen(false)
	if n < 0 {
		return nil
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return &s
}

// legacyStringAs is stringAs for a string of the older encoding.
func (r *kreader) legacyStringAs(last *string) string {
	return r.internedOf(r.legacyLen(false), last)
}

// legacySpan reads nullable bytes (nil for null) without copying them.
func (r *kreader) legacySpan() []byte {
	n := r.legacyLen(true)
	if n < 0 {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// legacyArray reads an array's count, bounding it by the bytes left at
// min bytes an element; a null array is an error.
func (r *kreader) legacyArray(min int) int {
	n := int(r.int32())
	switch {
	case r.err != nil:
		return -1
	case n < 0:
		r.err = fmt.Errorf("array of %d elements", n)
		return -1
	case n > len(r.b)/min:
		r.err = fmt.Errorf("array of %d elements in %d bytes", n, len(r.b))
		return -1
	}
	return n
}
