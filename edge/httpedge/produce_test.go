package httpedge_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/edge/httpedge"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/sensetest"
)

// TestProduceConsume stores events over HTTP/1.1 and h2c and reads them
// back with GET, every field included.
func TestProduceConsume(t *testing.T) {
	srv := sensetest.Start(t, "")
	b := base(srv.HTTPAddr())
	for proto, c := range clients() {
		t.Run(proto, func(t *testing.T) {
			pipe := "p" + strings.NewReplacer("/", "", ".", "").Replace(proto)
			resp, pr := post(t, c, b, pipe, "application/x-ndjson", ndjson(
				`{"key":"k1","value":"hello","headers":{"trace":"abc","a":"b"},"priority":"low","timestamp":"2026-11-22T08:00:00.123Z"}`,
				``,
				`{"value_b64":"AP8=","timestamp":1700000000000,"jurisdiction":"*"}`,
				`{"key":"","value":""}`,
			), nil)
			if resp.Proto != proto {
				t.Errorf("answered over %s, want %s", resp.Proto, proto)
			}
			if resp.StatusCode != 200 || pr.Stored != 3 || len(pr.Results) != 3 {
				t.Fatalf("status %d, %+v", resp.StatusCode, pr)
			}
			for i, r := range pr.Results {
				if r.Error != "" || r.Offset == nil || *r.Offset != int64(i) || *r.Partition != 0 {
					t.Fatalf("result %d: %+v", i, r)
				}
			}
			code, fr := fetch(t, c, b, pipe, "partition=0&offset=0&max=10")
			if code != 200 || len(fr.Records) != 3 || fr.NextOffset != 3 || fr.HighWatermark != 3 {
				t.Fatalf("GET: %d %+v", code, fr)
			}
			r0, r1, r2 := fr.Records[0], fr.Records[1], fr.Records[2]
			if *r0.Key != "k1" || *r0.Value != "hello" || r0.Headers["trace"] != "abc" || r0.Priority != "low" ||
				r0.Timestamp != "2026-11-22T08:00:00.123Z" || r0.Jurisdiction != "ZZ" {
				t.Errorf("record 0: %+v", r0)
			}
			if r1.Key != nil || r1.Value != nil || !bytes.Equal(r1.ValueB64, []byte{0, 0xff}) || r1.Priority != "low" ||
				r1.Timestamp != "2023-11-14T22:13:20.000Z" || r1.Offset != 1 {
				t.Errorf("record 1: %+v", r1)
			}
			if r2.Key == nil || *r2.Key != "" || r2.Value == nil || *r2.Value != "" {
				t.Errorf("record 2 (empty key and value): %+v", r2)
			}
			// A read from the middle, and one past the end.
			if code, fr := fetch(t, c, b, pipe, "offset=2"); code != 200 || len(fr.Records) != 1 || fr.Records[0].Offset != 2 {
				t.Errorf("GET offset=2: %d %+v", code, fr)
			}
			if code, fr := fetch(t, c, b, pipe, "offset=latest"); code != 200 || len(fr.Records) != 0 || fr.NextOffset != 3 {
				t.Errorf("GET offset=latest: %d %+v", code, fr)
			}
			if code, _ := fetch(t, c, b, pipe, "offset=9"); code != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("GET offset=9: %d", code)
			}
			if code, _ := fetch(t, c, b, "nothere", ""); code != http.StatusNotFound {
				t.Errorf("GET unknown pipeline: %d", code)
			}
		})
	}
}

