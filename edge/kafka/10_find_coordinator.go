package kafka

import (
	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator (key 10), versions 0 to 2 (3+ are flexible, see
// header.go). A node alone coordinates every group (its group.Coordinator,
// see groups.go); in a cluster, Options.Cluster names the coordinator. Transactions are not
// supported, so a transaction coordinator lookup gets
// COORDINATOR_NOT_AVAILABLE.
const (
	findCoordinatorMin = 0
	findCoordinatorMax = 2
)

func (c *conn) findCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.SetVersion(req.Version)
	if req.CoordinatorType != 0 {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		msg := "Sense does not support Kafka transactions yet: there is no transaction coordinator"
		resp.ErrorMessage = &msg
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	if req.CoordinatorKey == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	if code := c.authorize(security.Describe, security.GroupResource(req.CoordinatorKey)); code != 0 {
		resp.ErrorCode = code
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	b, ok := c.cluster().Coordinator(req.CoordinatorKey)
	if !ok {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		msg := "no node coordinates consumer groups now (the group offsets have no leader yet); retry"
		resp.ErrorMessage = &msg
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	resp.NodeID, resp.Host, resp.Port = b.ID, b.Host, b.Port
	return resp
}
