package kafka

import (
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup (key 11), versions 0 to 5 (6+ are flexible, see header.go).
// See groups.go for the rebalance protocol. From version 4 a member
// joining without an id gets MEMBER_ID_REQUIRED and an id to join with
// (KIP-394). The request blocks until the generation forms.
const (
	joinGroupMin = 0
	joinGroupMax = 5
)

func (c *conn) joinGroup(req *kmsg.JoinGroupRequest, h header) kmsg.Response {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		host = c.nc.RemoteAddr().String()
	}
	return c.s.groups.join(c.ctx, req, h.clientID, "/"+host)
}
