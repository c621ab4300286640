package httpedge

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sensehq/sense/edge/ingest"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Request headers that set defaults for the events of a produce request
// that carry none.
const (
	HeaderJurisdiction = "Sense-Jurisdiction"
	HeaderPriority     = "Sense-Priority"
)

// produceJob is the reusable state of one produce request.
type produceJob struct {
	buf []byte
	d   decoded
	req node.ProduceRequest
	idx []int         // node event k is request event idx[k]
	res []node.Result // the node's results, per node event
	all []node.Result // the results of every request event
	out []byte
}

var jobPool = sync.Pool{New: func() any { return new(produceJob) }}

// produce handles POST /v1/pipelines/{name}/events.
func (h *handler) produce(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if !h.isReady() {
		writeError(w, http.StatusServiceUnavailable, result.NotReady, "the node is starting or stopping; retry shortly")
		return
	}
	name := r.PathValue("name")
	if err := event.ValidatePipelineName(name); err != nil {
		writeError(w, http.StatusBadRequest, result.InvalidPipelineName, err.Error())
		return
	}
	if !h.authorize(w, r, security.Write, security.PipelineResource(name)) {
		return
	}
	batchBody, ok := bodyFormat(r.Header.Get("Content-Type"))
	if !ok {
		writeError(w, http.StatusUnsupportedMediaType, result.InvalidRequest,
			"Content-Type "+strconv.Quote(r.Header.Get("Content-Type"))+" is not accepted; send application/x-ndjson (NDJSON) or "+BatchContentType)
		return
	}
	reg := h.n.Registry()
	var defMask jurisdiction.Mask
	if v := r.Header.Get(HeaderJurisdiction); v != "" {
		m, err := reg.Parse(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, result.InvalidMask, HeaderJurisdiction+" "+strconv.Quote(v)+": "+jurisdictionMessage(err, reg))
			return
		}
		defMask = m
	}
	var defPrio event.Priority
	hasPrio := false
	if v := r.Header.Get(HeaderPriority); v != "" {
		p, err := event.ParsePriority(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, result.InvalidPriority, HeaderPriority+" "+strconv.Quote(v)+" is not low, medium or critical")
			return
		}
		defPrio, hasPrio = p, true
	}

	// Reserve memory before reading: the declared length when there is
	// one (checked against the limit first), else the most a body may be;
	// the excess is given back once the body is read.
	limit := h.opts.MaxBodyBytes
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, result.RequestTooLarge,
			"body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes is larger than http.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
		return
	}
	want := limit
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	reserved := ingest.BodyMemory(want)
	if err := h.n.Reserve(r.Context(), reserved); err != nil {
		return // the client went away while the budget was full
	}
	defer func() { h.n.Release(reserved) }()

	j := jobPool.Get().(*produceJob)
	defer putJob(j)
	prefix := 0
	if batchBody {
		prefix = wire.BatchBodyPrefixLen(name)
	}
	body, err := readBody(j.buf[:0], prefix, r.ContentLength, http.MaxBytesReader(w, r.Body, limit))
	j.buf = body
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, result.RequestTooLarge,
				"body is larger than http.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
			return
		}
		h.log.Debug("HTTP produce: reading the body failed", "pipeline", name, "err", err)
		writeError(w, http.StatusBadRequest, result.Malformed, "the body could not be read: "+err.Error())
		return
	}
	if actual := ingest.BodyMemory(int64(len(body))); actual < reserved {
		h.n.Release(reserved - actual)
		reserved = actual
	}

	if batchBody {
		wire.PutBatchBodyPrefix(body, name)
		err = decodeBatch(body, wire.Limits{MaxEventsPerProduce: h.opts.MaxEventsPerRequest, MaxEventBytes: h.opts.MaxEventBytes}, &j.d)
	} else {
		err = decodeNDJSON(body, h.opts.MaxEventsPerRequest, reg, &j.d)
	}
	var tm *tooManyEventsError
	var me *malformedError
	switch {
	case errors.As(err, &tm):
		writeError(w, http.StatusRequestEntityTooLarge, result.RequestTooLarge, tm.Error())
		return
	case errors.As(err, &me):
		writeMalformed(w, me)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, result.Malformed, err.Error())
		return
	}

	// Hand the events the edge accepted to the node.
	d := &j.d
	j.req = node.ProduceRequest{Pipeline: name, ProducerID: -1, Epoch: -1, BaseSequence: -1, Events: j.req.Events[:0], Arrived: arrived}
	j.idx = j.idx[:0]
	for i := range d.events {
		if d.codes[i] != result.OK {
			continue
		}
		ev := d.events[i]
		if ev.Mask == 0 {
			ev.Mask = defMask
		}
		if !ev.HasPriority && hasPrio {
			ev.HasPriority, ev.Priority = true, defPrio
		}
		j.req.Events = append(j.req.Events, ev)
		j.idx = append(j.idx, i)
	}
	if len(j.req.Events) > 0 {
		j.res = growRes(j.res, len(j.req.Events))
		pd, err := h.n.StartProduce(r.Context(), &j.req, j.res)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, result.Timeout, "the request ended before its events were handled: "+err.Error())
			return
		}
		pd.Wait()
	}
	j.all = growRes(j.all, len(d.events))
	for k, i := range j.idx {
		j.all[i] = j.res[k]
		d.codes[i] = result.Code(j.res[k].Code)
	}
	status, retry := produceStatus(d.codes)
	j.out = appendResults(j.out[:0], d, j.all)
	w.Header().Set("Content-Type", "application/json")
	if retry {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	w.Write(j.out)
}

