package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// InitProducerId (key 22), versions 0 and 1 (2+ are flexible, see
// header.go). Idempotent
// producers only: each request gets a new producer id (node.NewProducerID:
// in a cluster, from a block the metadata log gave this node) with epoch 0;
// when none can be had (no metadata leader) the answer is a retriable error. Transactions are not supported yet: a request with a
// transactional id is refused with INVALID_REQUEST.
const (
	initProducerIDMin = 0
	initProducerIDMax = 1
)

func (c *conn) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(req.Version)
	if req.TransactionalID != nil {
		resp.ProducerID, resp.ErrorCode = -1, kerr.InvalidRequest.Code
		if code := c.authorize(security.Write, security.TransactionalIDResource(*req.TransactionalID)); code != 0 {
			resp.ErrorCode = code
		}
		return resp
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
