package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/sensehq/sense/result"
)

var errEOF = io.EOF

func TestAppendFrameLayout(t *testing.T) {
	got := AppendFrame([]byte("xx"), TypePing, 0x5a, 0x01020304, []byte("abc"))
	want := []byte{'x', 'x', 0, 0, 0, 9, 0x09, 0x5a, 1, 2, 3, 4, 'a', 'b', 'c'}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = % x, want % x", got, want)
	}
	SetCorr(got[2:], 7)
	if c := binary.BigEndian.Uint32(got[8:]); c != 7 {
		t.Fatalf("SetCorr: corr %d, want 7", c)
	}
}

func TestReaderStream(t *testing.T) {
	var stream []byte
	for i := range 100 {
		stream = AppendPing(stream, uint32(i+1), bytes.Repeat([]byte{byte(i)}, i*1000))
	}
	stream = AppendUnsubscribe(stream, 999)
	r := NewReader(iotestHalf{bytes.NewReader(stream)})
	for i := range 100 {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type != TypePing || f.Corr != uint32(i+1) || len(f.Payload) != i*1000 || (i > 0 && f.Payload[i] != byte(i)) {
			t.Fatalf("frame %d: %s corr %d len %d", i, f.Type, f.Corr, len(f.Payload))
		}
	}
	f, err := r.Next()
	if err != nil || f.Type != TypeUnsubscribe || f.Corr != 999 || len(f.Payload) != 0 {
		t.Fatalf("last frame %+v, %v", f, err)
	}
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after the last frame: %v, want io.EOF", err)
		}
	}
}

// iotestHalf returns at most half of what is asked (and at least 1 byte),
// so that every read path sees short reads.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:len(p)/2]
	}
	return h.r.Read(p)
}

func TestReaderTruncated(t *testing.T) {
	frame := AppendProduce(nil, 3, ProduceHeader{Pipeline: "p", ProducerID: -1, Epoch: -1, BaseSequence: -1}, sampleEvents())
	for n := 0; n < len(frame); n++ {
		r := NewReader(bytes.NewReader(frame[:n]))
		_, err := r.Next()
		switch {
		case n == 0 && err != io.EOF:
			t.Fatalf("empty stream: %v, want io.EOF", err)
		case n > 0 && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Fatalf("stream cut at %d of %d: %v, want io.ErrUnexpectedEOF", n, len(frame), err)
		}
	}
}

func TestReaderShortLength(t *testing.T) {
	for n := range uint32(HeaderLen) {
		stream := binary.BigEndian.AppendUint32(nil, n)
		stream = append(stream, make([]byte, 20)...)
		r := NewReader(bytes.NewReader(stream))
		f, err := r.Next()
		mustMalformed(t, err, "length "+string(rune('0'+n)))
		if f.Type != 0 || f.Corr != 0 || f.Payload != nil {
			t.Fatalf("length %d: frame %+v, want zero", n, f)
		}
		if _, err2 := r.Next(); err2 != err {
			t.Fatalf("error not sticky: %v then %v", err, err2)
		}
	}
}

func TestReaderTooLarge(t *testing.T) {
	for _, n := range []uint32{1025, 1 << 24, 1<<31 - 1, 1 << 31, 1<<32 - 1} {
		stream := binary.BigEndian.AppendUint32(nil, n)
		stream = append(stream, byte(TypeProduce), 0, 0, 0, 0, 42)
		r := NewReader(bytes.NewReader(stream))
		r.SetMaxFrame(1024)
		f, err := r.Next()
		if !errors.Is(err, result.ErrRequestTooLarge) || result.CodeOf(err) != result.RequestTooLarge {
			t.Fatalf("length %d: %v, want REQUEST_TOO_LARGE", n, err)
		}
		if f.Type != TypeProduce || f.Corr != 42 || f.Payload != nil {
			t.Fatalf("length %d: frame %+v, want PRODUCE corr 42 without payload", n, f)
		}
	}
	// Exactly at the limit is fine.
	r := NewReader(bytes.NewReader(AppendPing(nil, 1, make([]byte, 1024-HeaderLen))))
	r.SetMaxFrame(1024)
	if _, err := r.Next(); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
}

