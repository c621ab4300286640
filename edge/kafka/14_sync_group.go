package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// SyncGroup (key 14), versions 0 to 3 (4+ are flexible, see header.go).
// The leader sends every member's assignment; each member, the leader
// included, gets its own back once the leader's request has arrived.
const (
	syncGroupMin = 0
	syncGroupMax = 3
)

func (c *conn) syncGroup(req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.SetVersion(req.Version)
	r := c.s.groups.sync(c.ctx, req)
	resp.ErrorCode, resp.MemberAssignment = r.code, r.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}
