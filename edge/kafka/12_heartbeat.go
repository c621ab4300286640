package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// Heartbeat (key 12), versions 0 to 3 (4+ are flexible, see header.go).
// It keeps a member's session (group.Coordinator.Heartbeat);
// REBALANCE_IN_PROGRESS tells it to rejoin.
const (
	heartbeatMin = 0
	heartbeatMax = 3
)

func (c *conn) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.SetVersion(req.Version)
	code := c.authorize(security.Read, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	err := c.s.groups.Heartbeat(group.MemberRef{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation, InstanceID: req.InstanceID})
	resp.ErrorCode = groupErrorCode(err)
	return resp
}
