package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// EndTxn (key 26), versions 0 to 5 (3+ are flexible, decoded by
// decodeEndTxn; 5 is KIP-890 part 2's, served where transaction version 2
// is in effect): commits or aborts the producer's transaction. The answer
// comes once the outcome is logged and every partition's marker is
// durable (so a read_committed consumer sees a committed transaction's
// records as soon as the producer's commit returns), and the group
// offsets of a commit are stored.
//
// Versions 0 to 4 keep the producer's epoch; an EndTxn sent before the
// ongoing transaction began is refused with INVALID_TXN_STATE (the fence
// of package txn, fence.go). Version 5 bumps the epoch at every EndTxn
// and answers the new producer id and epoch (txn.Coordinator.EndTxnBump):
// a retry is answered with the same ones, an EndTxn of an older epoch (a
// delayed one, of an earlier transaction) with PRODUCER_FENCED, and an
// abort with no transaction ongoing is accepted.
const (
	endTxnMin    = 0
	endTxnMax    = 5
	endTxnMaxTV1 = 2
	// endTxnBump is the first version that bumps the epoch.
	endTxnBump = 5
)

func (c *conn) endTxn(req *kmsg.EndTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrEndTxnResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = c.authorize(security.Write, security.TransactionalIDResource(req.TransactionalID))
	if resp.ErrorCode == 0 {
		resp.ErrorCode = c.txnCoordinatorCode(req.TransactionalID)
	}
	if resp.ErrorCode != 0 {
		return resp
	}
	if req.Version < endTxnBump {
		resp.ErrorCode = c.txnErrorCode(c.s.txns.EndTxn(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit), fencedCode(req.Version))
		return resp
	}
	pid, epoch, err := c.s.txns.EndTxnBump(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	if resp.ErrorCode = c.txnErrorCode(err, fencedCode(req.Version)); resp.ErrorCode == 0 {
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
	}
	return resp
}

// decodeEndTxn decodes an EndTxn body: versions 0 to 2 by kmsg (not
// flexible), 3 to 5 here: TransactionalID (a compact string), ProducerID
// int64, ProducerEpoch int16, Commit (a boolean byte), then tags.
func decodeEndTxn(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrEndTxnRequest()
	if version < 3 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionalID = r.string()
	req.ProducerID = r.int64()
	req.ProducerEpoch = r.int16()
	req.Commit = r.bool()
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
