package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// kafkaSink produces each batch to a topic of a Kafka-compatible cluster
// with franz-go's idempotent producer (acks=all), so that its own retries
// store nothing twice. Each record keeps its key, value, headers and
// timestamp, and gets the headers sense.source, sense.processor and, when
// recorded, sense.jurisdiction (codes, "MA,SN"), which a Sense at the other
// end stores as the record's mask (its priority is not sent: a Kafka topic
// has no lanes, and a Sense refuses a priority other than its partition's
// lane). A new producer id after a crash
// would not recognise an earlier attempt, so a batch tried again first
// reads what the topic stored since the end offsets Prepare saw and
// leaves those records out, as the pipeline sink does.
type kafkaSink struct {
	cl      *kgo.Client
	seeds   []string
	topic   string
	timeout time.Duration
	reg     *jurisdiction.Registry
}

func newKafkaSink(cfg config.Processor, env SinkEnv) (*kafkaSink, error) {
	timeout := time.Duration(cfg.Sink.Timeout)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Sink.Brokers...), kgo.DefaultProduceTopic(cfg.Sink.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.ClientID("sense-processor-"+cfg.Name), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("sink.brokers: %w", err)
	}
	return &kafkaSink{cl: cl, seeds: cfg.Sink.Brokers, topic: cfg.Sink.Topic, timeout: timeout, reg: env.Registry}, nil
}

// Prepare returns the topic's end offsets: "partition=offset,...".
func (s *kafkaSink) Prepare(ctx context.Context, _ *Batch) (string, error) {
	ends, err := s.ends(ctx)
	if err != nil || ends == nil {
		return "", err
	}
	var b strings.Builder
	for p, o := range ends {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d=%d", p, o)
	}
	return b.String(), nil
}

// ends returns the topic's end offsets; nil when the topic does not exist
// yet.
func (s *kafkaSink) ends(ctx context.Context) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	lo, err := kadm.NewClient(s.cl).ListEndOffsets(ctx, s.topic)
	if err == nil {
		err = lo.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka sink: end offsets of %s: %w", s.topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// stored returns the source offsets of b the topic holds past the end
// offsets of b.State.
func (s *kafkaSink) stored(ctx context.Context, b *Batch) (map[int64]bool, error) {
	ends, err := s.ends(ctx)
	if err != nil || ends == nil {
		return nil, err
	}
	from := map[int32]int64{}
	for _, kv := range strings.Split(b.State, ",") {
		p, o, ok := strings.Cut(kv, "=")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if ok && err1 == nil && err2 == nil {
			from[int32(pn)] = on
		}
	}
	offsets := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, end := range ends {
		o, ok := from[p]
		off := kgo.NewOffset().AtStart()
		if ok {
			if o >= end {
				continue
			}
			off = kgo.NewOffset().At(o)
		} else if end == 0 {
			continue
		}
		offsets[p] = off
		left[p] = end
	}
	seen := map[int64]bool{}
	if len(offsets) == 0 {
		return seen, nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: offsets}))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(ctx, 4*s.timeout)
	defer cancel()
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafka sink: read %s back: %w", s.topic, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return nil, fmt.Errorf("kafka sink: read %s back: %w", s.topic, errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			if o, ok := copiedOffset(b, r.Headers, func(h kgo.RecordHeader) (string, []byte) { return h.Key, h.Value }); ok {
				seen[o] = true
			}
		})
	}
	return seen, nil
}

func (s *kafkaSink) Deliver(ctx context.Context, b *Batch) error {
	var seen map[int64]bool
	if b.Retry {
		var err error
		if seen, err = s.stored(ctx, b); err != nil {
			return err
		}
	}
	recs := kafkaRecords(s.reg, b, func(off int64) bool { return !seen[off] })
	if len(recs) == 0 {
		return nil
	}
	// Bounded by a context, not kgo.RecordDeliveryTimeout: franz-go counts
	// that from each record's timestamp, the event's, so a backlog older
	// than the timeout would never be produced.
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return kafkaProduceError(s.topic, s.cl.ProduceSync(ctx, recs...).FirstErr())
}

// kafkaRecords returns the records of b's events whose offset keep
// accepts: key, value, headers and timestamp, plus sense.jurisdiction
// (when the mask is recorded), sense.source and sense.processor.
func kafkaRecords(reg *jurisdiction.Registry, b *Batch, keep func(offset int64) bool) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		if !keep(r.Offset) {
			continue
		}
		hs := make([]kgo.RecordHeader, 0, len(r.Headers)+4)
		for _, h := range r.Headers {
			hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Mask != 0 {
			hs = append(hs, kgo.RecordHeader{Key: "sense.jurisdiction", Value: []byte(reg.Format(r.Mask))})
		}
		hs = append(hs, kgo.RecordHeader{Key: HeaderSource, Value: []byte(sourceValue(b, r.Offset))},
			kgo.RecordHeader{Key: HeaderProcessor, Value: []byte(b.Processor)})
		recs = append(recs, &kgo.Record{Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp})
	}
	return recs
}

// kafkaProduceError turns a produce error into a *Refusal for the errors
// that trying again cannot cure, and wraps the others.
func kafkaProduceError(topic string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.PolicyViolation), errors.Is(err, kerr.TopicAuthorizationFailed):
		return &Refusal{Reason: fmt.Sprintf("kafka %s: %v", topic, err)}
	}
	return fmt.Errorf("kafka sink: produce to %s: %w", topic, err)
}

func (s *kafkaSink) Close() error {
	s.cl.Close()
	return nil
}
