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
// durable) -> CompleteCommit or CompleteAbort (every marker durable). When
// this node becomes the coordinator (a start, a failover) it completes the
// transactions whose outcome was logged and aborts the ongoing ones,
// bumping their epoch, so nothing is left half-visible. The EndTxn fence
// against delayed requests is in fence.go.
package txn
