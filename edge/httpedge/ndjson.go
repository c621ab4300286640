package httpedge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/ingest"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
)

// An NDJSON produce body holds one JSON object per line; blank lines are
// skipped. The fields of an event, all optional:
//
//	key           text
//	value         text; null or absent: a null value
//	value_b64     the value in base64 (standard alphabet, padded); not with value
//	headers       an object of text to text
//	jurisdiction  a jurisdiction set as text: codes, groups or "*", comma separated ("MA,SN")
//	priority      "low", "medium" or "critical"
//	timestamp     RFC 3339 text, or a whole number of unix milliseconds
//
// Unknown fields, a line that is not one JSON object, wrong types, bad
// base64 and bad timestamps make the request malformed (nothing is
// stored); an unregistered jurisdiction or an unknown priority refuses only
// that event (INVALID_MASK, INVALID_PRIORITY).

// lineEvent is one NDJSON line as encoding/json sees it.
type lineEvent struct {
	Key          *string           `json:"key"`
	Value        *string           `json:"value"`
	ValueB64     *string           `json:"value_b64"`
	Headers      map[string]string `json:"headers"`
	Jurisdiction *string           `json:"jurisdiction"`
	Priority     *string           `json:"priority"`
	Timestamp    json.RawMessage   `json:"timestamp"`
}

// decoded is a produce request's events as the edge decoded them. An event
// whose code is not CodeNone was refused by the edge and is not handed to
// the node; msg[i] then says why.
type decoded struct {
	events []node.Event
	codes  []result.Code
	msgs   []string
	in     ingest.Request // a batch body's events (decodeBatch)
}

func (d *decoded) reset() {
	d.events, d.codes, d.msgs = d.events[:0], d.codes[:0], d.msgs[:0]
}

func (d *decoded) add(ev node.Event, code result.Code, msg string) {
	d.events = append(d.events, ev)
	d.codes = append(d.codes, code)
	d.msgs = append(d.msgs, msg)
}

// malformedError is a produce body that cannot be decoded; nothing of the
// request is stored.
type malformedError struct {
	line int // 1-based line of an NDJSON body, 0 when not about a line
	msg  string
}

func (e *malformedError) Error() string {
	if e.line > 0 {
		return "line " + strconv.Itoa(e.line) + ": " + e.msg
	}
	return e.msg
}

// tooManyEventsError is a body with more events than allowed.
type tooManyEventsError struct{ max int }

func (e *tooManyEventsError) Error() string {
	return "more than " + strconv.Itoa(e.max) + " events in one request (http.max_events_per_request); split it"
}

