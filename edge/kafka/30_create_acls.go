package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/security"
)

// CreateAcls (key 30), versions 0 and 1 (2+ are flexible, see header.go;
// v0 creations are LITERAL). Each creation is one ACL, answered in
// order: INVALID_REQUEST with the reason for one Sense cannot keep (a
// host other than "*", an operation that does not apply to the resource
// type, a pattern type other than LITERAL or PREFIXED, resource types
// DELEGATION_TOKEN and USER). An ACL made this way has no jurisdictions.
// Needs alter on the cluster.
const (
	createACLsMin = 0
	createACLsMax = 1
)

func (c *conn) createACLs(req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateACLsResponse()
	resp.SetVersion(req.Version)
	denied := c.authorize(security.Alter, security.ClusterResource)
	for _, cr := range req.Creations {
		res := kmsg.NewCreateACLsResponseResult()
		answer := func(code int16, msg string) {
			res.ErrorCode = code
			if msg != "" {
				res.ErrorMessage = &msg
			}
			resp.Results = append(resp.Results, res)
		}
		if denied != 0 {
			answer(denied, "creating ACLs needs alter on the cluster")
			continue
		}
		info, err := createInfo(req.Version, cr)
		if err != nil {
			answer(kerr.InvalidRequest.Code, err.Error())
			continue
		}
		if _, err := c.aclAdmin(admin.CreateACLs{ACLs: []admin.ACLInfo{info}}); err != nil {
			answer(aclErrorCode(err), err.Error())
			continue
		}
		answer(0, "")
	}
	return resp
}

func createInfo(version int16, cr kmsg.CreateACLsRequestCreation) (admin.ACLInfo, error) {
	var i admin.ACLInfo
	var err error
	if i.ResourceType, err = aclResourceName(cr.ResourceType); err != nil {
		if err == errNoMatch {
			return i, errUnsupportedResource(cr.ResourceType)
		}
		return i, err
	}
	switch pat := cr.ResourcePatternType; {
	case version == 0 || pat == kmsg.ACLResourcePatternTypeLiteral:
		i.Pattern = "literal"
	case pat == kmsg.ACLResourcePatternTypePrefixed:
		i.Pattern = "prefixed"
	default:
		return i, errString("an ACL's pattern type is LITERAL or PREFIXED, not " + pat.String())
	}
	if i.Operation, err = aclOpName(cr.Operation); err != nil {
		if err == errNoMatch {
			return i, errString("operation " + cr.Operation.String() + " does not exist in Sense")
		}
		return i, err
	}
	if i.Permission, err = aclPermissionName(cr.PermissionType); err != nil {
		return i, err
	}
	i.Principal, i.Name, i.Host = cr.Principal, cr.ResourceName, cr.Host
	return i, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func errUnsupportedResource(t kmsg.ACLResourceType) error {
	return errString("resource type " + t.String() + " has no ACLs in Sense: use TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID")
}
