package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// DescribeTransactions (key 65), version 0. Every version is flexible, so
// the body is decoded by decodeDescribeTransactions, not kmsg (see
// ownDecoders in header.go). Admin clients (kafka-transactions.sh
// describe, kadm.DescribeTransactions) send it to each id's coordinator,
// found with FindCoordinator key type 1.
//
// Each transactional id is answered as Kafka's coordinator answers it: its
// state by Kafka's name (Empty, Ongoing, PrepareCommit, PrepareAbort,
// CompleteCommit, CompleteAbort: txn.State; Sense keeps ids forever, so
// none is Dead, and fences by aborting with the next epoch, so none is
// PrepareEpochFence), producer id and epoch, transaction timeout, the
// start of the ongoing transaction or of the last one completed (-1 when
// none began since InitProducerId), and the partitions of the
// transaction, of the topics the principal may describe (a completed
// transaction has none). It needs describe on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED without); an id that never had a
// producer is TRANSACTIONAL_ID_NOT_FOUND, an empty one INVALID_REQUEST. A
// node that does not coordinate transactions answers NOT_COORDINATOR
// (another node does) or COORDINATOR_NOT_AVAILABLE (none does now), and
// COORDINATOR_LOAD_IN_PROGRESS while it recovers them: clients find the
// coordinator again and retry.
const (
	describeTransactionsMin = 0
	describeTransactionsMax = 0
)

func (c *conn) describeTransactions(req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeTransactionsResponse()
	resp.SetVersion(req.Version)
	for _, id := range req.TransactionalIDs {
		resp.TransactionStates = append(resp.TransactionStates, c.describeTransaction(id))
	}
	return resp
}

func (c *conn) describeTransaction(id string) kmsg.DescribeTransactionsResponseTransactionState {
	st := kmsg.NewDescribeTransactionsResponseTransactionState()
	st.TransactionalID = id
	if st.ErrorCode = c.authorize(security.Describe, security.TransactionalIDResource(id)); st.ErrorCode != 0 {
		return st
	}
	if id == "" {
		st.ErrorCode = kerr.InvalidRequest.Code
		return st
	}
	if st.ErrorCode = c.txnCoordinatorCode(id); st.ErrorCode != 0 {
		return st
	}
	t, ok := c.s.txns.Describe(id)
	if !ok {
		st.ErrorCode = kerr.TransactionalIDNotFound.Code
		return st
	}
	st.State = t.State.String()
	st.ProducerID, st.ProducerEpoch = t.ProducerID, t.Epoch
	st.TimeoutMillis = t.TimeoutMs
	st.StartTimestamp = t.StartMs
	if t.StartMs == 0 {
		st.StartTimestamp = -1
	}
	topic := map[string]int{} // index in st.Topics; -1: not to be shown
	for _, tp := range t.Partitions {
		i, seen := topic[tp.Topic]
		if !seen {
			i = -1
			if c.may(security.Describe, security.PipelineResource(tp.Topic)) {
				tt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				tt.Topic = tp.Topic
				st.Topics = append(st.Topics, tt)
				i = len(st.Topics) - 1
			}
			topic[tp.Topic] = i
		}
		if i >= 0 {
			st.Topics[i].Partitions = append(st.Topics[i].Partitions, tp.Partition)
		}
	}
	return st
}

// decodeDescribeTransactions decodes a version 0 body: TransactionalIDs, a
// compact array of compact strings (not nullable), then tags.
func decodeDescribeTransactions(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.SetVersion(version)
	r := &kreader{b: b}
	if n := r.requiredArray(1); n > 0 {
		req.TransactionalIDs = make([]string, 0, n)
		for range n {
			req.TransactionalIDs = append(req.TransactionalIDs, r.string())
		}
	}
	r.tags()
	return req, r.end()
}
