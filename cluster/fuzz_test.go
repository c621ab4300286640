package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// fuzzMaxFrame is the frame maximum in FuzzReadFrames: small, so that the
// fuzzer reaches it.
const fuzzMaxFrame = 512

// FuzzReadFrames feeds an arbitrary stream to the decoder an accepted
// connection runs: a hello, then frames until an error. It never panics,
// its buffer never exceeds the frame maximum, the hello and every frame
// re-encode to exactly the bytes they were read from, the stream ends
// with io.EOF only after its last byte, and every error is of a
// documented kind.
func FuzzReadFrames(f *testing.F) {
	h := appendHello(nil, hello{Cluster: "sense", From: "n1", To: "n2"})
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	length := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	f.Add([]byte{})
	f.Add(h)
	f.Add(join(h, appendFrame(nil, 1, []byte("raft")), appendFrame(nil, 2, nil)))
	f.Add(join(h, appendFrame(nil, 1, make([]byte, fuzzMaxFrame-1))))              // at the maximum
	f.Add(join(h, appendFrame(nil, 1, make([]byte, fuzzMaxFrame))))                // one over
	f.Add(join(h, length(0)))                                                      // length 0
	f.Add(join(h, length(0xffffffff), []byte{1, 2, 3}))                            // 4 GiB claim
	f.Add(join(h, length(0x80000000), []byte{1}))                                  // negative as int32
	f.Add(join(h, length(10), []byte{1, 2, 3}))                                    // cut payload
	f.Add(join(h, appendFrame(nil, 3, []byte("x")), []byte{0, 0}))                 // cut length
	f.Add([]byte("SNSC\x01\xff"))                                                  // name length 255, cut
	f.Add([]byte("SNSC\x02\x05sense\x02n1\x02n2"))                                 // version 2
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))                                        // not a hello
	f.Add(join([]byte("SNSC\x01\x00\x00\x00"), appendFrame(nil, 0xff, []byte{0}))) // empty names
	f.Fuzz(func(t *testing.T, data []byte) {
		var r io.Reader = bytes.NewReader(data)
		switch len(data) % 3 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		hl, err := readHello(r)
		if err != nil {
			switch {
			case err == io.EOF:
				if len(data) != 0 {
					t.Fatalf("io.EOF with %d bytes", len(data))
				}
			case errors.Is(err, io.ErrUnexpectedEOF):
			case errors.Is(err, ErrBadHello):
				if len(data) < 5 || (string(data[:4]) == helloMagic && data[4] == helloVersion) {
					t.Fatalf("a good magic and version refused: %v", err)
				}
			default:
				t.Fatalf("hello: unexpected error %v", err)
			}
			return
		}
		again := appendHello(nil, hl)
		if !bytes.HasPrefix(data, again) {
			t.Fatalf("hello %+v re-encodes to %q, read from %q", hl, again, data[:min(len(data), len(again))])
		}
		fr := newFrameReader(r, fuzzMaxFrame)
		for {
			kind, payload, err := fr.next()
			if cap(fr.buf) > fuzzMaxFrame {
				t.Fatalf("read buffer of %d bytes, maximum %d", cap(fr.buf), fuzzMaxFrame)
			}
			if err != nil {
				switch {
				case err == io.EOF:
					if !bytes.Equal(again, data) {
						t.Fatalf("io.EOF after %d of %d bytes", len(again), len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
				case errors.Is(err, ErrFrameSize):
					n := binary.BigEndian.Uint32(data[len(again):])
					if n != 0 && n <= fuzzMaxFrame {
						t.Fatalf("length %d refused", n)
					}
				default:
					t.Fatalf("frame: unexpected error %v", err)
				}
				return
			}
			if 1+len(payload) > fuzzMaxFrame {
				t.Fatalf("a frame of %d bytes, maximum %d", 1+len(payload), fuzzMaxFrame)
			}
			again = appendFrame(again, kind, payload)
			if !bytes.HasPrefix(data, again) {
				t.Fatalf("frame %d %q does not re-encode to the bytes read", kind, payload)
			}
		}
	})
}
