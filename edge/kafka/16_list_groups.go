package kafka

import (
	"slices"

	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups (key 16), versions 0 to 2 (3+ are flexible, see header.go):
// the groups the coordinator knows (group.Coordinator.Names) and the
// groups with committed offsets (group.Store.Groups).
const (
	listGroupsMin = 0
	listGroupsMax = 2
)

func (c *conn) listGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrListGroupsResponse()
	resp.SetVersion(req.Version)
	names := c.s.groups.Names()
	for _, n := range c.s.offsets.Groups() {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	all := c.may(security.Describe, security.ClusterResource)
	for _, n := range names {
		if !all && !c.may(security.Describe, security.GroupResource(n)) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = n
		if gi, ok := c.s.groups.Describe(n); ok {
			lg.ProtocolType = gi.ProtocolType
		}
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}
