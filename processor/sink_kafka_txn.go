package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// kafkaTxnSink is the kafka sink with transactional: true. Each batch is
// one Kafka transaction (KIP-98) of its records and of the processor's
// progress, kept in the target cluster itself, so that the target holds a
// batch and the knowledge that it holds it, or neither:
//
//   - Every source partition has its own transactional producer, of id
//     PREFIX.PIPELINE.PARTITION (sink.transactional_id_prefix). Its
//     InitProducerId fences every earlier producer of that id (a crashed
//     process, a node that lost the partition in a rebalance and has not
//     noticed) and aborts the transaction it left open.
//   - The progress is a consumer-group offset in the target: the group of
//     the same name as the transactional id commits, for the sink's topic
//     and partition 0, the source offset after the batch (metadata
//     PIPELINE/PARTITION). It goes into the transaction with
//     AddOffsetsToTxn and TxnOffsetCommit, as send_offsets_to_transaction
//     does, so it is committed with the records or aborted with them.
//     The group has no members; the key is partition 0 of the topic
//     written because a broker refuses offsets of a topic it does not
//     have.
//   - After each InitProducerId the sink reads that offset back, and from
//     then on leaves out of a batch every event below it. Between two
//     reads only this producer can move it: any other would have fenced
//     it, and its commit would fail.
//
// The processor's own offsets stay in Sense and are committed after the
// target's transaction, as for any sink; a crash between the two makes the
// processor read the batch again, and the sink leaves all of it out. So the
// sink needs no intent, and Positions reports nothing: the processor starts
// from Sense's committed offsets, which are never past what the target
// holds except over ranges the sink never got (filtered, dead-lettered).
// Reset moves the target's progress too (SetPositions).
type kafkaTxnSink struct {
	seeds    []string
	topic    string
	prefix   string
	timeout  time.Duration
	reg      *jurisdiction.Registry
	clientID string
	adm      *kadm.Client // reads and moves the progress groups' offsets

	mu    sync.Mutex
	parts map[string]*txnProducer // by transactional id
}

// txnProducer is one source partition's transactional producer. Its mutex
// is held for a whole delivery: the processor delivers one batch of a
// partition at a time, and Reset waits for it.
type txnProducer struct {
	mu     sync.Mutex
	id     string      // transactional id and progress group
	source string      // PIPELINE/PARTITION
	cl     *kgo.Client // nil until a delivery initializes one
	next   int64       // the source offset after those the topic holds; -1: none
}

// txnFault, set by tests, runs at two points of a transactional batch:
// "produced" (its records and progress are in the open transaction) and
// "committed" (the transaction is committed, Sense's offsets are not yet).
// An error there fails the delivery at that point, as a crash would.
var txnFault atomic.Pointer[func(ctx context.Context, stage string, b *Batch) error]

func fault(ctx context.Context, stage string, b *Batch) error {
	if f := txnFault.Load(); f != nil {
		return (*f)(ctx, stage, b)
	}
	return nil
}

func newKafkaTxnSink(cfg config.Processor, env SinkEnv) (*kafkaTxnSink, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Sink.Brokers...), kgo.ClientID("sense-processor-"+cfg.Name))
	if err != nil {
		return nil, fmt.Errorf("sink.brokers: %w", err)
	}
	return &kafkaTxnSink{seeds: cfg.Sink.Brokers, topic: cfg.Sink.Topic, prefix: cfg.Sink.TransactionalIDPrefix,
		timeout: time.Duration(cfg.Sink.Timeout), reg: env.Registry, clientID: "sense-processor-" + cfg.Name,
		adm: kadm.NewClient(cl), parts: map[string]*txnProducer{}}, nil
}

// TransactionalID is the transactional id (and progress group) of a
// transactional kafka sink's producer for one source partition.
func TransactionalID(prefix, pipeline string, partition int32) string {
	return prefix + "." + pipeline + "." + strconv.Itoa(int(partition))
}

func (s *kafkaTxnSink) producer(pipeline string, partition int32) *txnProducer {
	id := TransactionalID(s.prefix, pipeline, partition)
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := s.parts[id]
	if tp == nil {
		tp = &txnProducer{id: id, source: pipeline + "/" + strconv.Itoa(int(partition)), next: -1}
		s.parts[id] = tp
	}
	return tp
}

// txnTimeout is the transactions' timeout, 4 x sink.timeout (a batch's
// produce, progress and commit take up to one each), at least 10s and at
// most Kafka's default transaction.max.timeout.ms, 15 minutes. A
// transaction left open by a crash holds read_committed readers of its
// partitions back until the partition's producer starts again or this
// passes.
func (s *kafkaTxnSink) txnTimeout() time.Duration {
	return min(max(4*s.timeout, 10*time.Second), 15*time.Minute)
}

// init starts tp's producer: InitProducerId fences the earlier ones and
// aborts what they left open; then the progress is read back.
func (s *kafkaTxnSink) init(ctx context.Context, tp *txnProducer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.DefaultProduceTopic(s.topic), kgo.ClientID(s.clientID),
		kgo.TransactionalID(tp.id), kgo.TransactionTimeout(s.txnTimeout()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.AllowAutoTopicCreation())
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("kafka sink: init the transactional producer %s: %w", tp.id, err)
	}
	next, err := s.progress(ctx, tp.id)
	if err != nil {
		cl.Close()
		return err
	}
	tp.cl, tp.next = cl, next
	return nil
}

