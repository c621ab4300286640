package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/security"
)

// DescribeAcls (key 29), versions 0 and 1 (2+ are flexible, see
// header.go; v0 has no pattern type: its filter is LITERAL). The ACLs the
// filter selects (resource type ANY or one type; pattern ANY, MATCH,
// LITERAL or PREFIXED; name, principal and host null for any; operation
// and permission ANY or one), grouped by resource. Needs describe on the
// cluster. An ACL limited to jurisdictions shows host
// "*;jurisdictions=...".
const (
	describeACLsMin = 0
	describeACLsMax = 1
)

func (c *conn) describeACLs(req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeACLsResponse()
	resp.SetVersion(req.Version)
	fail := func(code int16, msg string) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	if code := c.authorize(security.Describe, security.ClusterResource); code != 0 {
		return fail(code, "describing ACLs needs describe on the cluster")
	}
	pat := req.ResourcePatternType
	if req.Version == 0 {
		pat = kmsg.ACLResourcePatternTypeLiteral
	}
	f, err := aclFilter(req.ResourceType, req.ResourceName, pat, req.Principal, req.Host, req.Operation, req.PermissionType)
	if errors.Is(err, errNoMatch) {
		return resp
	}
	if err != nil {
		return fail(kerr.InvalidRequest.Code, "ACL filter: "+err.Error())
	}
	r, err := c.aclAdmin(admin.ListACLs{Filters: []admin.ACLFilter{f}})
	if err != nil {
		return fail(aclErrorCode(err), err.Error())
	}
	type key struct {
		typ, name, pat string
	}
	index := map[key]int{}
	for _, a := range r.ACLs {
		k := key{a.ResourceType, a.Name, a.Pattern}
		i, ok := index[k]
		if !ok {
			rr := kmsg.NewDescribeACLsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ResourcePatternType = aclKafkaResource(a.ResourceType), a.Name, aclKafkaPattern(a.Pattern)
			i = len(resp.Resources)
			index[k] = i
			resp.Resources = append(resp.Resources, rr)
		}
		ra := kmsg.NewDescribeACLsResponseResourceACL()
		ra.Principal, ra.Host, ra.Operation, ra.PermissionType = a.Principal, kafkaHost(a), aclKafkaOp(a.Operation), aclKafkaPermission(a.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, ra)
	}
	return resp
}
