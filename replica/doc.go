// Package replica makes a buffer a raft group: this node's replica of one
// partition, on go.etcd.io/raft/v3, whose raft log is the partition's
// segment log (one record batch per entry, the term in the batch's leader
// epoch). A Host runs a node's groups, delivers their messages from the
// cluster transport, drives their clocks and forwards appends from
// followers and from nodes without a replica to the leader. A Group
// implements what the node needs of a Buffer: Append resolves once the
// batch is committed on a quorum, reads stop at the commit point.
//
// Idle groups go quiet (quiesce.go): no ticks, no heartbeats, until an
// append, a campaign or their leader's death (HostOptions.Alive) wakes
// them. A damaged batch in a replica's own log, found by a reader, by raft
// or by recovery, is cut and filled in again from the leader, and so is a
// log lost whole (repair.go); a replica that needs entries below the
// leader's trimmed start gets a snapshot, which starts its log there
// (snapshot.go).
// An idempotent batch appended on a node that does not lead is sent again,
// the same bytes, when its outcome is unknown (forward.go). Leaders report
// replicas' progress (Group.Progress) and whether they may serve a state
// machine (Group.LeaderReady).
//
// docs/cluster.md describes the formats and what is not built yet.
package replica
