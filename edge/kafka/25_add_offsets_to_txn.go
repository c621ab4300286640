package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// AddOffsetsToTxn (key 25), versions 0 to 4 (3 and 4 are flexible,
// decoded by decodeAddOffsetsToTxn; 4 changes no field, it tells the
// server the client knows TRANSACTION_ABORTABLE): adds a consumer group to the producer's transaction, so that
// TxnOffsetCommit may store the group's offsets in it. The coordinator of
// transactions is the coordinator of groups, so there is no group
// coordinator to name: the client sends TxnOffsetCommit to the node that
// FindCoordinator names for the group, this one.
const (
	addOffsetsToTxnMin = 0
	addOffsetsToTxnMax = 4
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

// decodeAddOffsetsToTxn decodes an AddOffsetsToTxn body: versions 0 to 2
// by kmsg (not flexible), 3 and 4 here: TransactionalID (a compact
// string), ProducerID int64, ProducerEpoch int16, Group (a compact
// string), then tags.
func decodeAddOffsetsToTxn(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	if version < 3 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionalID = r.string()
	req.ProducerID = r.int64()
	req.ProducerEpoch = r.int16()
	req.Group = r.string()
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
