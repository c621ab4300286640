package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId (key 22), versions 0 and 1 (2+ are flexible, see
// header.go). Idempotent
// producers only: each request gets a new producer id (node.NewProducerID)
// with epoch 0. Transactions are not supported yet: a request with a
// transactional id is refused with INVALID_REQUEST.
const (
	initProducerIDMin = 0
	initProducerIDMax = 1
)

func (c *conn) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(req.Version)
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	resp.ProducerID = c.s.node.NewProducerID()
	resp.ProducerEpoch = 0
	return resp
}
