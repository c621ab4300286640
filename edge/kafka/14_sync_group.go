package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// SyncGroup (key 14), versions 0 to 3 (4+ are flexible, see header.go).
// The leader sends every member's assignment; each member, the leader
// included, gets its own back once the leader's request has arrived
// (group.Coordinator.Sync).
const (
	syncGroupMin = 0
	syncGroupMax = 3
)

func (c *conn) syncGroup(req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.SetVersion(req.Version)
	code := c.authorize(security.Read, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code != 0 {
		resp.ErrorCode, resp.MemberAssignment = code, []byte{}
		return resp
	}
	ref := group.MemberRef{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation, InstanceID: req.InstanceID}
	var assignments []group.MemberAssignment
	for _, a := range req.GroupAssignment {
		assignments = append(assignments, group.MemberAssignment{MemberID: a.MemberID, Assignment: a.MemberAssignment})
	}
	a, err := c.s.groups.Sync(c.ctx, ref, assignments)
	resp.ErrorCode, resp.MemberAssignment = groupErrorCode(err), a
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}
