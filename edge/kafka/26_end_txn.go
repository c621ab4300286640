package kafka

import (
	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn (key 26), versions 0 to 2 (3+ are flexible, see header.go; 5 is
// KIP-890's): commits or aborts the producer's transaction. The answer
// comes once the outcome is logged and every partition's marker is
// durable (so a read_committed consumer sees a committed transaction's
// records as soon as the producer's commit returns), and the group
// offsets of a commit are stored. An EndTxn sent before the ongoing
// transaction began is refused with INVALID_TXN_STATE (the fence of
// package txn, fence.go).
const (
	endTxnMin = 0
	endTxnMax = 2
)

func (c *conn) endTxn(req *kmsg.EndTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrEndTxnResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = c.authorize(security.Write, security.TransactionalIDResource(req.TransactionalID))
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.txnCoordinatorCode(req.TransactionalID)
	}
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.txnErrorCode(c.s.txns.EndTxn(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit), fencedCode(req.Version))
	}
	return resp
}
