package processor

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
)

// Headers a processor adds to the events it writes into a pipeline.
const (
	// HeaderSource names the event's origin: pipeline/partition/offset.
	HeaderSource = "sense.source"
	// HeaderProcessor names the processor that wrote the event.
	HeaderProcessor = "sense.processor"
	// HeaderDeadLetterReason says why the sink refused the event.
	HeaderDeadLetterReason = "sense.dead_letter.reason"
	// HeaderDeadLetterProcessor names the processor whose sink refused it.
	HeaderDeadLetterProcessor = "sense.dead_letter.processor"
)

// pipelineWriter writes batches into a Sense pipeline, each event with its
// key, value, headers, timestamp, priority and mask as they were (the
// router places it in a hub its mask allows), plus HeaderSource and
// HeaderProcessor. A batch tried again first reads what the target stored
// since the high watermarks Prepare saw, and leaves out the events already
// there: exactly once without the producer's sequence window.
type pipelineWriter struct {
	src    Source
	target string
}

// Prepare returns the target's high watermarks: "partition=hw,...".
func (pw *pipelineWriter) Prepare(ctx context.Context, _ *Batch) (string, error) {
	parts, err := pw.src.Partitions(ctx, pw.target)
	if result.CodeOf(err) == result.UnknownPipeline {
		// Not there yet (a node alone creates it on the first write): a
		// retry reads all of it.
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("list the partitions of %s: %w", pw.target, err)
	}
	var b strings.Builder
	for i, sp := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d=%d", sp.Partition, sp.HighWatermark)
	}
	return b.String(), nil
}

func sourceValue(b *Batch, off int64) string {
	return b.Pipeline + "/" + strconv.Itoa(int(b.Partition)) + "/" + strconv.FormatInt(off, 10)
}

// copiedOffset returns the source offset of b a record copies, read from
// its headers (kv gives a header's key and value): ok only for a record
// this processor wrote from b's partition within b's offsets.
func copiedOffset[H any](b *Batch, headers []H, kv func(H) (string, []byte)) (off int64, ok bool) {
	var src, proc string
	for _, h := range headers {
		switch k, v := kv(h); k {
		case HeaderSource:
			src = string(v)
		case HeaderProcessor:
			proc = string(v)
		}
	}
	prefix := b.Pipeline + "/" + strconv.Itoa(int(b.Partition)) + "/"
	if proc != b.Processor || !strings.HasPrefix(src, prefix) {
		return 0, false
	}
	o, err := strconv.ParseInt(src[len(prefix):], 10, 64)
	return o, err == nil && o >= b.First && o <= b.Last
}

// stored returns the source offsets of b already in the target.
func (pw *pipelineWriter) stored(ctx context.Context, b *Batch) (map[int64]bool, error) {
	from := map[int32]int64{}
	for _, kv := range strings.Split(b.State, ",") {
		p, o, ok := strings.Cut(kv, "=")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if ok && err1 == nil && err2 == nil {
			from[int32(pn)] = on
		}
	}
	parts, err := pw.src.Partitions(ctx, pw.target)
	if result.CodeOf(err) == result.UnknownPipeline {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", pw.target, err)
	}
	seen := map[int64]bool{}
	for _, sp := range parts {
		off, ok := from[sp.Partition]
		if !ok || off < sp.Start {
			off = sp.Start
		}
		for off < sp.HighWatermark {
			f, err := pw.src.Fetch(ctx, pw.target, sp.Partition, off, maxFetchBytes)
			if err != nil {
				return nil, fmt.Errorf("read %s partition %d at %d: %w", pw.target, sp.Partition, off, err)
			}
			for i := range f.Records {
				if o, ok := copiedOffset(b, f.Records[i].Headers, func(h client.Header) (string, []byte) { return h.Key, h.Value }); ok {
					seen[o] = true
				}
			}
			if f.Next <= off {
				break
			}
			off = f.Next
		}
	}
	return seen, nil
}

// write stores b's events in the target, with extra headers.
func (pw *pipelineWriter) write(ctx context.Context, b *Batch, extra []client.Header) error {
	var seen map[int64]bool
	if b.Retry {
		var err error
		if seen, err = pw.stored(ctx, b); err != nil {
			return err
		}
	}
	events := make([]Event, 0, len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		if seen[r.Offset] {
			continue
		}
		hs := make([]client.Header, 0, len(r.Headers)+2+len(extra))
		hs = append(hs, r.Headers...)
		hs = append(hs, client.Header{Key: HeaderSource, Value: []byte(sourceValue(b, r.Offset))},
			client.Header{Key: HeaderProcessor, Value: []byte(b.Processor)})
		hs = append(hs, extra...)
		events = append(events, Event{Key: r.Key, Value: r.Value, Headers: hs, Mask: r.Mask,
			Priority: r.Priority, HasPriority: r.HasPriority, Timestamp: r.Timestamp})
	}
	if len(events) == 0 {
		return nil
	}
	return pw.src.Produce(ctx, pw.target, events)
}

// pipelineSink is the pipeline sink.
type pipelineSink struct{ pipelineWriter }

func (s *pipelineSink) Deliver(ctx context.Context, b *Batch) error { return s.write(ctx, b, nil) }
func (s *pipelineSink) Close() error                                { return nil }
