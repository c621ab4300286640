package kafka

import (
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// JoinGroup (key 11), versions 0 to 5 (6+ are flexible, see header.go).
// The rebalance protocol is group.Coordinator's (package group). From
// version 4 a member joining without an id gets MEMBER_ID_REQUIRED and an
// id to join with (KIP-394); before version 1 the rebalance timeout is the
// session timeout. The request blocks until the generation forms.
const (
	joinGroupMin = 0
	joinGroupMax = 5
)

func (c *conn) joinGroup(req *kmsg.JoinGroupRequest, h header) kmsg.Response {
	code := c.authorize(security.Read, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code != 0 {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(req.Version)
		resp.ErrorCode, resp.Generation = code, -1
		return resp
	}
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		host = c.nc.RemoteAddr().String()
	}
	jr := group.JoinRequest{
		Group:           req.Group,
		MemberID:        req.MemberID,
		InstanceID:      req.InstanceID,
		ClientID:        h.clientID,
		Host:            "/" + host,
		SessionTimeout:  time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		ProtocolType:    req.ProtocolType,
		RequireMemberID: req.Version >= 4,
	}
	if req.Version >= 1 {
		jr.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	r, err := c.s.groups.Join(c.ctx, jr)

	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = groupErrorCode(err)
	resp.Generation, resp.LeaderID, resp.MemberID = r.Generation, r.LeaderID, r.MemberID
	if err == nil {
		proto := r.Protocol
		resp.Protocol = &proto
	}
	for _, m := range r.Members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.ProtocolMetadata = m.MemberID, m.Metadata
		if m.InstanceID != "" {
			iid := m.InstanceID
			jm.InstanceID = &iid
		}
		resp.Members = append(resp.Members, jm)
	}
	return resp
}