// TestBatchBody produces in the native batch encoding.
func TestBatchBody(t *testing.T) {
	srv := sensetest.Start(t, "jurisdictions: [MA, SN]\nhubs: [{name: tangier, jurisdiction: MA}]\n")
	c := clients()["HTTP/2.0"]
	b := base(srv.HTTPAddr())
	body := wire.AppendBatchBody(nil, []wire.EventIn{
		{Key: []byte("k"), Value: []byte("v1"), Headers: []wire.Header{{Key: "h", Value: []byte("x")}}},
		{Value: []byte("v2"), HasMask: true, Mask: 1, HasPriority: true, Priority: event.Medium, HasTimestamp: true, TimestampMs: 1000},
		{Value: []byte("v3"), HasMask: true, Mask: 2}, // SN: no hub
		{Value: []byte("v4"), HasMask: true, Mask: 0}, // invalid
	})
	resp, pr := post(t, c, b, "bin", httpedge.BatchContentType, bytes.NewReader(body), map[string]string{"Sense-Jurisdiction": "MA"})
	if resp.StatusCode != http.StatusMultiStatus || pr.Stored != 2 || pr.Refused != 2 {
		t.Fatalf("status %d: %+v", resp.StatusCode, pr)
	}
	if pr.Results[2].Error != "NO_COMPLIANT_HUB" || !pr.Results[2].Retriable || pr.Results[3].Error != "INVALID_MASK" {
		t.Errorf("results: %+v", pr.Results)
	}
	// Each priority class has its own lane, so v2 (medium) sits in
	// another partition than v1 (low).
	_, fr := fetch(t, c, b, "bin", fmt.Sprintf("partition=%d", *pr.Results[0].Partition))
	if len(fr.Records) != 1 || *fr.Records[0].Value != "v1" || fr.Records[0].Headers["h"] != "x" || fr.Records[0].Jurisdiction != "MA" ||
		*fr.Records[0].Key != "k" {
		t.Errorf("low records: %+v", fr.Records)
	}
	_, fr = fetch(t, c, b, "bin", fmt.Sprintf("partition=%d", *pr.Results[1].Partition))
	if len(fr.Records) != 1 || *fr.Records[0].Value != "v2" || fr.Records[0].Priority != "medium" || fr.Records[0].Timestamp != "1970-01-01T00:00:01.000Z" {
		t.Errorf("medium records: %+v", fr.Records)
	}
	// A truncated batch is malformed; a count over the limit is too large.
	resp, pr = post(t, c, b, "bin", httpedge.BatchContentType, bytes.NewReader(body[:len(body)-1]), nil)
	if resp.StatusCode != 400 || pr.Error != "MALFORMED" || !strings.Contains(pr.Message, "event 3") {
		t.Errorf("truncated: %d %+v", resp.StatusCode, pr)
	}
}

// TestJurisdictionRefusal: events whose jurisdictions have no hub are
// refused one by one (207), with their codes.
func TestJurisdictionRefusal(t *testing.T) {
	srv := sensetest.Start(t, "jurisdictions: [MA, SN]\nhubs: [{name: tangier, jurisdiction: MA}]\n")
	c := clients()["HTTP/2.0"]
	b := base(srv.HTTPAddr())
	resp, pr := post(t, c, b, "pay", "", ndjson(
		`{"value":"a","jurisdiction":"MA"}`,
		`{"value":"b","jurisdiction":"SN"}`,
		`{"value":"c","jurisdiction":"XX"}`,
		`{"value":"d","priority":"urgent"}`,
		`{"value":"e"}`,
	), map[string]string{"Sense-Jurisdiction": "ma, sn"})
	if resp.StatusCode != http.StatusMultiStatus || pr.Stored != 2 || pr.Refused != 3 {
		t.Fatalf("status %d: %+v", resp.StatusCode, pr)
	}
	want := []string{"", "NO_COMPLIANT_HUB", "INVALID_MASK", "INVALID_PRIORITY", ""}
	for i, r := range pr.Results {
		if r.Error != want[i] {
			t.Errorf("event %d: %+v, want %q", i, r, want[i])
		}
	}
	if !strings.Contains(pr.Results[2].Message, `"XX" is not a registered jurisdiction`) {
		t.Errorf("message: %q", pr.Results[2].Message)
	}
	// Only SN, by the header: every event refused, still 207.
	resp, pr = post(t, c, b, "pay", "", ndjson(`{"value":"x"}`, `{"value":"y"}`), map[string]string{"Sense-Jurisdiction": "SN"})
	if resp.StatusCode != http.StatusMultiStatus || pr.Stored != 0 || pr.Results[1].Error != "NO_COMPLIANT_HUB" {
		t.Fatalf("SN only: %d %+v", resp.StatusCode, pr)
	}
	// A bad request header refuses the whole request.
	for hdr, val := range map[string]string{"Sense-Jurisdiction": "QQ", "Sense-Priority": "urgent"} {
		resp, pr = post(t, c, b, "pay", "", ndjson(`{"value":"x"}`), map[string]string{hdr: val})
		if resp.StatusCode != 400 || pr.Error == "" || !strings.Contains(pr.Message, hdr) {
			t.Errorf("%s: %s: %d %+v", hdr, val, resp.StatusCode, pr)
		}
	}
	if _, fr := fetch(t, c, b, "pay", ""); len(fr.Records) != 2 || *fr.Records[0].Value != "a" || *fr.Records[1].Value != "e" ||
		fr.Records[1].Jurisdiction != "MA,SN" {
		t.Errorf("stored: %+v", fr.Records)
	}
}