func TestReaderSetMaxFrame(t *testing.T) {
	r := NewReader(strings.NewReader(""))
	if r.MaxFrame() != DefaultMaxFrameBytes {
		t.Fatalf("default max %d", r.MaxFrame())
	}
	r.SetMaxFrame(3)
	if r.MaxFrame() != HeaderLen {
		t.Fatalf("SetMaxFrame(3) gives %d", r.MaxFrame())
	}
	r.SetMaxFrame(0)
	if r.MaxFrame() != DefaultMaxFrameBytes {
		t.Fatalf("SetMaxFrame(0) gives %d", r.MaxFrame())
	}
}

// A peer that claims a large frame and sends little must not make the
// Reader allocate for the claim.
func TestReaderAllocatesWhatArrives(t *testing.T) {
	stream := binary.BigEndian.AppendUint32(nil, DefaultMaxFrameBytes)
	stream = append(stream, byte(TypeProduce), 0, 0, 0, 0, 1)
	stream = append(stream, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		r := NewReader(bytes.NewReader(stream))
		if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Next: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRead := (after.TotalAlloc - before.TotalAlloc) / 10; perRead > 256<<10 {
		t.Fatalf("a 16 MiB claim with 100 bytes sent allocated %d bytes per Reader", perRead)
	}
}

func TestReaderReusesBuffer(t *testing.T) {
	frame := AppendPing(nil, 1, make([]byte, 200<<10))
	stream := bytes.Repeat(frame, 50)
	br := bytes.NewReader(stream)
	r := NewReader(bufio.NewReader(br))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(40, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %.1f times per frame once warm", allocs)
	}
	r.Release()
	if r.buf != nil {
		t.Fatal("Release kept a 200 KiB buffer")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderReset(t *testing.T) {
	r := NewReader(strings.NewReader("\x00\x00\x00\x01"))
	if _, err := r.Next(); err == nil {
		t.Fatal("no error")
	}
	r.Reset(bytes.NewReader(AppendPing(nil, 5, nil)))
	if f, err := r.Next(); err != nil || f.Corr != 5 {
		t.Fatalf("after Reset: %+v, %v", f, err)
	}
	br := bufio.NewReader(bytes.NewReader(AppendPing(nil, 6, nil)))
	r.Reset(br)
	if f, err := r.Next(); err != nil || f.Corr != 6 {
		t.Fatalf("after Reset to a bufio.Reader: %+v, %v", f, err)
	}
}

func TestReaderIOError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader([]byte{0, 0}), errReader{boom}))
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next: %v, want boom", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestTypeString(t *testing.T) {
	for typ, name := range typeNames {
		if typ.String() != name {
			t.Fatalf("%#x: %q", uint8(typ), typ.String())
		}
		if typ.FromServer() != (typ >= 0x80) {
			t.Fatalf("%s.FromServer() = %v", typ, typ.FromServer())
		}
		// Every request's answer is its number with bit 7 set (CREDIT is
		// paid back by DATA).
		if !typ.FromServer() {
			if _, ok := typeNames[typ|0x80]; !ok {
				t.Fatalf("%s has no answer type %#x", typ, uint8(typ|0x80))
			}
		}
	}
	if s := Type(0x3c).String(); s != "TYPE_0x3c" {
		t.Fatalf("unknown type: %q", s)
	}
	if s := Type(0x0a).String(); s != "TYPE_0x0a" {
		t.Fatalf("unknown type: %q", s)
	}
}

func TestLimitsValidate(t *testing.T) {
	var l Limits
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	if l != (Limits{DefaultMaxFrameBytes, DefaultMaxEventsPerProduce, DefaultMaxEventBytes, DefaultMaxHeaders}) {
		t.Fatalf("defaults %+v", l)
	}
	bad := Limits{MaxFrameBytes: 10, MaxHeaders: 70000}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxFrameBytes") || !strings.Contains(err.Error(), "MaxHeaders") {
		t.Fatalf("Validate = %v", err)
	}
}
