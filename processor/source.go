package processor

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
)

// Source is where a processor reads its events and where a pipeline sink
// and the dead letter write: the node it runs in (NodeSource), or a remote
// Sense through the Go client (ClientSource).
type Source interface {
	// Registry is the jurisdiction registry of the events' masks.
	Registry(ctx context.Context) (*jurisdiction.Registry, error)
	// Partitions lists a pipeline's partitions with their offsets.
	Partitions(ctx context.Context, pipeline string) ([]SourcePartition, error)
	// Fetch reads records of a partition from offset, about maxBytes of
	// them; with none there yet it waits until some arrive or ctx ends
	// (then it returns none and no error).
	Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int) (Fetched, error)
	// Produce stores events in a pipeline; it returns nil only when every
	// one is stored.
	Produce(ctx context.Context, pipeline string, events []Event) error
}

// SourcePartition is one partition of a pipeline.
type SourcePartition struct {
	Partition            int32
	Hub                  string
	Lane                 event.Priority
	Start, HighWatermark int64
}

// Fetched is what one Fetch read.
type Fetched struct {
	Records []client.Record
	// Next is the offset to read next.
	Next int64
	// HighWatermark is the partition's high watermark (-1: unknown).
	HighWatermark int64
	// Bytes is the memory the records hold.
	Bytes int
}

// Event is an event a processor writes into a pipeline.
type Event struct {
	Key, Value  []byte
	Headers     []client.Header
	Mask        jurisdiction.Mask
	Priority    event.Priority
	HasPriority bool
	Timestamp   time.Time
}

// ErrOffsetOutOfRange is returned by Fetch for an offset outside the
// partition's range (retention removed it, or the partition was reset).
var ErrOffsetOutOfRange = errors.New("processor: offset outside the partition's range")

// NodeSource reads and writes through a node in the same process.
type NodeSource struct {
	Node *node.Node
}

// Registry returns the node's registry.
func (s NodeSource) Registry(context.Context) (*jurisdiction.Registry, error) {
	return s.Node.Registry(), nil
}

// Partitions returns node.Partitions.
func (s NodeSource) Partitions(_ context.Context, pipeline string) ([]SourcePartition, error) {
	ps, code := s.Node.Partitions(pipeline)
	if code != result.OK {
		return nil, &result.Error{Code: code, Message: "partitions of " + pipeline}
	}
	out := make([]SourcePartition, len(ps))
	for i, p := range ps {
		out[i] = SourcePartition{Partition: p.Partition, Hub: p.Hub, Lane: p.Lane, Start: p.Start, HighWatermark: p.HighWatermark}
	}
	return out, nil
}

// fetchWait is the longest one node fetch waits for data.
const fetchWait = time.Second

// Fetch reads through node.Fetch.
func (s NodeSource) Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int) (Fetched, error) {
	wait, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	data, off, hw, code := s.Node.Fetch(wait, pipeline, partition, offset, maxBytes, nil)
	switch code {
	case result.OK:
	case result.OffsetOutOfRange:
		return Fetched{Next: offset, HighWatermark: hw}, ErrOffsetOutOfRange
	default:
		return Fetched{Next: offset, HighWatermark: hw}, &result.Error{Code: code, Message: fmt.Sprintf("fetch %s partition %d at %d", pipeline, partition, offset)}
	}
	f := Fetched{Next: off, HighWatermark: hw, Bytes: cap(data)}
	if len(data) == 0 {
		return f, nil
	}
	recs, next, err := client.DecodeBatches(nil, s.Node.Registry(), pipeline, partition, "", data, off)
	f.Records, f.Next = recs, next
	f.Bytes += recordsMemory(recs)
	if err != nil && len(recs) == 0 {
		return f, err
	}
	return f, nil
}

// recordsMemory is the memory of decoded records beside their bytes: the
// Record structs and their header lists.
func recordsMemory(recs []client.Record) int {
	n := cap(recs) * int(unsafe.Sizeof(client.Record{}))
	for i := range recs {
		n += cap(recs[i].Headers) * int(unsafe.Sizeof(client.Header{}))
	}
	return n
}

// Produce stores events through node.Produce.
func (s NodeSource) Produce(ctx context.Context, pipeline string, events []Event) error {
	req := &node.ProduceRequest{Pipeline: pipeline, ProducerID: -1, Events: make([]node.Event, len(events))}
	for i, e := range events {
		ne := node.Event{Key: e.Key, Value: e.Value, Mask: e.Mask, HasPriority: e.HasPriority, Priority: e.Priority, TimestampMs: e.Timestamp.UnixMilli()}
		for _, h := range e.Headers {
			ne.Headers = append(ne.Headers, batch.RawHeader{Key: []byte(h.Key), Value: h.Value})
		}
		req.Events[i] = ne
	}
	res := make([]node.Result, len(events))
	if err := s.Node.Produce(ctx, req, res); err != nil {
		return err
	}
	for i, r := range res {
		if r.Code != result.OK {
			return &result.Error{Code: r.Code, Message: fmt.Sprintf("produce event %d of %d into %s", i, len(events), pipeline)}
		}
	}
	return nil
}
