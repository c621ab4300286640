package httpedge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Read limits.
const (
	defaultFetchMax = 100     // records per GET without max=
	maxFetchMax     = 10000   // the largest max= accepted
	fetchBytes      = 1 << 20 // bytes of batches read from the log at once
	// keepAlive is how often an idle event stream sends a comment, so that
	// proxies and clients see the connection alive.
	keepAlive = 15 * time.Second
)

// Record is one stored event as a GET returns it. Key and value are text
// when they are valid UTF-8, else base64 in key_b64 and value_b64; a null
// key or value is left out.
type Record struct {
	Offset       int64             `json:"offset"`
	Key          *string           `json:"key,omitempty"`
	KeyB64       []byte            `json:"key_b64,omitempty"`
	Value        *string           `json:"value,omitempty"`
	ValueB64     []byte            `json:"value_b64,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Jurisdiction string            `json:"jurisdiction"`
	Priority     string            `json:"priority"`
	Timestamp    string            `json:"timestamp"` // RFC 3339, UTC, milliseconds
}

// FetchResponse is the body of a GET without Accept: text/event-stream.
type FetchResponse struct {
	Partition     int32 `json:"partition"`
	HighWatermark int64 `json:"high_watermark"`
	// NextOffset is where the next read should start.
	NextOffset int64    `json:"next_offset"`
	Records    []Record `json:"records"`
}

// fetchQuery is a GET's parsed query.
type fetchQuery struct {
	partition int32
	offset    int64 // or node.Earliest, node.Latest
	max       int
}

func parseFetchQuery(r *http.Request, tail bool) (fetchQuery, string) {
	q := fetchQuery{offset: node.Earliest, max: defaultFetchMax}
	if tail {
		q.offset = node.Latest
	}
	v := r.URL.Query()
	if s := v.Get("partition"); s != "" {
		p, err := strconv.ParseInt(s, 10, 32)
		if err != nil || p < 0 {
			return q, "partition " + strconv.Quote(s) + " is not a partition number"
		}
		q.partition = int32(p)
	}
	switch s := v.Get("offset"); s {
	case "":
	case "earliest":
		q.offset = node.Earliest
	case "latest":
		q.offset = node.Latest
	default:
		o, err := strconv.ParseInt(s, 10, 64)
		if err != nil || o < 0 {
			return q, "offset " + strconv.Quote(s) + " is not an offset, earliest or latest"
		}
		q.offset = o
	}
	if tail {
		// An EventSource that reconnects says where it was.
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			o, err := strconv.ParseInt(id, 10, 64)
			if err != nil || o < 0 {
				return q, "Last-Event-ID " + strconv.Quote(id) + " is not an offset"
			}
			q.offset = o + 1
		}
	}
	if s := v.Get("max"); s != "" {
		m, err := strconv.Atoi(s)
		if err != nil || m < 1 || m > maxFetchMax {
			return q, "max " + strconv.Quote(s) + " is not a number from 1 to " + strconv.Itoa(maxFetchMax)
		}
		q.max = m
	}
	return q, ""
}

// wantsEventStream reports whether the client asked for Server-Sent Events.
func wantsEventStream(r *http.Request) bool {
	for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(a)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// fetch handles GET /v1/pipelines/{name}/events.
func (h *handler) fetch(w http.ResponseWriter, r *http.Request) {
	if !h.isReady() {
		writeError(w, http.StatusServiceUnavailable, result.NotReady, "the node is starting or stopping; retry shortly")
		return
	}
	name := r.PathValue("name")
	if !h.authorize(w, r, security.Read, security.PipelineResource(name)) {
		return
	}
	tail := wantsEventStream(r)
	q, bad := parseFetchQuery(r, tail)
	if bad != "" {
		writeError(w, http.StatusBadRequest, result.InvalidRequest, bad)
		return
	}
	off, start, hw, code := h.n.Resolve(name, q.partition, q.offset)
	switch code {
	case result.OK:
		q.offset = off
	case result.OffsetOutOfRange:
		writeError(w, code.HTTPStatus(), code,
			"offset "+strconv.FormatInt(off, 10)+" is outside ["+strconv.FormatInt(start, 10)+", "+strconv.FormatInt(hw, 10)+"]")
		return
	default:
		writeError(w, code.HTTPStatus(), code, "pipeline "+strconv.Quote(name)+" partition "+strconv.Itoa(int(q.partition))+": "+code.Explain())
		return
	}
	if tail {
		h.stream(w, r, name, q)
		return
	}
	rd := reader{n: h.n, reg: h.n.Registry(), pipeline: name, partition: q.partition, offset: q.offset, limit: h.readLimit(r, name)}
	ctx, cancel := context.WithTimeout(r.Context(), 0) // never wait for new data
	defer cancel()
	resp := FetchResponse{Partition: q.partition, Records: []Record{}}
	for len(resp.Records) < q.max {
		from := rd.offset
		recs, hw, code := rd.next(ctx, q.max-len(resp.Records))
		resp.HighWatermark = hw
		if code != result.OK {
			if len(resp.Records) == 0 {
				writeError(w, code.HTTPStatus(), code, "reading pipeline "+strconv.Quote(name)+": "+code.Explain())
				return
			}
			break
		}
		if len(recs) == 0 && rd.offset == from {
			break // nothing more now (a read limit may skip records: read on past them)
		}
		resp.Records = append(resp.Records, recs...)
	}
	if resp.HighWatermark < rd.offset {
		_, resp.HighWatermark, _ = h.n.Offsets(name, q.partition)
	}
	resp.NextOffset = rd.offset
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(resp)
}

// stream answers a GET with Accept: text/event-stream: one event per
// record (id: its offset, data: the record as JSON), flushed after each
// batch read, until the client goes away or the node stops.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, name string, q fetchQuery) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	rd := reader{n: h.n, reg: h.n.Registry(), pipeline: name, partition: q.partition, offset: q.offset, limit: h.readLimit(r, name)}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for r.Context().Err() == nil {
		ctx, cancel := context.WithTimeout(r.Context(), keepAlive)
		recs, _, code := rd.next(ctx, maxFetchMax)
		cancel()
		if code == result.OK && h.opts.Auth.Enabled() {
			// A stream lasts: an ACL removed since it began ends it,
			// and a changed read limit applies from the next read.
			p := security.FromContext(r.Context())
			if h.opts.Authorizer.Authorize(p, security.Read, security.PipelineResource(name)) != nil {
				code = result.Unauthorized
			}
			rd.limit = h.readLimit(r, name)
		}
		buf.Reset()
		if code != result.OK {
			buf.WriteString("event: error\ndata: ")
			enc.Encode(map[string]string{"error": result.Code(code).String(), "message": "the stream ended: " + result.Code(code).String()})
			buf.WriteString("\n")
			w.Write(buf.Bytes())
			rc.Flush()
			return
		}
		if len(recs) == 0 {
			buf.WriteString(": keep-alive\n\n")
		}
		for i := range recs {
			buf.WriteString("id: ")
			buf.WriteString(strconv.FormatInt(recs[i].Offset, 10))
			buf.WriteString("\ndata: ")
			enc.Encode(&recs[i]) // ends with the newline that closes the data line
			buf.WriteString("\n")
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// reader turns a partition's batches into Records from an offset on.
type reader struct {
	n         *node.Node
	reg       *jurisdiction.Registry
	pipeline  string
	partition int32
	offset    int64
	buf, dec  []byte
	// limit is the principal's read limit: records it does not allow
	// are removed by filter (offsets kept), and so skipped.
	limit  security.ReadLimit
	filter node.MaskFilter
	fbuf   []byte
}

// next reads up to limit records from the reader's offset, waiting for new
// ones until ctx ends (an ended ctx with nothing new is OK and no records),
// and advances the offset.
func (rd *reader) next(ctx context.Context, limit int) ([]Record, int64, result.Code) {
	var hw int64
	var code result.Code
	rd.buf, _, hw, code = rd.n.Fetch(ctx, rd.pipeline, rd.partition, rd.offset, fetchBytes, rd.buf[:0])
	if code != result.OK {
		return nil, hw, code
	}
	p := rd.buf
	if rd.limit.Limited() {
		var err error
		if rd.fbuf, err = rd.filter.Filter(rd.fbuf[:0], rd.buf, rd.limit.Allows); err != nil {
			return nil, hw, result.StorageError
		}
		p = rd.fbuf
	}
	var out []Record
	for len(p) > 0 && len(out) < limit {
		size, err := batch.Size(p)
		if err != nil || size > len(p) {
			return out, hw, result.StorageError
		}
		b := p[:size]
		p = p[size:]
		bh, err := batch.ParseHeader(b)
		if err != nil {
			return out, hw, result.StorageError
		}
		if bh.NextOffset() <= rd.offset {
			continue
		}
		if bh.Attributes&batch.AttrControl != 0 {
			// A transaction marker or a replicated log's own record:
			// no event; its offset is consumed.
			if len(out) < limit {
				rd.offset = bh.NextOffset()
			}
			continue
		}
		records, err := batch.Decompress(rd.dec[:0], b)
		if err != nil {
			return out, hw, result.StorageError
		}
		if bh.Compression() != batch.CompressionNone {
			rd.dec = records
		}
		it, err := batch.NewIterRecords(records, bh.RecordCount)
		if err != nil {
			return out, hw, result.StorageError
		}
		for it.Next() && len(out) < limit {
			rec := it.Record()
			off := bh.BaseOffset + int64(rec.OffsetDelta)
			if off < rd.offset {
				continue
			}
			out = append(out, rd.record(off, bh.BaseTimestamp+rec.TimestampDelta, rec))
			rd.offset = off + 1
		}
		if it.Err() != nil {
			return out, hw, result.StorageError
		}
		if len(out) < limit && rd.offset < bh.NextOffset() {
			rd.offset = bh.NextOffset() // records removed by compaction, or control records
		}
	}
	return out, hw, result.OK
}

func (rd *reader) record(off, ts int64, rec *batch.Record) Record {
	r := Record{Offset: off, Timestamp: time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	r.Key, r.KeyB64 = textOrBase64(rec.Key)
	r.Value, r.ValueB64 = textOrBase64(rec.Value)
	hi := rec.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		switch string(k) {
		case event.HeaderMask:
			if m, err := event.DecodeMaskHeader(v); err == nil {
				r.Jurisdiction = rd.reg.Format(m)
			}
			continue
		case event.HeaderPriority:
			if p, err := event.DecodePriorityHeader(v); err == nil {
				r.Priority = p.String()
			}
			continue
		}
		if r.Headers == nil {
			r.Headers = make(map[string]string)
		}
		r.Headers[string(k)] = headerText(v)
	}
	return r
}

// textOrBase64 returns p as text when it is valid UTF-8, else as bytes for
// base64; both nil for nil.
func textOrBase64(p []byte) (*string, []byte) {
	if p == nil {
		return nil, nil
	}
	if utf8.Valid(p) {
		s := string(p)
		return &s, nil
	}
	return nil, append([]byte(nil), p...)
}

// headerText returns a header value as text: itself when valid UTF-8, else
// "base64:" and its base64.
func headerText(v []byte) string {
	if utf8.Valid(v) {
		return string(v)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(v)
}
