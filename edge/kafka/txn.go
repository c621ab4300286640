package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sensehq/sense/txn"
)

// Transactions (KIP-98) are run by a txn.Coordinator (package txn: the
// transactional ids, their producer ids and epochs, the partitions and
// groups of each transaction, the markers, timeouts and recovery); the
// transactional APIs (22 with a transactional id, 24, 25, 26, 28, and the
// admin APIs 65 and 66, which describe and list them) translate requests
// to it and its errors to Kafka error codes, here. InitProducerId,
// AddPartitionsToTxn and AddOffsetsToTxn are served up to their newest
// client versions, flexible ones included (InitProducerId 3+ lets a
// producer keep its producer id across a bump, KIP-360). Where transaction version 2 is in
// effect (Options.TransactionVersion; KIP-890 part 2), Produce 12, EndTxn
// 5 and TxnOffsetCommit 5 are served too: the produce and the offset
// commit add their partition or group to the transaction themselves, and
// every EndTxn bumps the epoch, which fences a delayed EndTxn. Before it
// (EndTxn 0 to 4) the EndTxn fence of package txn (fence.go) stands in
// for the epoch per transaction. docs/kafka.md, "Transactions" and
// "Transaction version 2".

// txnErrorCode maps an error of the transaction coordinator to a Kafka
// error code. fencedCode is what the API's version knows a fenced
// producer as: PRODUCER_FENCED from version 2 of AddPartitionsToTxn,
// AddOffsetsToTxn, EndTxn and TxnOffsetCommit (KIP-588), else
// INVALID_PRODUCER_EPOCH.
func (c *conn) txnErrorCode(err error, fencedCode int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, txn.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, txn.ErrInvalidTimeout):
		return kerr.InvalidTransactionTimeout.Code
	case errors.Is(err, txn.ErrInvalidMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, txn.ErrFenced):
		return fencedCode
	case errors.Is(err, txn.ErrInvalidState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, txn.ErrConcurrent):
		return kerr.ConcurrentTransactions.Code
	}
	c.log.Error("transaction coordinator failed", "err", err)
	return kerr.UnknownServerError.Code
}

// fencedCode is the code of a fenced producer at an API's version.
func fencedCode(version int16) int16 {
	if version >= 2 {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}

// txnCoordinatorCode is coordinatorCode for a transactional id: the node
// that coordinates consumer groups coordinates transactions.
func (c *conn) txnCoordinatorCode(id string) int16 {
	if code := c.coordinatorCode(id); code != 0 {
		return code
	}
	if !c.s.txns.Ready() {
		return kerr.CoordinatorLoadInProgress.Code
	}
	return 0
}

// AddPartitionsForPeer adds parts to the ongoing transaction (or a new
// one) of the producer pid at epoch under txnID, for another node of the
// cluster whose Kafka client sent a Produce of transaction version 2 (see
// Cluster.AddPartitionsToTxn): that node authorized the client. It
// returns txn.ErrNotCoordinator unless this node coordinates
// transactions now.
func (s *Server) AddPartitionsForPeer(ctx context.Context, txnID string, pid int64, epoch int16, parts []txn.TopicPartition) error {
	if !s.txns.Ready() {
		return fmt.Errorf("%w: this node does not lead the committed-offsets log", txn.ErrNotCoordinator)
	}
	return s.txns.AddPartitions(ctx, nil, txnID, pid, epoch, parts)
}

// msDuration turns a millisecond count from a request into a duration.
func msDuration(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }
