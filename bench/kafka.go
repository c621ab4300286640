package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
)

// kafkaCode names a Kafka error by its protocol name.
func kafkaCode(err error) (string, bool) {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message, true
	}
	return "", false
}

// kafkaDriver speaks the Kafka protocol through franz-go, as a Kafka user
// would. Records go to a partition of their priority's lane, with the
// sense.priority header: the bench's own server is in dev mode (one hub),
// whose partitions are the lanes low, medium and critical in that order,
// each with the same number of partitions.
type kafkaDriver struct {
	addr, pipeline string
	retries        bool

	lanes atomic.Pointer[[3][]int32]
}

var priorityHeader = [3][]byte{[]byte("low"), []byte("medium"), []byte("critical")}

// ensure creates the topic when the server is in dev mode (auto-creation)
// and learns its partitions.
func (d *kafkaDriver) ensure(ctx context.Context) ([]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.addr))
	if err != nil {
		return nil, fmt.Errorf("bench: kafka client for %s: %w", d.addr, err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(d.pipeline)
	req.Topics = append(req.Topics, t)
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("bench: kafka metadata of topic %q at %s: %w", d.pipeline, d.addr, err)
		}
		if len(resp.Topics) == 1 {
			rt := resp.Topics[0]
			if err := kerr.ErrorForCode(rt.ErrorCode); err == nil && len(rt.Partitions) > 0 {
				parts := make([]int32, len(rt.Partitions))
				for i, p := range rt.Partitions {
					parts[i] = p.Partition
				}
				return parts, nil
			} else if err != nil && !kerr.IsRetriable(err) {
				return nil, fmt.Errorf("bench: kafka topic %q at %s: %w", d.pipeline, d.addr, err)
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (d *kafkaDriver) laneParts(ctx context.Context) (*[3][]int32, error) {
	if l := d.lanes.Load(); l != nil {
		return l, nil
	}
	parts, err := d.ensure(ctx)
	if err != nil {
		return nil, err
	}
	n := int32(len(parts))
	if n%3 != 0 {
		return nil, fmt.Errorf("bench: kafka topic %q has %d partitions; the bench expects a dev-mode layout of 3 lanes (a multiple of 3)", d.pipeline, n)
	}
	var lanes [3][]int32
	per := n / 3
	for l := range int32(3) {
		for i := range per {
			lanes[l] = append(lanes[l], l*per+i)
		}
	}
	d.lanes.Store(&lanes)
	return &lanes, nil
}

func (d *kafkaDriver) newProducer(ctx context.Context, name string) (producerFlow, error) {
	lanes, err := d.laneParts(ctx)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(d.addr),
		kgo.ClientID(name),
		kgo.DefaultProduceTopic(d.pipeline),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if !d.retries {
		opts = append(opts, kgo.RecordRetries(1))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: kafka client for %s: %w", name, d.addr, err)
	}
	return &kafkaProducer{cl: cl, lanes: lanes}, nil
}

type kafkaProducer struct {
	cl    *kgo.Client
	lanes *[3][]int32
	n     uint64
}

func (k *kafkaProducer) send(ctx context.Context, p event.Priority, value []byte, done func(error, time.Time)) {
	lane := int(p)
	if lane < 0 || lane >= 3 {
		lane = 0
	}
	parts := k.lanes[lane]
	k.n++
	rec := &kgo.Record{Value: value, Partition: parts[k.n%uint64(len(parts))],
		Headers: []kgo.RecordHeader{{Key: "sense.priority", Value: priorityHeader[lane]}}}
	k.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) { done(err, time.Time{}) })
}

// copiesValue: franz-go keeps the record's value until it is produced.
func (k *kafkaProducer) copiesValue() bool { return false }

func (k *kafkaProducer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := k.cl.Flush(ctx)
	k.cl.Close()
	if err != nil {
		return fmt.Errorf("bench: flushing the kafka producer: %w", err)
	}
	return nil
}

func (d *kafkaDriver) partitions(ctx context.Context) ([]int32, error) {
	return d.ensure(ctx)
}

func (d *kafkaDriver) newConsumer(_ context.Context, name string, partitions []int32) (consumerFlow, error) {
	offsets := map[int32]kgo.Offset{}
	for _, p := range partitions {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(d.addr),
		kgo.ClientID(name),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{d.pipeline: offsets}),
		kgo.FetchMaxWait(50*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: kafka client for %s: %w", name, d.addr, err)
	}
	return &kafkaConsumer{cl: cl}, nil
}

// kafkaConsumer polls fetches and hands their records out one at a time;
// franz-go reconnects and resumes by itself.
type kafkaConsumer struct {
	cl  *kgo.Client
	buf []*kgo.Record
	at  time.Time // when buf's records were polled
}

func (k *kafkaConsumer) next(ctx context.Context, wait time.Duration) ([]byte, time.Time, error) {
	if len(k.buf) == 0 {
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := k.cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		k.at = time.Now() // the records of one poll arrived together
		fs.EachRecord(func(r *kgo.Record) { k.buf = append(k.buf, r) })
		if len(k.buf) == 0 {
			return nil, time.Time{}, errNoRecord
		}
	}
	r := k.buf[0]
	k.buf[0] = nil
	k.buf = k.buf[1:]
	return r.Value, k.at, nil
}

func (k *kafkaConsumer) close() { k.cl.Close() }
