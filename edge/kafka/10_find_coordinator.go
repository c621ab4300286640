package kafka

import (
	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator (key 10), versions 0 to 2 (3+ are flexible, see
// header.go). A node alone coordinates every group (its group.Coordinator,
// see groups.go) and every transactional id (key type 1, its
// txn.Coordinator, see txn.go); in a cluster, Options.Cluster names the
// coordinator of both: the leader of the replicated committed offsets,
// which hold the transactions' state too. It needs describe on the group,
// or on the transactional id (which write on it implies), as Kafka's.
const (
	findCoordinatorMin = 0
	findCoordinatorMax = 2
)

func (c *conn) findCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.SetVersion(req.Version)
	if req.CoordinatorType != 0 && req.CoordinatorType != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := "unknown coordinator type: 0 (a group) and 1 (a transactional id) exist"
		resp.ErrorMessage = &msg
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	if req.CoordinatorType == 1 && req.CoordinatorKey == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	if req.CoordinatorKey == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	res := security.GroupResource(req.CoordinatorKey)
	if req.CoordinatorType == 1 {
		res = security.TransactionalIDResource(req.CoordinatorKey)
	}
	if code := c.authorize(security.Describe, res); code != 0 {
		resp.ErrorCode = code
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	b, ok := c.cluster().Coordinator(req.CoordinatorKey)
	if !ok {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		msg := "no node coordinates consumer groups and transactions now (the group offsets have no leader yet); retry"
		resp.ErrorMessage = &msg
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	resp.NodeID, resp.Host, resp.Port = b.ID, b.Host, b.Port
	return resp
}
