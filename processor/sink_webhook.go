package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// webhookSink POSTs each batch: NDJSON (a line per event) or a JSON array,
// of the objects of `sense consume --output json`, with the header
// Idempotency-Key (pipeline/partition/first-last). 2xx stores the batch;
// 408, 429, 5xx, a timeout or no answer are tried again after a pause
// (Retry-After honoured); any other status is a refusal: the batch goes to
// the dead letter with the status and the start of the body as reason.
type webhookSink struct {
	url     string
	array   bool
	headers map[string]string
	name    string
	hc      *http.Client
	reg     *jurisdiction.Registry
}

// Headers of a webhook request.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSenseProcessor = "Sense-Processor"
)

func newWebhookSink(cfg config.Processor, env SinkEnv) *webhookSink {
	return &webhookSink{url: cfg.Sink.URL, array: cfg.Sink.Format == "json", headers: cfg.Sink.Headers, name: cfg.Name,
		hc: &http.Client{Timeout: time.Duration(cfg.Sink.Timeout),
			// A redirected POST may become a GET without its body, whose
			// 200 would commit events nobody stored: redirects are
			// answers to act on, not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		reg: env.Registry}
}

// EncodeRecords writes records as NDJSON, or as one JSON array.
func EncodeRecords(w *bytes.Buffer, recs []client.Record, reg *jurisdiction.Registry, array bool) error {
	if array {
		w.WriteByte('[')
	}
	enc := json.NewEncoder(w)
	for i := range recs {
		if array && i > 0 {
			w.WriteByte(',')
		}
		if err := enc.Encode(recs[i].JSON(reg)); err != nil {
			return err
		}
	}
	if array {
		w.WriteString("]\n")
	}
	return nil
}

func (s *webhookSink) Deliver(ctx context.Context, b *Batch) error {
	var body bytes.Buffer
	if err := EncodeRecords(&body, b.Records, s.reg, s.array); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, &body)
	if err != nil {
		return err
	}
	if s.array {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set(HeaderIdempotencyKey, b.IdempotencyKey())
	req.Header.Set(HeaderSenseProcessor, s.name)
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable || c == http.StatusRequestTimeout:
		after := time.Duration(0)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return &Backoff{Reason: fmt.Sprintf("HTTP %d from %s", c, s.url), After: after}
	case c >= 300 && c < 400:
		return fmt.Errorf("webhook: HTTP %d from %s (to %s): redirects are not followed; set sink.url to the final URL", c, s.url, resp.Header.Get("Location"))
	case c >= 500 || c < 200:
		return fmt.Errorf("webhook: HTTP %d from %s: %s", c, s.url, bytes.TrimSpace(msg))
	default:
		return &Refusal{Reason: fmt.Sprintf("HTTP %d from %s: %s", c, s.url, bytes.TrimSpace(msg))}
	}
}

func (s *webhookSink) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
