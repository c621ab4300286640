package httpedge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// FuzzNDJSON feeds the NDJSON decoder arbitrary bodies: it must never
// panic, and it either accepts the body with one decoded entry per event
// (at most the limit) or refuses it whole, naming a line that exists.
func FuzzNDJSON(f *testing.F) {
	for _, s := range []string{
		"",
		"\n\n",
		`{"key":"k","value":"v","headers":{"a":"b"},"jurisdiction":"MA,SN","priority":"critical","timestamp":"2026-11-22T08:00:00Z"}` + "\n",
		`{"value_b64":"AP8=","timestamp":1700000000000}`,
		`{"value":"a"}{"value":"b"}`,
		`{"value":` + "\n" + `"split"}`,
		`{"value":"a","value_b64":"YQ=="}`,
		`{"jurisdiction":["MA"]}`,
		`{"jurisdiction":"XX"}`,
		`{"priority":"urgent"}`,
		`{"timestamp":-1}`,
		`{"timestamp":99999999999999999999999}`,
		`{"timestamp":"9999-99-99"}`,
		`{"headers":{"sense.j":"x"}}`,
		`{"headers":null,"key":null,"value":null}`,
		`[1,2,3]`,
		`"just text"`,
		`{"value":"` + "\xff\xfe" + `"}`,
		`{"value":"\u0000\ud800"}`,
		"{}\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\n",
		`{"unknown":1}`,
		`{"value":"unterminated`,
		"\ufeff{}",
	} {
		f.Add([]byte(s))
	}
	reg, err := jurisdiction.New([]string{"MA", "SN"}, map[string][]string{"WEST": {"SN"}})
	if err != nil {
		f.Fatal(err)
	}
	const limit = 5
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		var d decoded
		err := decodeNDJSON(body, limit, reg, &d)
		if !bytes.Equal(body, orig) {
			t.Fatal("the decoder changed the body")
		}
		var me *malformedError
		var tm *tooManyEventsError
		switch {
		case err == nil:
			if len(d.events) > limit || len(d.codes) != len(d.events) || len(d.msgs) != len(d.events) {
				t.Fatalf("%d events, %d codes, %d messages", len(d.events), len(d.codes), len(d.msgs))
			}
			for i, c := range d.codes {
				if c != result.OK && d.msgs[i] == "" {
					t.Fatalf("event %d refused with %v and no message", i, c)
				}
				if c == result.OK && d.events[i].Mask != 0 && !reg.Contains(d.events[i].Mask) {
					t.Fatalf("event %d accepted with mask %x", i, d.events[i].Mask)
				}
			}
		case errors.As(err, &me):
			if me.line < 1 || me.line > bytes.Count(body, []byte{'\n'})+1 {
				t.Fatalf("line %d of a body of %d lines: %v", me.line, bytes.Count(body, []byte{'\n'})+1, err)
			}
		case errors.As(err, &tm):
		default:
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}

// FuzzBatchBody feeds batch bodies, behind the PRODUCE prefix the edge
// adds, to wire's decoder as the edge uses it.
func FuzzBatchBody(f *testing.F) {
	good := wire.AppendBatchBody(nil, []wire.EventIn{
		{Key: []byte("k"), Value: []byte("v"), Headers: []wire.Header{{Key: "h", Value: []byte("x")}}},
		{HasMask: true, Mask: 1, HasPriority: true, Priority: 2, HasTimestamp: true, TimestampMs: 5},
		{HasMask: true, Mask: 0},
	})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})                                 // huge count
	f.Add(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 1}, 0x1f))        // bad flags
	f.Add([]byte{0, 0, 0, 1, 0x01, 0x7f, 0xff, 0xff, 0xff, 0, 0})         // key length past the end
	f.Add([]byte{0, 0, 0, 1, 0x00, 0xff, 0xff})                           // header count past the end
	f.Add(append(bytes.Clone(good), 0))                                   // trailing byte
	f.Add([]byte{0, 0, 0, 2, 0x10, 0, 0, 0, 1, 'v', 0, 0, 0, 0, 0, 0, 0}) // second event truncated
	lim := wire.Limits{MaxEventsPerProduce: 4, MaxEventBytes: 64}
	f.Fuzz(func(t *testing.T, body []byte) {
		const name = "fuzz"
		payload := make([]byte, wire.BatchBodyPrefixLen(name)+len(body))
		copy(payload[wire.BatchBodyPrefixLen(name):], body)
		wire.PutBatchBodyPrefix(payload, name)
		var d decoded
		err := decodeBatch(payload, lim, &d)
		var me *malformedError
		var tm *tooManyEventsError
		switch {
		case err == nil:
			if len(d.events) > 4 || len(d.codes) != len(d.events) {
				t.Fatalf("%d events, %d codes", len(d.events), len(d.codes))
			}
			for i, ev := range d.events {
				if d.codes[i] == result.OK && len(ev.Key)+len(ev.Value) > 64 {
					t.Fatalf("event %d over the size limit accepted", i)
				}
			}
		case errors.As(err, &me), errors.As(err, &tm):
		default:
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}