func putJob(j *produceJob) {
	if cap(j.buf) > 4<<20 || cap(j.d.events) > 1<<16 {
		return // let large requests' memory go
	}
	clear(j.req.Events[:cap(j.req.Events)])
	clear(j.d.events[:cap(j.d.events)])
	j.d.in.Release()
	j.req.Events = j.req.Events[:0]
	jobPool.Put(j)
}

// bodyFormat reads the Content-Type: batch reports the native batch
// encoding; ok is false for a type that is neither it nor NDJSON. No type,
// application/x-ndjson, application/jsonl, application/json and text/plain
// are read as NDJSON.
func bodyFormat(ct string) (batch, ok bool) {
	if ct == "" {
		return false, true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false
	}
	switch mt {
	case BatchContentType:
		return true, true
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json", "text/plain",
		"application/x-www-form-urlencoded": // curl --data's default
		return false, true
	}
	return false, false
}

// readBody reads a body of declared length (-1: unknown) into dst after
// prefix bytes of room, allocating once when the length is known.
func readBody(dst []byte, prefix int, length int64, r io.Reader) ([]byte, error) {
	if length >= 0 {
		n := prefix + int(length)
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		dst = dst[:n]
		if _, err := io.ReadFull(r, dst[prefix:]); err != nil {
			return dst[:0], err
		}
		// A body longer than declared is cut by net/http; read to EOF so
		// that the limit and framing errors surface.
		var one [1]byte
		if k, err := r.Read(one[:]); k > 0 || (err != nil && err != io.EOF) {
			if err == nil {
				err = errors.New("body longer than its Content-Length")
			}
			return dst[:0], err
		}
		return dst, nil
	}
	if cap(dst) < prefix+4096 {
		dst = make([]byte, prefix, prefix+64<<10)
	}
	dst = dst[:prefix]
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		k, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+k]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:0], err
		}
	}
}

func growRes(s []node.Result, n int) []node.Result {
	if cap(s) < n {
		return make([]node.Result, n)
	}
	return s[:n]
}

// produceStatus sums up the per-event codes: 200 when every event is
// stored (or there are none); when none is: 429 if all were shed for
// overload, 404 for an unknown pipeline, 503 when the node is not ready;
// 207 otherwise. retry asks for a Retry-After header (some events were
// shed).
func produceStatus(codes []result.Code) (status int, retry bool) {
	stored, shed, unknown, notReady := 0, 0, 0, 0
	for _, c := range codes {
		switch c {
		case result.OK:
			stored++
		case result.Overloaded:
			shed++
		case result.UnknownPipeline:
			unknown++
		case result.NotReady:
			notReady++
		}
	}
	n := len(codes)
	switch {
	case stored == n:
		return http.StatusOK, false
	case stored == 0 && shed == n:
		return http.StatusTooManyRequests, true
	case stored == 0 && unknown == n:
		return http.StatusNotFound, false
	case stored == 0 && notReady == n:
		return http.StatusServiceUnavailable, true
	}
	return http.StatusMultiStatus, shed > 0
}

// appendResults writes the response to a produce request:
//
//	{"stored":1,"refused":1,"results":[{"partition":0,"offset":42},{"error":"NO_COMPLIANT_HUB","message":"...","retriable":true}]}
//
// where all[i] is the node's result for a stored event i.
func appendResults(b []byte, d *decoded, all []node.Result) []byte {
	stored := 0
	for _, c := range d.codes {
		if c == result.OK {
			stored++
		}
	}
	b = append(b, `{"stored":`...)
	b = strconv.AppendInt(b, int64(stored), 10)
	b = append(b, `,"refused":`...)
	b = strconv.AppendInt(b, int64(len(d.codes)-stored), 10)
	b = append(b, `,"results":[`...)
	for i, c := range d.codes {
		if i > 0 {
			b = append(b, ',')
		}
		if c == result.OK {
			b = append(b, `{"partition":`...)
			b = strconv.AppendInt(b, int64(all[i].Partition), 10)
			b = append(b, `,"offset":`...)
			b = strconv.AppendInt(b, all[i].Offset, 10)
			b = append(b, '}')
			continue
		}
		msg := d.msgs[i]
		if msg == "" {
			msg = c.Explain()
		}
		b = append(b, `{"error":"`...)
		b = append(b, c.String()...)
		b = append(b, `","message":`...)
		b = appendJSONString(b, msg)
		b = append(b, `,"retriable":`...)
		b = strconv.AppendBool(b, c.Retriable())
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// writeError answers a request refused whole:
//
//	{"error":"REQUEST_TOO_LARGE","message":"..."}
func writeError(w http.ResponseWriter, status int, code result.Code, msg string) {
	b := append([]byte(`{"error":"`), code.String()...)
	b = append(b, `","message":`...)
	b = appendJSONString(b, msg)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	w.Write(b)
}

// writeMalformed answers a malformed body with 400, naming the line of an
// NDJSON body:
//
//	{"error":"MALFORMED","line":3,"message":"line 3: ..."}
func writeMalformed(w http.ResponseWriter, e *malformedError) {
	b := append([]byte(`{"error":"MALFORMED"`), `,"line":`...)
	b = strconv.AppendInt(b, int64(e.line), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Error())
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(b)
}
