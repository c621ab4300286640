// Package seglog is Sense's storage engine: the durable, segmented log that
// holds one buffer (partition).
//
// A log is a directory of segments. Each segment is a file of Kafka
// RecordBatch v2 batches (see package batch) named by its base offset, with
// a sparse offset index and a time index beside it, and the directory holds
// a checkpoint that records how far the log is known durable and the
// idempotent producers' state at that point. docs/storage.md describes every
// file byte by byte and the recovery rules.
//
// Guarantees:
//
//   - Append returns once the batch is durable under the Durability policy.
//     With SyncAlways (the default) that means fdatasync completed;
//     concurrent appenders share one fdatasync (group commit).
//   - Every batch's CRC-32C is checked on append and on every read; a
//     damaged batch is never returned (*CorruptionError).
//   - A write or fsync error fails the log: it refuses appends from then on,
//     never retries the fsync, and never acknowledges what was not durable.
//   - Recovery trusts the checkpoint, scans only what follows it, cuts a
//     torn tail, and reports any other damage instead of truncating it.
//   - Idempotent producers: the last five batches of each producer id are
//     remembered; a retry returns the original offset, a gap is refused.
//
// Logs created in numbers stay cheap: a new log is created without an
// fsync (its directory and first segment are made durable by its first
// fdatasync), and the logs of a process can share a Files cache that keeps
// their open segment files within a limit, closing only idle, fully
// synced files (files.go states the rule).
//
// The log also offers what a raft replica needs: AppendAt (append at an
// expected offset, keeping the batch's leader epoch), Truncate (remove a
// suffix), Reset (empty the log and start it again at any offset, to
// install a raft snapshot), Read by offset, StartOffset and NextOffset;
// Append stamps the epoch set by SetEpoch into each batch's
// PartitionLeaderEpoch.
//
// Trim moves the log's start forward (Kafka's log start offset): the new
// start is kept in a file of its own, durably, reads below it are out of
// range, and the segments wholly below it are deleted. A node alone trims
// a buffer once the migrator has copied its records elsewhere.
package seglog
