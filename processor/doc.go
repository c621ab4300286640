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
// was assigned, three goroutines work:
//
//	reader:    Source.Fetch, paying for each chunk of bytes with credit
//	           from the processor's budget (max_in_flight_bytes); a chunk
//	           is decoded into records and queued for the deliverer. A
//	           reader that found nothing new waits for more with a small
//	           fetch (idleFetchBytes), holding little credit.
//	deliverer: cuts batches (max_events, linger), filters them (where,
//	           from.jurisdiction), waits for the rate limiter and a
//	           delivery slot, hands the batch to the Sink, and hands the
//	           commit of its position to the committer.
//	committer: commits the partition's positions in order, in the
//	           background while the next batch is delivered; the commits
//	           that queue meanwhile are made as one, the last. The
//	           deliverer waits only for the commits of intents and the
//	           one after a dead letter's write. A chunk's credit returns
//	           once every record in it is committed, durably. A refused
//	           commit (a rebalance) ends the worker.
//
// Memory is bounded by the budget: a reader that cannot get credit waits,
// whatever the sink does. The budget, the delivery slots and the rate
// limiter serve critical partitions before medium and low ones.
//
// Exactly once. A batch is a range of source offsets [First, Last] of one
// partition. Sinks that keep no offsets of their own (webhook, file,
// pipeline, clickhouse, kafka without transactions) get a write-ahead
// intent: before the first attempt the processor commits the offset
// First with the metadata "pending:First-Last[/Size,...][:state]". The
// intent covers a span of batches: when records for two batches or more
// are read and waiting (the processor lags), the deliverer cuts up to maxSpan
// batches of max_events records each from them (never waiting for more),
// and Size gives each batch's count of offsets but the last's, so that
// the span splits the same way after a crash (without sizes: one batch,
// the format before spans). A batch runs from the offset after the one
// before it to its last record. After the sink's success the committer
// commits Last+1 with the intent of the rest of the span (no metadata
// after the last batch), without holding up the next delivery. A crash
// before the span's intent is durable sent nothing of the span; a crash
// after it leaves a durable commit that names the span's batches not
// known to be taken (the intent, or a later rest): a processor that
// restarts and finds one delivers exactly those ranges again, with
// Batch.Retry set: a webhook sends the same Idempotency-Key, a file sink
// writes the same file name, and a pipeline or kafka sink first looks in
// its target for the events of the batch's range it already stored (the
// state holds the target's high watermarks or end offsets before the
// span's first attempt; looking for the batch's own range only, it
// serves every batch of the span). A refused commit ends the worker the
// same way. A batch the sink refuses for good gets a dead-letter intent
// ("deadletter:First-Last:state\nreason", one batch) before its write to
// the dead letter; the commit after that write records the intent of the
// rest of the span again and is waited for, as the span's batches after
// the refused one were never attempted. A sink that keeps its own
// offsets (OffsetKeeper: postgres) commits them with its rows, and the
// processor starts from them; it gets spans of one batch and no intent,
// and its commits in Sense go through the committer too. The kafka sink
// with transactional: true (kafkaTxnSink) keeps its progress in the
// target cluster, in each batch's Kafka transaction, and leaves out of a
// batch what that progress says is stored; it is an OffsetKeeper that
// reports no positions, so it gets no intent and the processor starts
// from its own offsets (behind the target's, never past them).
package processor
