package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/security"
)

// DeleteAcls (key 31), versions 0 and 1 (2+ are flexible, see header.go;
// v0 filters are LITERAL). Each filter (as DescribeAcls's) deletes the
// ACLs it matches, which its result lists; a filter with host null or
// "*" also matches ACLs limited to jurisdictions. Needs alter on the
// cluster.
const (
	deleteACLsMin = 0
	deleteACLsMax = 1
)

func (c *conn) deleteACLs(req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteACLsResponse()
	resp.SetVersion(req.Version)
	denied := c.authorize(security.Alter, security.ClusterResource)
	for _, f := range req.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		fail := func(code int16, msg string) {
			res.ErrorCode, res.ErrorMessage = code, &msg
		}
		pat := f.ResourcePatternType
		if req.Version == 0 {
			pat = kmsg.ACLResourcePatternTypeLiteral
		}
		af, err := aclFilter(f.ResourceType, f.ResourceName, pat, f.Principal, f.Host, f.Operation, f.PermissionType)
		switch {
		case denied != 0:
			fail(denied, "deleting ACLs needs alter on the cluster")
		case errors.Is(err, errNoMatch):
		case err != nil:
			fail(kerr.InvalidRequest.Code, "ACL filter: "+err.Error())
		default:
			r, err := c.aclAdmin(admin.DeleteACLs{Filters: []admin.ACLFilter{af}})
			if err != nil {
				fail(aclErrorCode(err), err.Error())
				break
			}
			for _, a := range r.ACLs {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = aclKafkaResource(a.ResourceType), a.Name, aclKafkaPattern(a.Pattern)
				m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, kafkaHost(a), aclKafkaOp(a.Operation), aclKafkaPermission(a.Permission)
				res.MatchingACLs = append(res.MatchingACLs, m)
			}
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}
