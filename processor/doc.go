// Package processor runs processors: consumers of a pipeline that hand its
// events, filtered, to a sink (a webhook, NDJSON or Parquet files, a
// PostgreSQL or ClickHouse table, another Sense pipeline, a Kafka topic)
// at the pace the sink can take, exactly once. docs/processors.md is the
// user's guide; this comment is the implementer's.
//
// A Processor is one config.Processor at work, run by a Manager. It is a
// member of the consumer group processor.NAME, through a Group: a
// LocalGroup (a group.Coordinator and the node's group.Store, replicated
// in a cluster) or a KafkaGroup (a Sense's coordinator over the Kafka
// protocol, so that processes share the partitions). The group's committed
// offsets say how far it got. It reads through a Source: the node it runs
// in (NodeSource) or a remote Sense (ClientSource). For each partition it
// was assigned, two goroutines work:
//
//	reader:    Source.Fetch, paying for each chunk of bytes with credit
//	           from the processor's budget (max_in_flight_bytes); a chunk
//	           is decoded into records and queued for the deliverer.
//	deliverer: cuts batches (max_events, linger), filters them (where,
//	           from.jurisdiction), waits for the rate limiter and a
//	           delivery slot, hands the batch to the Sink, and commits.
//	           The chunk's credit returns once every record in it is
//	           committed.
//
// Memory is bounded by the budget: a reader that cannot get credit waits,
// whatever the sink does. The budget, the delivery slots and the rate
// limiter serve critical partitions before medium and low ones.
//
// Exactly once. A batch is a range of source offsets [First, Last] of one
// partition. Sinks that keep no offsets of their own (webhook, file,
// pipeline) get a write-ahead intent: before the first attempt the
// processor commits the offset First with the metadata
// "pending:First-Last[:state]", and after the sink's success the offset
// Last+1. A processor that restarts and finds an intent delivers exactly
// that range again, with Batch.Retry set: a webhook sends the same
// Idempotency-Key, a file sink writes the same file name, and a pipeline
// sink first looks in its target for the events of the range it already
// stored (the state holds the target's high watermarks before the first
// attempt). A sink that keeps its own offsets (OffsetKeeper: postgres)
// commits them with its rows, and the processor starts from them. The
// kafka sink with transactional: true (kafkaTxnSink) keeps its progress in
// the target cluster, in each batch's Kafka transaction, and leaves out of
// a batch what that progress says is stored; it is an OffsetKeeper that
// reports no positions, so it gets no intent and the processor starts from
// its own offsets.
package processor
