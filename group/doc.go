// Package group holds consumer groups: who is in a group and what it has
// committed. It knows no wire protocol; the Kafka edge (edge/kafka) uses
// it now and processors will too.
//
// A Coordinator runs the groups' membership, Kafka's classic group
// protocol with client-side assignment, in plain Go types:
//
//	co := group.NewCoordinator(group.Config{InitialRebalanceDelay: 3 * time.Second})
//	defer co.Close()
//	r, err := co.Join(ctx, group.JoinRequest{Group: "g", ClientID: "c1",
//		SessionTimeout: 10 * time.Second, ProtocolType: "consumer",
//		Protocols: []group.Protocol{{Name: "range", Metadata: md}}})
//	// r.LeaderID == r.MemberID: assign, from r.Members' metadata.
//	ref := group.MemberRef{Group: "g", MemberID: r.MemberID, Generation: r.Generation}
//	mine, err := co.Sync(ctx, ref, assignments)
//	err = co.Heartbeat(ref) // until ErrRebalanceInProgress: join again
//	err = co.CheckCommit(ref) // before committing offsets to the Store
//	co.Leave("g", []group.LeavingMember{{MemberID: r.MemberID}})
//
// A group moves between the states of State: Empty, PreparingRebalance
// (until every member has rejoined, or the longest rebalance timeout),
// CompletingRebalance (until the leader's Sync) and Stable. A rebalance
// starts when a member joins, rejoins with other protocols, leaves, or
// misses its session timeout; the first join of an empty group waits
// InitialRebalanceDelay for more. A static member (an instance id)
// replaces the older member with the same id, which is then fenced
// (ErrFencedInstanceID). Membership lives in memory: after a restart,
// members get ErrUnknownMemberID and rejoin, as they do when a Kafka
// coordinator moves. Answers are the sentinel errors of errors.go, which
// an edge maps to its own codes (edge/kafka/groups.go); Join and Sync
// block and take a context. The coordinator checks deadlines on a ticker
// it starts with its first group; Close stops it and waits for it. The
// Clock in Config lets a test drive time.
//
// A Store keeps the groups' committed offsets durably, in a log of its
// own (Open), or in a cluster in a replicated log (OpenReplicated: a raft
// group every replica applies; Ready says whether this node may answer for
// the groups), and NewLagCollector exports the sense_consumer_group_lag
// metric. The on-disk format is in offsets.go and docs/storage.md; the
// replicated store in docs/cluster.md.
package group
