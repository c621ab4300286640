package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// DescribeGroups (key 15), versions 0 to 4 (5+ are flexible, see
// header.go): the group coordinator's snapshot (group.Coordinator.Describe).
// A group with committed offsets (group.Store) but no members is Empty; a
// group this node knows nothing of is Dead, as in Kafka.
const (
	describeGroupsMin = 0
	describeGroupsMax = 4
)

func (c *conn) describeGroups(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	resp.SetVersion(req.Version)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648 // not requested or not supported
		if name == "" {
			rg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if code := c.authorize(security.Describe, security.GroupResource(name)); code != 0 {
			rg.ErrorCode = code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		gi, ok := c.s.groups.Describe(name)
		switch {
		case ok:
			rg.State, rg.ProtocolType, rg.Protocol = gi.State.String(), gi.ProtocolType, gi.Protocol
		case len(c.s.offsets.Committed(name)) > 0:
			rg.State = group.StateEmpty.String()
		default:
			rg.State = group.StateDead.String()
		}
		for _, m := range gi.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.Host
			if m.InstanceID != "" {
				iid := m.InstanceID
				rm.InstanceID = &iid
			}
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
			if rm.ProtocolMetadata == nil {
				rm.ProtocolMetadata = []byte{}
			}
			if rm.MemberAssignment == nil {
				rm.MemberAssignment = []byte{}
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
