package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// LeaveGroup (key 13), versions 0 to 3 (4+ are flexible, see header.go).
// Versions 0 to 2 name one member; version 3 a list (KIP-345), each
// answered on its own. The group rebalances without the members that left
// (group.Coordinator.Leave).
const (
	leaveGroupMin = 0
	leaveGroupMax = 3
)

func (c *conn) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrLeaveGroupResponse()
	resp.SetVersion(req.Version)
	code := c.authorize(security.Read, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if req.Version < 3 {
		errs := c.s.groups.Leave(req.Group, []group.LeavingMember{{MemberID: req.MemberID}})
		resp.ErrorCode = groupErrorCode(errs[0])
		return resp
	}
	members := make([]group.LeavingMember, len(req.Members))
	for i, m := range req.Members {
		members[i] = group.LeavingMember{MemberID: m.MemberID, InstanceID: m.InstanceID}
	}
	errs := c.s.groups.Leave(req.Group, members)
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, groupErrorCode(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