// isSpace reports JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeNDJSON decodes body into d. reg resolves jurisdictions. It returns
// a *malformedError or a *tooManyEventsError when the whole request must be
// refused. The events' bytes alias the strings it decodes, never body.
func decodeNDJSON(body []byte, maxEvents int, reg *jurisdiction.Registry, d *decoded) error {
	d.reset()
	// Size the slices once: a line holds at most one event.
	if lines := bytes.Count(body, []byte{'\n'}) + 1; lines > cap(d.events) {
		n := min(lines, maxEvents+1)
		d.events = make([]node.Event, 0, n)
		d.codes = make([]result.Code, 0, n)
		d.msgs = make([]string, 0, n)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	prevEnd, line := 0, 1
	for {
		start := prevEnd
		for start < len(body) && isSpace(body[start]) {
			start++
		}
		gap := body[prevEnd:start]
		line += bytes.Count(gap, []byte{'\n'})
		if start == len(body) {
			return nil
		}
		if len(d.events) > 0 && bytes.IndexByte(gap, '\n') < 0 {
			return &malformedError{line, "a second JSON value on the line; put one event per line"}
		}
		if body[start] != '{' {
			return &malformedError{line, "not a JSON object; each line holds one event such as {\"key\":\"k\",\"value\":\"v\"}"}
		}
		if len(d.events) == maxEvents {
			return &tooManyEventsError{maxEvents}
		}
		var le lineEvent
		if err := dec.Decode(&le); err != nil {
			return &malformedError{line, jsonMessage(err)}
		}
		end := int(dec.InputOffset())
		if bytes.IndexByte(body[start:end], '\n') >= 0 {
			return &malformedError{line, "the event spans several lines; write each event on one line"}
		}
		prevEnd = end
		if err := le.toEvent(reg, d); err != nil {
			return &malformedError{line, err.Error()}
		}
	}
}

// jsonMessage turns an encoding/json error into a message for the user.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "text"
		switch te.Field {
		case "headers":
			want = `an object of text values, such as {"trace":"abc"}`
		case "jurisdiction":
			want = `text such as "MA,SN" (codes, groups or "*", comma separated), not a list`
		}
		if te.Field == "" {
			return "not a JSON object"
		}
		return te.Field + " is " + te.Value + "; it must be " + want
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated JSON object"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// bytesOf returns s's bytes without copying; nothing writes to them (the
// node copies events into record batches). A present empty string stays a
// non-nil empty slice, which the batch encodes as empty, not null.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// toEvent appends the event (or, for a per-event refusal, its code) to d,
// or returns what makes the line malformed.
func (le *lineEvent) toEvent(reg *jurisdiction.Registry, d *decoded) error {
	var ev node.Event
	if le.Key != nil {
		ev.Key = bytesOf(*le.Key)
	}
	switch {
	case le.Value != nil && le.ValueB64 != nil:
		return errors.New("both value and value_b64 are given; send one")
	case le.Value != nil:
		ev.Value = bytesOf(*le.Value)
	case le.ValueB64 != nil:
		v, err := base64.StdEncoding.DecodeString(*le.ValueB64)
		if err != nil {
			return errors.New("value_b64 is not base64 (standard alphabet with padding, RFC 4648 section 4): " + err.Error())
		}
		ev.Value = v
	}
	if len(le.Headers) > 0 {
		keys := make([]string, 0, len(le.Headers))
		for k := range le.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		ev.Headers = make([]batch.RawHeader, len(keys))
		for i, k := range keys {
			ev.Headers[i] = batch.RawHeader{Key: bytesOf(k), Value: bytesOf(le.Headers[k])}
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "sense.") {
				return errors.New("header " + strconv.Quote(k) + " uses the reserved prefix sense.; use the jurisdiction and priority fields")
			}
		}
	}
	if len(le.Timestamp) > 0 && string(le.Timestamp) != "null" {
		ms, err := parseTimestamp(le.Timestamp)
		if err != nil {
			return err
		}
		ev.TimestampMs = ms
	}
	if le.Priority != nil {
		p, err := event.ParsePriority(*le.Priority)
		if err != nil {
			d.add(ev, result.InvalidPriority, "priority "+strconv.Quote(*le.Priority)+" is not low, medium or critical")
			return nil
		}
		ev.HasPriority, ev.Priority = true, p
	}
	if le.Jurisdiction != nil {
		m, err := reg.Parse(*le.Jurisdiction)
		if err != nil {
			d.add(ev, result.InvalidMask, "jurisdiction "+strconv.Quote(*le.Jurisdiction)+": "+jurisdictionMessage(err, reg))
			return nil
		}
		ev.Mask = m
	}
	d.add(ev, result.OK, "")
	return nil
}

// jurisdictionMessage explains a jurisdiction set the registry refused.
func jurisdictionMessage(err error, reg *jurisdiction.Registry) string {
	var uc *jurisdiction.UnknownCodeError
	if errors.As(err, &uc) {
		return strconv.Quote(uc.Code) + " is not a registered jurisdiction or group (registered: " +
			strings.Join(reg.Codes(), ",") + ")"
	}
	return strings.TrimPrefix(err.Error(), "jurisdiction: ")
}

// parseTimestamp reads RFC 3339 text or whole unix milliseconds, at or
// after 1970.
func parseTimestamp(raw json.RawMessage) (int64, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("timestamp is not valid JSON text")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, errors.New("timestamp " + strconv.Quote(s) + " is not RFC 3339 (such as 2026-11-22T08:00:00.123Z)")
		}
		if t.Before(time.Unix(0, 0)) {
			return 0, errors.New("timestamp " + strconv.Quote(s) + " is before 1970")
		}
		return t.UnixMilli(), nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < 0 {
		return 0, errors.New("timestamp " + string(raw) + " is neither RFC 3339 text nor a whole, non-negative number of unix milliseconds")
	}
	return ms, nil
}
