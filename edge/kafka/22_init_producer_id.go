package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// InitProducerId (key 22), versions 0 and 1 (2+ are flexible, see
// header.go). Without a transactional id (an idempotent producer), each
// request gets a new producer id (node.NewProducerID: in a cluster, from a
// block the metadata log gave this node) with epoch 0; when none can be had
// (no metadata leader) the answer is a retriable error. With one, the
// transaction coordinator (txn.go) answers: the id's stable producer id and
// a new epoch, which fences the older ones (their ongoing transaction is
// aborted); the transaction timeout must be 1 ms to
// Options.TransactionMaxTimeout, 15 minutes by default
// (INVALID_TRANSACTION_TIMEOUT).
const (
	initProducerIDMin = 0
	initProducerIDMax = 1
)

func (c *conn) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(req.Version)
	if req.TransactionalID != nil {
		return c.initTransactionalProducerID(req, resp)
	}
	if code := c.authorize(security.IdempotentWrite, security.ClusterResource); code != 0 {
		resp.ProducerID, resp.ErrorCode = -1, code
		return resp
	}
	id, err := c.s.node.NewProducerID()
	if err != nil {
		code := result.CodeOf(err)
		if code == result.Unknown {
			code = result.NotReady
		}
		c.s.log.Warn("InitProducerId refused: no producer id to give", "err", err)
		resp.ProducerID, resp.ErrorCode = -1, code.Kafka()
		return resp
	}
	resp.ProducerID = id
	resp.ProducerEpoch = 0
	return resp
}

func (c *conn) initTransactionalProducerID(req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) kmsg.Response {
	id := *req.TransactionalID
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if id == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	if code := c.authorize(security.Write, security.TransactionalIDResource(id)); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if code := c.txnCoordinatorCode(id); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	pid, epoch, err := c.s.txns.InitProducerID(c.ctx, c.txnSession, id, msDuration(req.TransactionTimeoutMillis))
	if err != nil {
		resp.ErrorCode = c.txnErrorCode(err, kerr.InvalidProducerEpoch.Code)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = pid, epoch
	return resp
}
