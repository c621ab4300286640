package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/edge/native/wire/quicwire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// This file is the client's HTTP transport (Options.Transport "http"):
// the node's HTTP listener, docs/http.md. Produce requests are POSTs of
// the native batch encoding, reads are GETs (Fetch) and Server-Sent Event
// tails (Consumer), admin calls are POSTs to /v1/admin.

// DefaultHTTPAddr is the HTTP listener a Client dials when Options.Addr is
// empty and Options.Transport is TransportHTTP.
const DefaultHTTPAddr = "127.0.0.1:8080"

// HTTP limits the client assumes: the node's defaults for
// http.max_events_per_request and http.max_body_bytes (a node configured
// lower refuses larger requests with REQUEST_TOO_LARGE).
const (
	httpMaxEvents    = 10_000
	httpMaxBodyBytes = 16 << 20
	httpMaxAnswer    = 64 << 20 // bytes of a response body the client reads
)

var (
	// ErrUnknownOutcome matches (errors.Is) the Result.Err of events whose
	// HTTP produce request reached the node but whose answer was lost: they
	// may or may not be stored. See *UnknownOutcomeError.
	ErrUnknownOutcome = errors.New("client: outcome unknown")
)

// UnknownOutcomeError is the Result.Err of the events of an HTTP produce
// request whose answer was lost after the request was sent (the
// connection broke, the answer could not be read, or a proxy answered
// with an error of its own). HTTP produce has no idempotence, so the
// producer does not resend such a request unless
// ProducerOptions.AtLeastOnce is set: the events may be stored once, or
// not at all, but never twice. errors.Is matches it with
// ErrUnknownOutcome and ErrConnectionLost.
type UnknownOutcomeError struct {
	URL    string
	Events int // events in the request
	Err    error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("client: POST %s: the answer was lost (%v); its %d events may or may not be stored, and were not resent: "+
		"HTTP produce is not idempotent (set ProducerOptions.AtLeastOnce to resend, or use transport tcp or quic)", e.URL, e.Err, e.Events)
}

// Unwrap returns the cause.
func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// Is matches ErrUnknownOutcome and ErrConnectionLost.
func (e *UnknownOutcomeError) Is(target error) bool {
	return target == ErrUnknownOutcome || target == ErrConnectionLost
}

// httpClient is what a Client holds over HTTP.
type httpClient struct {
	addr string // as given
	base string // scheme://host:port
	tr   *http.Transport
	hc   *http.Client
	// ctx ends when the Client is closed: every request runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	// cut, set by tests, is asked before each produce request: true serves
	// the request and then loses its answer.
	cut atomic.Pointer[func() bool]
}