// progress reads a progress group's offset: the source offset after those
// the topic holds, -1 for none.
func (s *kafkaTxnSink) progress(ctx context.Context, groupName string) (int64, error) {
	resp, err := s.adm.FetchOffsets(ctx, groupName)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return -1, fmt.Errorf("kafka sink: read the progress group %s: %w", groupName, err)
	}
	o, ok := resp.Lookup(s.topic, 0)
	if !ok || o.At < 0 {
		return -1, nil
	}
	return o.At, nil
}

// drop closes tp's producer after a failure: its transaction is aborted
// (best effort; the next InitProducerId of its id aborts it anyway), and
// the next delivery starts a new producer and reads the progress again,
// whatever became of the failed transaction.
func (s *kafkaTxnSink) drop(tp *txnProducer) {
	if tp.cl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := tp.cl.AbortBufferedRecords(ctx); err == nil {
		tp.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	tp.cl.Close()
	tp.cl, tp.next = nil, -1
}

func (s *kafkaTxnSink) Deliver(ctx context.Context, b *Batch) error {
	tp := s.producer(b.Pipeline, b.Partition)
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.cl == nil {
		if err := s.init(ctx, tp); err != nil {
			return err
		}
	}
	next := tp.next
	recs := kafkaRecords(s.reg, b, func(off int64) bool { return off >= next })
	if len(recs) == 0 {
		return nil // stored by an earlier transaction
	}
	if err := s.write(ctx, tp, b, recs); err != nil {
		s.drop(tp)
		return err
	}
	tp.next = b.Last + 1
	return nil
}

// write produces recs and the progress b.Last+1 in one transaction.
func (s *kafkaTxnSink) write(ctx context.Context, tp *txnProducer, b *Batch, recs []*kgo.Record) error {
	if err := tp.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka sink: begin a transaction of %s: %w", tp.id, err)
	}
	// Bounded by a context, not kgo.RecordDeliveryTimeout: franz-go counts
	// that from each record's timestamp, the event's, which a backlog has
	// long passed.
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	err := tp.cl.ProduceSync(pctx, recs...).FirstErr()
	cancel()
	if err != nil {
		return kafkaProduceError(s.topic, err)
	}
	if err := s.commitProgress(ctx, tp, b.Last+1); err != nil {
		return err
	}
	if err := fault(ctx, "produced", b); err != nil {
		return err
	}
	// Not cut short by the processor's pause: a commit whose outcome is
	// unknown costs a new producer.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := tp.cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return fmt.Errorf("kafka sink: commit the transaction of %s: %w", tp.id, err)
	}
	return fault(ctx, "committed", b)
}

// commitProgress puts the offset next of tp's progress group into tp's
// open transaction: AddOffsetsToTxn, then TxnOffsetCommit.
func (s *kafkaTxnSink) commitProgress(ctx context.Context, tp *txnProducer, next int64) error {
	id, epoch, err := tp.cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("kafka sink: producer id of %s: %w", tp.id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for {
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = tp.id, id, epoch, tp.id
		resp, err := add.RequestWith(ctx, tp.cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if errors.Is(err, kerr.ConcurrentTransactions) && sleep(ctx, 20*time.Millisecond) {
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka sink: add the progress group %s to the transaction: %w", tp.id, err)
		}
		break
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = tp.id, tp.id, id, epoch
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = s.topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	md := tp.source
	rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = 0, next, -1, &md
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, tp.cl)
	if err == nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err == nil {
					err = kerr.ErrorForCode(p.ErrorCode)
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("kafka sink: commit the progress of %s in the transaction: %w", tp.id, err)
	}
	return nil
}

// Positions reports nothing: the processor starts from its offsets in
// Sense, and Deliver leaves out what the target's progress says it holds.
func (s *kafkaTxnSink) Positions(context.Context, string, string) (map[int32]int64, error) {
	return nil, nil
}

// SetPositions moves the progress of each source partition in pos (sense
// processor reset): a new producer of the partition's id fences the others
// (on any node), then the progress group commits the offset outside a
// transaction, and the new producer starts from it.
func (s *kafkaTxnSink) SetPositions(ctx context.Context, _, pipeline string, pos map[int32]int64) error {
	for partition, off := range pos {
		tp := s.producer(pipeline, partition)
		tp.mu.Lock()
		err := s.setPosition(ctx, tp, off)
		tp.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *kafkaTxnSink) setPosition(ctx context.Context, tp *txnProducer, off int64) error {
	s.drop(tp)
	if err := s.init(ctx, tp); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: s.topic, Partition: 0, At: off, LeaderEpoch: -1, Metadata: tp.source})
	resp, err := s.adm.CommitOffsets(ctx, tp.id, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		s.drop(tp)
		return fmt.Errorf("kafka sink: move the progress group %s to %d: %w", tp.id, off, err)
	}
	tp.next = off
	return nil
}

func (s *kafkaTxnSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range s.parts {
		tp.mu.Lock()
		s.drop(tp)
		tp.mu.Unlock()
	}
	s.adm.Close()
	return nil
}
