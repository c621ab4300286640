package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// ClientSource reads and writes a remote Sense through the Go client
// (sense process). Its Fetch asks with FETCH and, while nothing is there,
// asks again every pollEvery.
type ClientSource struct {
	C *client.Client

	mu    sync.Mutex
	prods map[string]*client.Producer
}

const pollEvery = 50 * time.Millisecond

// Registry returns the server's registry.
func (s *ClientSource) Registry(ctx context.Context) (*jurisdiction.Registry, error) {
	return s.C.Registry(ctx)
}

// Partitions describes the pipeline.
func (s *ClientSource) Partitions(ctx context.Context, pipeline string) ([]SourcePartition, error) {
	_, layout, err := s.C.Describe(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	out := make([]SourcePartition, len(layout))
	for i, p := range layout {
		lane, _ := event.ParsePriority(p.Lane)
		out[i] = SourcePartition{Partition: p.Partition, Hub: p.Hub, Lane: lane, Start: p.Start, HighWatermark: p.HighWatermark}
	}
	return out, nil
}

// Fetch reads with FETCH, polling while nothing is there, for at most
// fetchWait.
func (s *ClientSource) Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int) (Fetched, error) {
	deadline := time.Now().Add(fetchWait)
	for {
		res, err := s.C.Fetch(ctx, pipeline, partition, offset, maxBytes)
		if result.CodeOf(err) == result.OffsetOutOfRange {
			return Fetched{Next: offset, HighWatermark: res.HighWatermark}, ErrOffsetOutOfRange
		}
		if err != nil && len(res.Records) == 0 {
			return Fetched{Next: offset, HighWatermark: res.HighWatermark}, err
		}
		if len(res.Records) > 0 || res.NextOffset > offset || time.Now().After(deadline) {
			size := recordsMemory(res.Records)
			for i := range res.Records {
				r := &res.Records[i]
				size += len(r.Key) + len(r.Value)
				for _, h := range r.Headers {
					size += len(h.Key) + len(h.Value)
				}
			}
			return Fetched{Records: res.Records, Next: res.NextOffset, HighWatermark: res.HighWatermark, Bytes: size}, nil
		}
		if !sleep(ctx, pollEvery) {
			return Fetched{Next: offset, HighWatermark: res.HighWatermark}, nil
		}
	}
}

// Produce writes with an idempotent producer per pipeline and waits for
// every event.
func (s *ClientSource) Produce(ctx context.Context, pipeline string, events []Event) error {
	s.mu.Lock()
	if s.prods == nil {
		s.prods = map[string]*client.Producer{}
	}
	p := s.prods[pipeline]
	if p == nil {
		var err error
		if p, err = s.C.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline}); err != nil {
			s.mu.Unlock()
			return err
		}
		s.prods[pipeline] = p
	}
	s.mu.Unlock()
	errs := make(chan error, len(events))
	for _, e := range events {
		p.Send(client.Event{Key: e.Key, Value: e.Value, Headers: e.Headers, Mask: e.Mask, HasPriority: e.HasPriority, Priority: e.Priority, Timestamp: e.Timestamp},
			func(r client.Result) { errs <- r.Err })
	}
	var all []error
	for range events {
		select {
		case err := <-errs:
			if err != nil && len(all) < 3 {
				all = append(all, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(all) > 0 {
		return fmt.Errorf("produce into %s: %w", pipeline, errors.Join(all...))
	}
	return nil
}

// Close closes the producers.
func (s *ClientSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.prods {
		p.Close()
	}
	s.prods = nil
	return nil
}