// TestShedding: a request that takes the router past its thresholds has
// its low (then medium) events refused as OVERLOADED; critical ones are
// stored. All shed: 429 with Retry-After.
func TestShedding(t *testing.T) {
	srv := sensetest.Start(t, "router: {memory_limit: 1MiB}\n")
	c := clients()["HTTP/2.0"]
	b := base(srv.HTTPAddr())
	body := func(n int, prio ...string) string {
		var sb strings.Builder
		v := strings.Repeat("x", 1000)
		for i := range n {
			fmt.Fprintf(&sb, `{"value":"%s","priority":"%s"}`+"\n", v, prio[i%len(prio)])
		}
		return sb.String()
	}
	// ~200 KiB reserves ~600 KiB of 1 MiB: past shed_low_at (0.5).
	resp, pr := post(t, c, b, "load", "", strings.NewReader(body(200, "low")), nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || pr.Stored != 0 || pr.Results[0].Error != "OVERLOADED" {
		t.Fatalf("low: %d %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), pr.Results[0])
	}
	resp, pr = post(t, c, b, "load", "", strings.NewReader(body(200, "medium")), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("medium below its threshold: %d %+v", resp.StatusCode, pr.Results[0])
	}
	// ~300 KiB reserves ~900 KiB: past shed_medium_at (0.8) too.
	resp, pr = post(t, c, b, "load", "", strings.NewReader(body(300, "low", "medium", "critical")), nil)
	if resp.StatusCode != http.StatusMultiStatus || resp.Header.Get("Retry-After") == "" || pr.Stored != 100 {
		t.Fatalf("mixed: %d stored %d", resp.StatusCode, pr.Stored)
	}
	for i, r := range pr.Results {
		if (i%3 == 2) != (r.Error == "") || (r.Error != "" && r.Error != "OVERLOADED") {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	// Small requests are not shed.
	if resp, _ := post(t, c, b, "load", "", strings.NewReader(body(2, "low")), nil); resp.StatusCode != 200 {
		t.Fatalf("small: %d", resp.StatusCode)
	}
}

// TestMalformed: a bad line refuses the whole request, naming the line,
// and stores nothing.
func TestMalformed(t *testing.T) {
	srv := sensetest.Start(t, "")
	c := clients()["HTTP/1.1"]
	b := base(srv.HTTPAddr())
	good := `{"value":"ok"}`
	tests := []struct {
		name string
		bad  string
		line int
		msg  string
	}{
		{"not JSON", `{"value":`, 3, "truncated"},
		{"unknown field", `{"vaule":"x"}`, 3, `unknown field "vaule"`},
		{"two values", good + ` ` + good, 3, "one event per line"},
		{"not an object", `["x"]`, 3, "not a JSON object"},
		{"bad base64", `{"value_b64":"%%%"}`, 3, "not base64"},
		{"value twice", `{"value":"a","value_b64":"YQ=="}`, 3, "both value and value_b64"},
		{"bad timestamp", `{"timestamp":"yesterday"}`, 3, "not RFC 3339"},
		{"fractional timestamp", `{"timestamp":1.5}`, 3, "unix milliseconds"},
		{"jurisdiction list", `{"jurisdiction":["MA"]}`, 3, `such as "MA,SN"`},
		{"header not text", `{"headers":{"a":1}}`, 3, `headers is number; it must be an object of text values`},
		{"reserved header", `{"headers":{"sense.j":"x"}}`, 3, "reserved prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, pr := post(t, c, b, "m", "application/x-ndjson", strings.NewReader(good+"\n\n"+tt.bad+"\n"+good+"\n"), nil)
			if resp.StatusCode != 400 || pr.Error != "MALFORMED" || pr.Line != tt.line || !strings.Contains(pr.Message, tt.msg) {
				t.Fatalf("%d %+v; want line %d saying %q", resp.StatusCode, pr, tt.line, tt.msg)
			}
		})
	}
	if code, fr := fetch(t, c, b, "m", ""); code == 200 && len(fr.Records) != 0 {
		t.Fatalf("a malformed request stored %d events", len(fr.Records))
	}
	resp, pr := post(t, c, b, "m", "image/png", strings.NewReader(good), nil)
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(pr.Message, "application/x-ndjson") {
		t.Errorf("content type: %d %+v", resp.StatusCode, pr)
	}
	resp, pr = post(t, c, b, "bad%20name", "", strings.NewReader(good), nil)
	if resp.StatusCode != 400 || pr.Error != "INVALID_PIPELINE_NAME" {
		t.Errorf("pipeline name: %d %+v", resp.StatusCode, pr)
	}
}

// TestTooLarge: bodies over http.max_body_bytes (declared or not) and
// requests over http.max_events_per_request get 413.
func TestTooLarge(t *testing.T) {
	srv := sensetest.Start(t, "http: {max_body_bytes: 1KiB, max_events_per_request: 3}\n")
	b := base(srv.HTTPAddr())
	big := strings.Repeat(`{"value":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`+"\n", 20)
	for proto, c := range clients() {
		// Declared length.
		resp, pr := post(t, c, b, "big", "", strings.NewReader(big), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || pr.Error != "REQUEST_TOO_LARGE" {
			t.Errorf("%s, Content-Length: %d %+v", proto, resp.StatusCode, pr)
		}
		// Unknown length (chunked, or h2 DATA frames without content-length).
		resp, pr = post(t, c, b, "big", "", io.MultiReader(strings.NewReader(big)), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || pr.Error != "REQUEST_TOO_LARGE" {
			t.Errorf("%s, chunked: %d %+v", proto, resp.StatusCode, pr)
		}
		resp, pr = post(t, c, b, "big", "", ndjson(`{}`, `{}`, `{}`, `{}`), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(pr.Message, "more than 3 events") {
			t.Errorf("%s, 4 events: %d %+v", proto, resp.StatusCode, pr)
		}
		resp, _ = post(t, c, b, "big", "", io.MultiReader(ndjson(`{}`, `{}`, `{}`)), nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s, 3 events chunked: %d", proto, resp.StatusCode)
		}
	}
}

// TestNotReady: a node that is not ready answers 503 with Retry-After.
func TestNotReady(t *testing.T) {
	srv := sensetest.Start(t, "")
	var ready atomic.Bool
	hs := httptest.NewServer(httpedge.Handler(srv.Node, &ready, httpedge.Options{}))
	defer hs.Close()
	resp, pr := post(t, hs.Client(), hs.URL, "p", "", ndjson(`{}`), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || pr.Error != "NOT_READY" {
		t.Fatalf("%d %+v", resp.StatusCode, pr)
	}
	if code, _ := fetch(t, hs.Client(), hs.URL, "p", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("GET: %d", code)
	}
	ready.Store(true)
	if resp, _ := post(t, hs.Client(), hs.URL, "p", "", ndjson(`{}`), nil); resp.StatusCode != 200 {
		t.Fatalf("once ready: %d", resp.StatusCode)
	}
}

// TestEventStream tails a partition with Server-Sent Events over h2c:
// records appended after the stream starts arrive, with their offsets as
// event ids.
func TestEventStream(t *testing.T) {
	srv := sensetest.Start(t, "")
	c := clients()["HTTP/2.0"]
	b := base(srv.HTTPAddr())
	if resp, _ := post(t, c, b, "tail", "", ndjson(`{"value":"before"}`), nil); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b+"/v1/pipelines/tail/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	go func() {
		for i := range 3 {
			time.Sleep(20 * time.Millisecond)
			post(t, c, b, "tail", "", ndjson(fmt.Sprintf(`{"value":"live %d"}`, i)), nil)
		}
	}()
	sc := bufio.NewScanner(resp.Body)
	var id string
	for got := 0; got < 3 && sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			var rec httpedge.Record
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &rec); err != nil {
				t.Fatal(err)
			}
			// The tail starts at the end: "before" (offset 0) is not sent.
			if want := fmt.Sprintf("live %d", got); *rec.Value != want || rec.Offset != int64(got+1) || id != fmt.Sprint(rec.Offset) {
				t.Fatalf("event %d: id %s %+v, want %q", got, id, rec, want)
			}
			got++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPS serves HTTP/2 over TLS with a configured certificate.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	srv := sensetest.Start(t, "", func(c *config.Config) { c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile} })
	b := "https://" + srv.HTTPAddr().String()
	for _, h2 := range []bool{true, false} {
		p := new(http.Protocols)
		p.SetHTTP1(!h2)
		p.SetHTTP2(h2)
		c := &http.Client{Transport: &http.Transport{Protocols: p, TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, pr := post(t, c, b, "secure", "", ndjson(`{"value":"s"}`), nil)
		if resp.StatusCode != 200 || pr.Stored != 1 || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("h2 %v: %s %d %+v", h2, resp.Proto, resp.StatusCode, pr)
		}
		if code, fr := fetch(t, c, b, "secure", ""); code != 200 || len(fr.Records) == 0 {
			t.Fatalf("GET over TLS: %d", code)
		}
	}
	// Plain HTTP on the TLS port is refused.
	if resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
}
