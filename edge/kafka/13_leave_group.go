package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup (key 13), versions 0 to 3 (4+ are flexible, see header.go).
// Versions 0 to 2 name one member; version 3 a list (KIP-345), each
// answered on its own. The group rebalances without the members that left.
const (
	leaveGroupMin = 0
	leaveGroupMax = 3
)

func (c *conn) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrLeaveGroupResponse()
	resp.SetVersion(req.Version)
	if req.Version < 3 {
		resp.ErrorCode = c.s.groups.leave(req.Group, []string{req.MemberID}, []*string{nil})[0]
		return resp
	}
	ids := make([]string, len(req.Members))
	instances := make([]*string, len(req.Members))
	for i, m := range req.Members {
		ids[i], instances[i] = m.MemberID, m.InstanceID
	}
	codes := c.s.groups.leave(req.Group, ids, instances)
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
