package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// DeleteGroups (key 42), versions 0 and 1 (2+ are flexible, see
// header.go): a group without members is forgotten by the coordinator
// (group.Coordinator.Forget) with its committed offsets (durably,
// group.Store.DeleteGroup); a group with members gets NON_EMPTY_GROUP, an
// unknown one GROUP_ID_NOT_FOUND.
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
		if name == "" {
			rg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if code := c.authorize(security.Delete, security.GroupResource(name)); code != 0 {
			rg.ErrorCode = code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		err := c.s.groups.Forget(name)
		switch {
		case errors.Is(err, group.ErrNonEmptyGroup):
			rg.ErrorCode = groupErrorCode(err)
		case errors.Is(err, group.ErrGroupIDNotFound) && len(c.s.offsets.Committed(name)) == 0:
			rg.ErrorCode = groupErrorCode(err)
		default:
			if err := c.s.offsets.DeleteGroup(name); errors.Is(err, group.ErrNotReady) {
				rg.ErrorCode = kerr.NotCoordinator.Code // the lead moved: the client asks the new coordinator
			} else if err != nil {
				c.log.Error("deleting a group's committed offsets failed", "group", name, "err", err)
				rg.ErrorCode = kerr.UnknownServerError.Code
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
