package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups (key 15), versions 0 to 4 (5+ are flexible, see
// header.go). A group with committed offsets but no members is Empty; a
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
		gi, ok := c.s.groups.describe(name)
		switch {
		case ok:
			rg.State, rg.ProtocolType, rg.Protocol = gi.state, gi.protocolType, gi.protocol
		case len(c.s.offsets.Committed(name)) > 0:
			rg.State = "Empty"
		default:
			rg.State = "Dead"
		}
		for _, m := range gi.members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.id, m.clientID, m.host
			if m.instanceID != "" {
				iid := m.instanceID
				rm.InstanceID = &iid
			}
			rm.ProtocolMetadata, rm.MemberAssignment = m.metadata, m.assignment
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
