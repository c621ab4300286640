// Package txn is the transaction coordinator of Kafka's transactional
// producers (KIP-98): a stable producer id per transactional id and an
// epoch bumped at each InitProducerId (fencing the older producers), the
// partitions and consumer groups of the ongoing transaction, the offsets
// it commits (applied to the groups only when it commits), its outcome,
// written as commit or abort markers to each of its partitions, and
// timeouts that abort it. It knows no wire protocol: edge/kafka/txn.go
// translates requests and errors.
//
// The state is a log: side records (group.SideRecord, kind "txn") in the
// committed-offsets log of package group, one record per transactional id
// whose latest is its state (record.go; docs/storage.md). On a node alone
// that log is a file fsynced before each answer; in a cluster it is the
// replicated __offsets raft group, whose leader coordinates groups and
// transactions alike. A transaction's completion and the offsets it
// commits are one batch of that log, so they are stored together or not
// at all.
//
// A transaction moves Empty -> Ongoing (the first AddPartitions or
// AddOffsets) -> PrepareCommit or PrepareAbort (EndTxn: the outcome is
// durable) -> CompleteCommit or CompleteAbort (every marker durable).
// EndTxn answers once the markers are durable; the record of the
// completion is written after the answer, and the id's next operation
// (and DescribeTransactions, ListTransactions) waits for it.
//
// Markers made durable after the answer (decideLazy; on a node alone, with
// Config.StartMarker): EndTxn answers once the outcome is durable and the
// markers are appended, and
// the transaction is complete in memory at once (entry.logged holds what
// the log holds). The id's next transaction begins at once; its batches
// follow the markers, so their group commit makes the markers durable; a
// goroutine makes sure of it (at once, or after Config.MarkerLinger for a
// producer running transactions back to back). Every write of the id's
// state waits for them first (settle), and a tick writes the completion
// when nothing else was. A start that finds the decision alone writes
// only the markers missing (writeMarkers): at transaction version 2 the
// markers carry an epoch above the transaction's batches, so a partition
// with the producer's transaction open at the marker's epoch holds the
// marker and the id's next transaction; at version 1 the decision stores
// each partition's next offset (Txn.Ends, noteEnds), and a transaction
// open from there on is the next one. The start then aborts it. When
// this node becomes the coordinator (a start, a failover) it completes the
// transactions whose outcome was logged; on a node alone it also aborts
// the ongoing ones, bumping their epoch, so nothing is left half-visible.
// In a cluster the ongoing ones go on (their every write is in the
// replicated log): their producer ends them at the new coordinator, or
// their timeout aborts them.
//
// Two transaction versions are served. Before KIP-890 (EndTxn 0 to 4) the
// epoch stays for the producer's life and an EndTxn delayed past the end
// of its transaction is refused by a fence on connections (fence.go).
// With transaction version 2 (KIP-890 part 2, EndTxn 5: EndTxnBump) every
// EndTxn bumps the epoch and answers the new one; the markers carry it; a
// retry is recognized by the producer id and epoch it carries (Txn.PrevEpoch);
// an EndTxn of an earlier epoch is fenced. The edge then adds partitions
// and groups to the transaction implicitly (AddPartitions at Produce,
// AddAndCommitOffsets at TxnOffsetCommit), with the same durable write
// AddPartitionsToTxn and AddOffsetsToTxn make.
//
// On a node alone, offsets sent for a transaction the log already holds as
// ongoing are kept in memory until its decision stores them (keep): a
// restart aborts such a transaction, so they are never needed after one.
//
// Partitions kept for the next transaction (on a node alone, with
// Config.OpenTxn): the record that completes a transaction keeps its
// partitions, and the id's next transaction adds any of them without a
// write (extend, kept): it begins in memory (entry.mem) while the log
// still holds the completed state. Its markers go to the partitions it
// added; any write of it (a partition not kept, a group's offsets before
// one of its batches landed) makes it the log's. At a start, an id whose
// completed state keeps partitions is asked about them (Config.OpenTxn):
// a batch of its producer open in one of them means a transaction had
// begun in memory, and it is aborted as an ongoing one would be
// (abortUnlogged); a partition that cannot tell counts as open.
package txn
