package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// clickhouseSink inserts each batch through ClickHouse's HTTP interface,
// INSERT INTO table FORMAT JSONEachRow, a row per event, into a table it
// creates when missing:
//
//	ENGINE = ReplacingMergeTree ORDER BY (source_pipeline, source_partition, source_offset)
//
// A batch tried again inserts the same rows, which ClickHouse's merges
// collapse to one per source offset: read with FINAL (or GROUP BY the
// key) to see each event once before a merge. Debian's ClickHouse 18.16
// has no per-insert deduplication token, and no DateTime64: the time is
// ts (seconds) and ts_ms (milliseconds since the epoch).
type clickhouseSink struct {
	url     string
	table   string
	headers map[string]string
	hc      *http.Client
	reg     *jurisdiction.Registry

	once    sync.Mutex
	created bool
}

type clickhouseRow struct {
	SourcePipeline  string  `json:"source_pipeline"`
	SourcePartition int32   `json:"source_partition"`
	SourceOffset    int64   `json:"source_offset"`
	Hub             string  `json:"hub"`
	Key             *string `json:"key"`
	Value           *string `json:"value"`
	Headers         string  `json:"headers"`
	Jurisdiction    string  `json:"jurisdiction"`
	Priority        string  `json:"priority"`
	TS              int64   `json:"ts"`
	TSMs            int64   `json:"ts_ms"`
}

func newClickHouseSink(cfg config.Processor, env SinkEnv) *clickhouseSink {
	return &clickhouseSink{url: cfg.Sink.URL, table: cfg.Sink.Table, headers: cfg.Sink.Headers,
		hc: &http.Client{Timeout: time.Duration(cfg.Sink.Timeout)}, reg: env.Registry}
}

// query runs one statement with body as its data.
func (s *clickhouseSink) query(ctx context.Context, q string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/?query="+url.QueryEscape(q), body)
	if err != nil {
		return err
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("clickhouse: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

func (s *clickhouseSink) create(ctx context.Context) error {
	s.once.Lock()
	defer s.once.Unlock()
	if s.created {
		return nil
	}
	err := s.query(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	source_pipeline String, source_partition Int32, source_offset Int64, hub String,
	key Nullable(String), value Nullable(String), headers String, jurisdiction String, priority String,
	ts DateTime, ts_ms Int64)
ENGINE = ReplacingMergeTree() ORDER BY (source_pipeline, source_partition, source_offset)`, nil)
	if err != nil {
		return fmt.Errorf("create the table %s: %w", s.table, err)
	}
	s.created = true
	return nil
}

func (s *clickhouseSink) Deliver(ctx context.Context, b *Batch) error {
	if err := s.create(ctx); err != nil {
		return err
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for i := range b.Records {
		r := &b.Records[i]
		row := clickhouseRow{SourcePipeline: r.Pipeline, SourcePartition: r.Partition, SourceOffset: r.Offset, Hub: r.Hub,
			TS: r.Timestamp.Unix(), TSMs: r.Timestamp.UnixMilli(), Headers: "{}"}
		if r.Key != nil {
			k := string(r.Key)
			row.Key = &k
		}
		if r.Value != nil {
			v := string(r.Value)
			row.Value = &v
		}
		if len(r.Headers) > 0 {
			hm := make(map[string]string, len(r.Headers))
			for _, h := range r.Headers {
				hm[h.Key] = string(h.Value)
			}
			hb, _ := json.Marshal(hm)
			row.Headers = string(hb)
		}
		if r.Mask != 0 {
			row.Jurisdiction = s.reg.Format(r.Mask)
		}
		if r.HasPriority {
			row.Priority = r.Priority.String()
		}
		if err := enc.Encode(&row); err != nil {
			return err
		}
	}
	return s.query(ctx, "INSERT INTO "+s.table+" FORMAT JSONEachRow", &body)
}

func (s *clickhouseSink) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
