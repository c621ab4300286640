package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat (key 12), versions 0 to 3 (4+ are flexible, see header.go).
// It keeps a member's session; REBALANCE_IN_PROGRESS tells it to rejoin.
const (
	heartbeatMin = 0
	heartbeatMax = 3
)

func (c *conn) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = c.s.groups.heartbeat(req)
	return resp
}