// newHTTPClient builds the transport: h2c with prior knowledge for a plain
// address, HTTPS (HTTP/2 by ALPN) when Addr starts with https:// or a TLS
// option is set.
func newHTTPClient(o *Options) (*httpClient, error) {
	addr := o.Addr
	scheme := ""
	switch {
	case strings.HasPrefix(addr, "https://"):
		scheme, addr = "https", strings.TrimPrefix(addr, "https://")
	case strings.HasPrefix(addr, "http://"):
		scheme, addr = "http", strings.TrimPrefix(addr, "http://")
	}
	addr = strings.TrimSuffix(addr, "/")
	useTLS := o.TLSConfig != nil || o.InsecureSkipVerify || o.ServerFingerprint != ""
	if scheme == "http" && useTLS {
		return nil, fmt.Errorf("client: Options.Addr %q is http:// but a TLS option (TLSConfig, InsecureSkipVerify, ServerFingerprint) is set", o.Addr)
	}
	if scheme == "https" {
		useTLS = true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("client: Options.Addr %q: %w", o.Addr, err)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: o.DialTimeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	protos := new(http.Protocols)
	h := &httpClient{addr: o.Addr, tr: tr}
	if useTLS {
		tc, err := quicwire.ClientTLS(o.TLSConfig, host, o.ServerFingerprint, o.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		if o.TLSConfig == nil || o.TLSConfig.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		tc.NextProtos = []string{"h2", "http/1.1"}
		tr.TLSClientConfig = tc
		protos.SetHTTP2(true)
		protos.SetHTTP1(true) // only if the server does not offer h2
		h.base = "https://" + addr
	} else {
		protos.SetUnencryptedHTTP2(true) // prior knowledge: no upgrade, no HTTP/1.1
		h.base = "http://" + addr
	}
	tr.Protocols = protos
	h.hc = &http.Client{Transport: tr}
	if o.Token != "" || o.User != "" {
		h.hc.Transport = authTransport{tr, o.Token, o.User, o.Password}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// check makes the first request (GET /healthz), so that Dial fails on a
// wrong address, a refused certificate or a listener that is not Sense's.
func (h *httpClient) check(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("client: Options.Addr %q: %w", h.addr, err)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") {
			return fmt.Errorf("client: connect to Sense at %s over HTTPS: the server's certificate is not trusted: %w "+
				"(give its CA in Options.TLSConfig, or pin it with Options.ServerFingerprint)", h.base, err)
		}
		return fmt.Errorf("client: connect to Sense at %s over HTTP (is listeners.http on, and does it speak TLS only when the client does?): %w", h.base, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("client: connect to Sense at %s over HTTP: GET /healthz answered %s (is this a Sense HTTP listener?)", h.base, resp.Status)
	}
	return nil
}

func (h *httpClient) close() {
	h.cancel()
	h.tr.CloseIdleConnections()
}

// closed reports whether the Client was closed.
func (h *httpClient) closed() bool { return h.ctx.Err() != nil }

// reqContext returns a context that ends with ctx or with the Client.
func (h *httpClient) reqContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// errorBody is the JSON of a request refused whole:
// {"error":"CODE","message":"..."}.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// parseCode returns the code named name (CODE_N for codes this version
// does not know), or CodeUnknown.
func parseCode(name string) result.Code {
	for c := result.Code(0); c < 64; c++ {
		if c.String() == name {
			return c
		}
	}
	if n, ok := strings.CutPrefix(name, "CODE_"); ok {
		if v, err := strconv.ParseUint(n, 10, 16); err == nil {
			return result.Code(v)
		}
	}
	return result.Unknown
}

// statusError turns a refused request's answer into an error: a
// *result.Error when the body names a code, else one made from the status.
func statusError(resp *http.Response, body []byte) error {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return &result.Error{Code: parseCode(eb.Error), Message: eb.Message}
	}
	code := result.InvalidRequest
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		code = result.Overloaded
	case http.StatusServiceUnavailable:
		code = result.NotReady
	case http.StatusNotFound:
		code = result.UnknownPipeline
	case http.StatusRequestEntityTooLarge:
		code = result.RequestTooLarge
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return &result.Error{Code: code, Message: "HTTP " + resp.Status + ": " + msg}
}

// admin runs an admin request with POST /v1/admin.
func (h *httpClient) admin(ctx context.Context, req admin.Request) (admin.Response, error) {
	body, err := admin.Encode(req)
	if err != nil {
		return admin.Response{}, err
	}
	ctx, cancel := h.reqContext(ctx)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/admin", bytes.NewReader(body))
	if err != nil {
		return admin.Response{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	out, hresp, err := h.do(hr)
	if err != nil {
		return admin.Response{}, fmt.Errorf("client: admin %s: %w", req.Op(), err)
	}
	if hresp.StatusCode != http.StatusOK {
		e := statusError(hresp, out)
		return admin.Response{}, &AdminError{Op: req.Op(), Message: e.Error(), Err: e}
	}
	return adminAnswer(req, out)
}

// do sends req and reads the whole answer. A Client closed meanwhile is
// ErrClosed.
func (h *httpClient) do(req *http.Request) ([]byte, *http.Response, error) {
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, nil, h.connError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxAnswer))
	if err != nil {
		return nil, nil, h.connError(err)
	}
	return body, resp, nil
}

// connError wraps a transport error: ErrClosed after Close, else a
// *ConnError.
func (h *httpClient) connError(err error) error {
	if h.closed() {
		return ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &ConnError{Addr: h.base, Err: err}
}

// ping times GET /healthz.
func (h *httpClient) ping(ctx context.Context) (time.Duration, error) {
	ctx, cancel := h.reqContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/healthz", nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, resp, err := h.do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("client: GET /healthz: %s", resp.Status)
	}
	return time.Since(t0), err
}

func (h *httpClient) eventsURL(pipeline string) string {
	return h.base + "/v1/pipelines/" + url.PathEscape(pipeline) + "/events"
}

// offsetParam is the offset query parameter for an offset, Earliest or
// Latest.
func offsetParam(off int64) string {
	switch off {
	case Earliest:
		return "earliest"
	case Latest:
		return "latest"
	}
	return strconv.FormatInt(off, 10)
}

// fetchBody is the JSON of a GET.
type fetchBody struct {
	Partition     int32        `json:"partition"`
	HighWatermark int64        `json:"high_watermark"`
	NextOffset    int64        `json:"next_offset"`
	Records       []httpRecord `json:"records"`
}

// fetch reads once with GET /v1/pipelines/{name}/events.
func (c *Client) fetchHTTP(ctx context.Context, pipeline string, partition int32, offset int64) (FetchResult, error) {
	h := c.h
	res := FetchResult{HighWatermark: -1, NextOffset: offset}
	reg, err := c.Registry(ctx)
	if err != nil {
		return res, err
	}
	ctx, cancel := h.reqContext(ctx)
	defer cancel()
	u := h.eventsURL(pipeline) + "?partition=" + strconv.Itoa(int(partition)) + "&offset=" + offsetParam(offset) + "&max=10000"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return res, err
	}
	body, resp, err := h.do(req)
	if err != nil {
		return res, err
	}
	if resp.StatusCode != http.StatusOK {
		return res, statusError(resp, body)
	}
	var fb fetchBody
	if err := json.Unmarshal(body, &fb); err != nil {
		return res, fmt.Errorf("client: GET %s: the answer is not the expected JSON: %w", u, err)
	}
	res.HighWatermark, res.NextOffset = fb.HighWatermark, fb.NextOffset
	for i := range fb.Records {
		r, err := fb.Records[i].record(reg, pipeline, partition, "")
		if err != nil {
			return res, err
		}
		res.Records = append(res.Records, r)
	}
	return res, nil
}

// httpRecord is a record as the HTTP edge writes it (docs/http.md).
type httpRecord struct {
	Offset       int64             `json:"offset"`
	Key          *string           `json:"key"`
	KeyB64       []byte            `json:"key_b64"`
	Value        *string           `json:"value"`
	ValueB64     []byte            `json:"value_b64"`
	Headers      map[string]string `json:"headers"`
	Jurisdiction string            `json:"jurisdiction"`
	Priority     string            `json:"priority"`
	Timestamp    string            `json:"timestamp"`
}

// record converts r. Headers come sorted by key (the JSON object keeps no
// order); a header value written as "base64:..." is decoded.
func (r *httpRecord) record(reg *jurisdiction.Registry, pipeline string, partition int32, hub string) (Record, error) {
	rec := Record{Pipeline: pipeline, Partition: partition, Hub: hub, Offset: r.Offset, Key: r.KeyB64, Value: r.ValueB64}
	if r.Key != nil {
		rec.Key = []byte(*r.Key)
	}
	if r.Value != nil {
		rec.Value = []byte(*r.Value)
	}
	if len(r.Headers) > 0 {
		keys := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := []byte(r.Headers[k])
			if s, ok := strings.CutPrefix(r.Headers[k], "base64:"); ok {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil {
					v = b
				}
			}
			rec.Headers = append(rec.Headers, Header{Key: k, Value: v})
		}
	}
	if r.Jurisdiction != "" {
		m, err := reg.Parse(r.Jurisdiction)
		if err != nil {
			return rec, fmt.Errorf("client: %s partition %d offset %d: jurisdiction %q: %w", pipeline, partition, r.Offset, r.Jurisdiction, err)
		}
		rec.Mask = m
	}
	if r.Priority != "" {
		p, err := event.ParsePriority(r.Priority)
		if err != nil {
			return rec, fmt.Errorf("client: %s partition %d offset %d: priority %q: %w", pipeline, partition, r.Offset, r.Priority, err)
		}
		rec.Priority, rec.HasPriority = p, true
	}
	if r.Timestamp != "" {
		ts, err := time.Parse(time.RFC3339Nano, r.Timestamp)
		if err != nil {
			return rec, fmt.Errorf("client: %s partition %d offset %d: timestamp %q: %w", pipeline, partition, r.Offset, r.Timestamp, err)
		}
		rec.Timestamp = time.UnixMilli(ts.UnixMilli())
	}
	return rec, nil
}

