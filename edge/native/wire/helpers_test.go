package wire

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// readOne reads frame, which must be exactly one frame, through a Reader
// and checks its type and correlation id.
func readOne(t testing.TB, frame []byte, typ Type, corr uint32) Frame {
	t.Helper()
	r := NewReader(bytes.NewReader(frame))
	f, err := r.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if f.Type != typ || f.Corr != corr || f.Flags != 0 {
		t.Fatalf("frame %s/%#x corr %d, want %s/0 corr %d", f.Type, f.Flags, f.Corr, typ, corr)
	}
	if got := FrameHeaderSize + len(f.Payload); got != len(frame) {
		t.Fatalf("frame of %d bytes read as %d", len(frame), got)
	}
	if _, err := r.Next(); err != errEOF {
		t.Fatalf("second Next: %v, want io.EOF", err)
	}
	return f
}

// mustMalformed fails unless err matches result.ErrMalformed.
func mustMalformed(t testing.TB, err error, what string) {
	t.Helper()
	if !errors.Is(err, result.ErrMalformed) {
		t.Fatalf("%s: error %v, want MALFORMED", what, err)
	}
}

// sampleEvents returns events covering every combination of optional
// fields, empty and absent keys and values, and headers.
func sampleEvents() []EventIn {
	var evs []EventIn
	for f := 0; f < 32; f++ {
		ev := EventIn{}
		if f&FieldKey != 0 {
			ev.Key = []byte(fmt.Sprintf("key-%d", f))
			if f%3 == 0 {
				ev.Key = []byte{}
			}
		}
		if f&FieldValue != 0 {
			ev.Value = bytes.Repeat([]byte{byte(f)}, f*7)
			if f%5 == 0 {
				ev.Value = []byte{}
			}
		}
		if f&FieldMask != 0 {
			ev.HasMask, ev.Mask = true, jurisdiction.Mask(1)<<(f%64)|0x8000_0000_0000_0000
		}
		if f&FieldPriority != 0 {
			ev.HasPriority, ev.Priority = true, event.Priority(f%3)
		}
		if f&FieldTimestamp != 0 {
			ev.HasTimestamp, ev.TimestampMs = true, 1_700_000_000_000+int64(f)
			if f%4 == 0 {
				ev.TimestampMs = -1
			}
		}
		for h := 0; h < f%4; h++ {
			ev.Headers = append(ev.Headers, Header{Key: fmt.Sprintf("h%d", h), Value: bytes.Repeat([]byte{'v'}, h)})
		}
		evs = append(evs, ev)
	}
	return evs
}

// checkEvent compares a decoded event with the event encoded.
func checkEvent(t testing.TB, i int, got *Event, want *EventIn) {
	t.Helper()
	if (got.Key == nil) != (want.Key == nil) || !bytes.Equal(got.Key, want.Key) {
		t.Fatalf("event %d: key %q (nil %v), want %q (nil %v)", i, got.Key, got.Key == nil, want.Key, want.Key == nil)
	}
	if (got.Value == nil) != (want.Value == nil) || !bytes.Equal(got.Value, want.Value) {
		t.Fatalf("event %d: value %q (nil %v), want %q (nil %v)", i, got.Value, got.Value == nil, want.Value, want.Value == nil)
	}
	if got.HasMask != want.HasMask || got.HasMask && got.Mask != want.Mask {
		t.Fatalf("event %d: mask %v/%x, want %v/%x", i, got.HasMask, got.Mask, want.HasMask, want.Mask)
	}
	if got.HasPriority != want.HasPriority || got.HasPriority && got.Priority != want.Priority {
		t.Fatalf("event %d: priority %v/%d, want %v/%d", i, got.HasPriority, got.Priority, want.HasPriority, want.Priority)
	}
	if got.HasTimestamp != want.HasTimestamp || got.HasTimestamp && got.TimestampMs != want.TimestampMs {
		t.Fatalf("event %d: timestamp %v/%d, want %v/%d", i, got.HasTimestamp, got.TimestampMs, want.HasTimestamp, want.TimestampMs)
	}
	if got.NumHeaders != len(want.Headers) {
		t.Fatalf("event %d: %d headers, want %d", i, got.NumHeaders, len(want.Headers))
	}
	if got.Size != want.Size() {
		t.Fatalf("event %d: size %d, want %d", i, got.Size, want.Size())
	}
	hi := got.Headers()
	for j := range want.Headers {
		k, v, ok := hi.Next()
		if !ok || string(k) != want.Headers[j].Key || !bytes.Equal(v, want.Headers[j].Value) {
			t.Fatalf("event %d header %d: %q=%q ok %v, want %q=%q", i, j, k, v, ok, want.Headers[j].Key, want.Headers[j].Value)
		}
	}
	if _, _, ok := hi.Next(); ok {
		t.Fatalf("event %d: extra header", i)
	}
}

// buildBatch returns a valid RecordBatch v2 holding n records.
func buildBatch(n int, value string) []byte {
	var b batch.Builder
	b.Reset(-1, -1, -1)
	for i := range n {
		b.Add(1_700_000_000_000+int64(i), []byte("k"), []byte(value))
	}
	return append([]byte(nil), b.Finish()...)
}
