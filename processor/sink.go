package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/jurisdiction"
)

// Batch is one delivery: the events of source offsets [First, Last] of one
// partition that passed the processor's filter (Records, never empty).
type Batch struct {
	Processor string
	Pipeline  string
	Partition int32
	First     int64
	Last      int64
	Records   []client.Record
	// Retry says the range may already be in the sink, wholly or in part:
	// an earlier attempt failed or did not answer, or a process died
	// while it ran.
	Retry bool
	// State is what the sink's Prepare returned before the first attempt
	// (Preparer), kept with the intent.
	State string
}

// IdempotencyKey names the batch's range: pipeline/partition/first-last.
func (b *Batch) IdempotencyKey() string {
	return fmt.Sprintf("%s/%d/%d-%d", b.Pipeline, b.Partition, b.First, b.Last)
}

// Sink delivers batches. Deliver returns nil once the batch is stored; a
// *Refusal for a batch the sink will never take (it goes to the dead
// letter); any other error to try again later, with the same range.
// Deliver is called for one partition at a time in offset order, and for
// different partitions concurrently.
type Sink interface {
	Deliver(ctx context.Context, b *Batch) error
	Close() error
}

// OffsetKeeper is a sink that stores the processor's offsets with its
// writes (postgres, kafka with transactional: true). The processor starts
// from Positions (its own committed offsets for a partition absent there)
// and commits nothing before a delivery: no intent.
type OffsetKeeper interface {
	// Positions returns, per partition of pipeline, the next offset the
	// sink expects from processor; a partition it has not seen is absent.
	Positions(ctx context.Context, processor, pipeline string) (map[int32]int64, error)
}

// Preparer is a sink that records some state before the first attempt
// of a batch, saved with the intent and handed back in Batch.State.
type Preparer interface {
	Prepare(ctx context.Context, b *Batch) (string, error)
}

// Refusal is a sink's final no to a batch: its events go to the dead
// letter pipeline with Reason.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refused: " + r.Reason }

// Backoff is a refusal to try later (429, 503): the rate drops, and the
// next attempt waits at least After.
type Backoff struct {
	Reason string
	After  time.Duration
}

func (b *Backoff) Error() string { return "back off: " + b.Reason }

func isRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// SinkEnv is what a sink may use besides its config.
type SinkEnv struct {
	Source   Source
	Registry *jurisdiction.Registry
}
