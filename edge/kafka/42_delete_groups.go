package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups (key 42), versions 0 and 1 (2+ are flexible, see
// header.go): a group without members is forgotten with its committed
// offsets (durably); a group with members gets NON_EMPTY_GROUP, an unknown
// one GROUP_ID_NOT_FOUND.
const (
	deleteGroupsMin = 0
	deleteGroupsMax = 1
)

func (c *conn) deleteGroups(req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	resp.SetVersion(req.Version)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		known, empty := c.s.groups.forget(name)
		hasOffsets := len(c.s.offsets.Committed(name)) > 0
		switch {
		case name == "":
			rg.ErrorCode = kerr.InvalidGroupID.Code
		case known && !empty:
			rg.ErrorCode = kerr.NonEmptyGroup.Code
		case !known && !hasOffsets:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		default:
			if err := c.s.offsets.DeleteGroup(name); err != nil {
				c.log.Error("deleting a group's committed offsets failed", "group", name, "err", err)
				rg.ErrorCode = kerr.UnknownServerError.Code
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