// httpAnswer is the outcome of one HTTP produce request.
type httpAnswer struct {
	// err is set when no usable answer came: sent tells whether the
	// request reached a connection (its outcome is then unknown) or not
	// (nothing was stored).
	err  error
	sent bool
	// results, when the node answered per event; else reqErr, the
	// refusal of the whole request (nothing stored).
	results []wire.EventResult
	reqErr  *result.Error
}

// produceBody is the JSON of a produce answer.
type produceBody struct {
	Results []struct {
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Error     string `json:"error"`
	} `json:"results"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// produce POSTs a batch body of n events to pipeline.
func (h *httpClient) produce(ctx context.Context, pipeline string, body []byte, n int) httpAnswer {
	u := h.eventsURL(pipeline)
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return httpAnswer{err: err}
	}
	req.Header.Set("Content-Type", wire.BatchContentType)
	resp, err := h.hc.Do(req)
	if err != nil {
		return httpAnswer{err: err, sent: sent.Load()}
	}
	defer resp.Body.Close()
	if cut := h.cut.Load(); cut != nil && (*cut)() {
		io.Copy(io.Discard, resp.Body)
		return httpAnswer{err: errCut, sent: true}
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxAnswer))
	if err != nil {
		return httpAnswer{err: err, sent: true}
	}
	var pb produceBody
	jerr := json.Unmarshal(out, &pb)
	switch {
	case jerr == nil && len(pb.Results) == n && n > 0:
		a := httpAnswer{results: make([]wire.EventResult, n)}
		for i, r := range pb.Results {
			a.results[i] = wire.EventResult{Code: result.OK, Partition: r.Partition, Offset: r.Offset}
			if r.Error != "" {
				a.results[i] = wire.EventResult{Code: parseCode(r.Error), Partition: -1, Offset: -1}
			}
		}
		return a
	case jerr == nil && pb.Error != "":
		return httpAnswer{reqErr: &result.Error{Code: parseCode(pb.Error), Message: pb.Message}}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable ||
		(resp.StatusCode >= 400 && resp.StatusCode < 500):
		// Refused before the node saw the events (a proxy, or a node
		// that could not say more): nothing was stored.
		return httpAnswer{reqErr: statusError(resp, out).(*result.Error)}
	}
	// A 2xx or 5xx the client cannot read: something between it and the
	// node answered, or the node's answer is not what it sends.
	return httpAnswer{err: fmt.Errorf("answer %s that is not a Sense produce result", resp.Status), sent: true}
}

// httpResults adapts per-event results from an HTTP answer to finish.
type httpResults []wire.EventResult

func (r httpResults) Len() int                  { return len(r) }
func (r httpResults) At(i int) wire.EventResult { return r[i] }

// authTransport adds the client's credentials to every request: a bearer
// token, or Basic with a user and password.
type authTransport struct {
	next           http.RoundTripper
	token          string
	user, password string
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.token != "" {
		r.Header.Set("Authorization", "Bearer "+a.token)
	} else {
		r.SetBasicAuth(a.user, a.password)
	}
	return a.next.RoundTrip(r)
}
