package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/jurisdiction"
)

// The Consumer over HTTP: one Server-Sent Events tail per partition (GET
// /v1/pipelines/{name}/events?partition=P&offset=O with Accept:
// text/event-stream), all on the client's HTTP/2 connection. The start
// offset is resolved from the pipeline's layout before the GET, so
// Earliest, Latest, offsets and Starts mean what they mean over TCP, and
// events stored between the describe and the GET are not missed. Each
// tail's goroutine decodes records into a bounded queue; when Next falls
// behind, the goroutine stops reading and HTTP/2 flow control holds the
// server back (ConsumerOptions.Credit does not apply).

// httpConsumerQueue bounds the records decoded ahead of Next.
const httpConsumerQueue = 1024

// httpConsumer is a Consumer's state over HTTP.
type httpConsumer struct {
	c        *Client
	pipeline string
	parts    []int32
	reg      *jurisdiction.Registry
	ctx      context.Context
	cancel   context.CancelFunc
	items    chan httpItem
	wg       sync.WaitGroup

	mu     sync.Mutex
	hw     map[int32]int64
	pos    map[int32]int64
	live   int
	closed bool
}

// httpItem is a record, or a partition's end.
type httpItem struct {
	partition int32
	rec       Record
	err       error
}

func (c *Client) newHTTPConsumer(ctx context.Context, opts ConsumerOptions, layout []admin.PartitionInfo, parts []int32) (*Consumer, error) {
	reg, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	hc := &httpConsumer{c: c, pipeline: opts.Pipeline, reg: reg, items: make(chan httpItem, httpConsumerQueue),
		hw: map[int32]int64{}, pos: map[int32]int64{}}
	hc.ctx, hc.cancel = context.WithCancel(c.h.ctx)
	byPart := map[int32]admin.PartitionInfo{}
	for _, l := range layout {
		byPart[l.Partition] = l
	}
	ready := make(chan error, len(parts))
	for _, p := range parts {
		l, ok := byPart[p]
		if !ok {
			hc.close()
			return nil, fmt.Errorf("client: pipeline %s has no partition %d (it has %d)", opts.Pipeline, p, len(layout))
		}
		if _, dup := hc.pos[p]; dup {
			continue
		}
		from := opts.From
		if f, ok := opts.Starts[p]; ok {
			from = f
		}
		switch {
		case from == Earliest:
			from = l.Start
		case from == Latest:
			from = l.HighWatermark
		default:
			from = min(max(from, l.Start), l.HighWatermark)
		}
		hc.parts = append(hc.parts, p)
		hc.pos[p], hc.hw[p] = from, l.HighWatermark
		hc.wg.Add(1)
		go hc.tail(p, l.Hub, from, ready)
	}
	hc.live = len(hc.parts)
	for range hc.parts {
		select {
		case err = <-ready:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			hc.close()
			return nil, err
		}
	}
	return &Consumer{c: c, pipeline: opts.Pipeline, h: hc}, nil
}

// tail reads partition p's event stream from offset from until it ends,
// then queues the reason.
func (hc *httpConsumer) tail(p int32, hub string, from int64, ready chan<- error) {
	defer hc.wg.Done()
	started := false
	err := hc.stream(p, hub, from, func() { started = true; ready <- nil })
	if !started {
		ready <- fmt.Errorf("client: subscribe to %s partition %d over HTTP: %w", hc.pipeline, p, err)
		return
	}
	if hc.ctx.Err() != nil {
		return // closed
	}
	select {
	case hc.items <- httpItem{partition: p, err: err}:
	case <-hc.ctx.Done():
	}
}

// stream runs one GET; started is called once the server accepted it.
// It returns why the stream ended.
func (hc *httpConsumer) stream(p int32, hub string, from int64, started func()) error {
	h := hc.c.h
	u := h.eventsURL(hc.pipeline) + "?partition=" + strconv.Itoa(int(p)) + "&offset=" + strconv.FormatInt(from, 10)
	req, err := http.NewRequestWithContext(hc.ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := h.hc.Do(req)
	if err != nil {
		return h.connError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return statusError(resp, body)
	}
	started()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), httpMaxAnswer)
	var typ string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 {
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				typ = string(value)
			case "data":
				data = append(data, value...)
			}
			continue
		}
		// A blank line dispatches the event.
		if len(data) == 0 {
			typ = ""
			continue
		}
		if typ == "error" {
			var eb errorBody
			if err := json.Unmarshal(data, &eb); err != nil {
				return fmt.Errorf("%w: unreadable error event: %v", ErrProtocol, err)
			}
			return statusError(&http.Response{}, data)
		}
		var jr httpRecord
		if err := json.Unmarshal(data, &jr); err != nil {
			return fmt.Errorf("%w: unreadable record: %v", ErrProtocol, err)
		}
		rec, err := jr.record(hc.reg, hc.pipeline, p, hub)
		if err != nil {
			return err
		}
		// The edge writes the priority of the record's sense.p header, ""
		// without one; the text headers are among the record's headers.
		rec.HasPriority = jr.Priority != ""
		textRouting(hc.reg, &rec)
		select {
		case hc.items <- httpItem{partition: p, rec: rec}:
		case <-hc.ctx.Done():
			return ErrClosed
		}
		typ, data = "", data[:0]
	}
	err = sc.Err()
	if err == nil {
		err = io.EOF
	}
	return h.connError(err)
}

// next is Consumer.next over HTTP.
func (hc *httpConsumer) next(ctx context.Context, d time.Duration) (Record, error) {
	var timeout <-chan time.Time
	hc.mu.Lock()
	closed, live := hc.closed, hc.live
	hc.mu.Unlock()
	if closed {
		return Record{}, ErrClosed
	}
	select {
	case it := <-hc.items:
		return hc.take(it)
	default:
	}
	if live == 0 {
		return Record{}, fmt.Errorf("client: every subscription of this consumer to %s has ended", hc.pipeline)
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case it := <-hc.items:
		return hc.take(it)
	case <-timeout:
		return Record{}, ErrNoRecord
	case <-ctx.Done():
		return Record{}, ctx.Err()
	case <-hc.ctx.Done(): // the consumer or its Client was closed
		return Record{}, ErrClosed
	}
}

// take hands out an item: a record (advancing the partition's position)
// or a partition's end.
func (hc *httpConsumer) take(it httpItem) (Record, error) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.closed {
		return Record{}, ErrClosed
	}
	if it.err != nil {
		hc.live--
		return Record{}, fmt.Errorf("client: subscription to %s partition %d ended: %w", hc.pipeline, it.partition, it.err)
	}
	if off := it.rec.Offset; off >= hc.pos[it.partition] {
		hc.pos[it.partition] = off + 1
		hc.hw[it.partition] = max(hc.hw[it.partition], off+1)
	}
	return it.rec, nil
}

func (hc *httpConsumer) snapshot(m map[int32]int64) map[int32]int64 {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	out := make(map[int32]int64, len(m))
	for p, v := range m {
		out[p] = v
	}
	return out
}

func (hc *httpConsumer) partitions() []int32 {
	out := slices.Clone(hc.parts)
	slices.Sort(out)
	return out
}

// close ends every stream and waits for their goroutines.
func (hc *httpConsumer) close() {
	hc.mu.Lock()
	hc.closed = true
	hc.mu.Unlock()
	hc.cancel()
	hc.wg.Wait()
}
