package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// AddOffsetsToTxn (key 25), versions 0 to 2 (3+ are flexible, see
// header.go): adds a consumer group to the producer's transaction, so that
// TxnOffsetCommit may store the group's offsets in it. The coordinator of
// transactions is the coordinator of groups, so there is no group
// coordinator to name: the client sends TxnOffsetCommit to the node that
// FindCoordinator names for the group, this one.
const (
	addOffsetsToTxnMin = 0
	addOffsetsToTxnMax = 2
)

func (c *conn) addOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrAddOffsetsToTxnResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = c.authorize(security.Write, security.TransactionalIDResource(req.TransactionalID))
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.txnCoordinatorCode(req.TransactionalID)
	}
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.authorize(security.Read, security.GroupResource(req.Group))
	}
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.txnErrorCode(c.s.txns.AddOffsets(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group), fencedCode(req.Version))
	}
	return resp
}
