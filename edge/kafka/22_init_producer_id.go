package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// InitProducerId (key 22), versions 0 to 5 (2+ are flexible, decoded by
// decodeInitProducerID). Without a transactional id (an idempotent
// producer), each request gets a new producer id (node.NewProducerID: in a
// cluster, from a block the metadata log gave this node) with epoch 0,
// whatever producer id the request names, as Kafka answers; when none can
// be had (no metadata leader) the answer is a retriable error. With one,
// the transaction coordinator (txn.go) answers: the id's stable producer
// id and a new epoch, which fences the older ones (their ongoing
// transaction is aborted); the transaction timeout must be 1 ms to
// Options.TransactionMaxTimeout, 15 minutes by default
// (INVALID_TRANSACTION_TIMEOUT). From version 3 a producer may name the
// producer id and epoch it has (KIP-360): it keeps its producer id with a
// new epoch, or, if it names the epoch before the id's last bump (a bump it
// did not hear of, or the coordinator's abort of its transaction on a
// timeout, KIP-588), gets the current epoch; any other is fenced
// (PRODUCER_FENCED from version 4, INVALID_PRODUCER_EPOCH before).
// Versions 4 and 5 change no field: they tell the server the client knows
// PRODUCER_FENCED and TRANSACTION_ABORTABLE (which Sense never answers).
const (
	initProducerIDMin = 0
	initProducerIDMax = 5
)

func (c *conn) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(req.Version)
	if (req.ProducerID == -1) != (req.ProducerEpoch == -1) {
		c.s.log.Warn("InitProducerId refused: a producer id without an epoch, or an epoch without a producer id",
			"producer_id", req.ProducerID, "epoch", req.ProducerEpoch)
		resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode = -1, -1, kerr.InvalidRequest.Code
		return resp
	}
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
	pid, epoch, err := c.s.txns.RecoverProducerID(c.ctx, c.txnSession, id, msDuration(req.TransactionTimeoutMillis), req.ProducerID, req.ProducerEpoch)
	if err != nil {
		fenced := kerr.InvalidProducerEpoch.Code
		if req.Version >= 4 {
			fenced = kerr.ProducerFenced.Code
		}
		resp.ErrorCode = c.txnErrorCode(err, fenced)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = pid, epoch
	return resp
}

// decodeInitProducerID decodes an InitProducerId body: versions 0 and 1 by
// kmsg (not flexible), 2 to 5 here: TransactionalID (a compact nullable
// string), TransactionTimeoutMillis int32, from version 3 ProducerID int64
// and ProducerEpoch int16 (-1 before it), then tags.
func decodeInitProducerID(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	if version < 2 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionalID = r.nullableString()
	req.TransactionTimeoutMillis = r.int32()
	if version >= 3 {
		req.ProducerID = r.int64()
		req.ProducerEpoch = r.int16()
	}
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
