package kafka

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// ACLs over Kafka's API (DescribeAcls, CreateAcls, DeleteAcls): Kafka's
// ACL bindings and filters map onto the node's ACLs (admin acl.list,
// acl.create, acl.delete), topics onto pipelines. An ACL Sense limits to
// jurisdictions cannot be expressed in a Kafka binding: DescribeAcls
// shows its host as "*;jurisdictions=MA,SN", a DeleteAcls filter with
// host null or "*" (or that exact host) matches it, and CreateAcls
// makes ACLs without jurisdictions (`sense acl add --jurisdiction` makes
// the others).

// errNoMatch marks a filter field that can match no Sense ACL (such as
// resource type DELEGATION_TOKEN): the filter selects nothing.
var errNoMatch = fmt.Errorf("matches no ACL")

func aclResourceName(t kmsg.ACLResourceType) (string, error) {
	switch t {
	case kmsg.ACLResourceTypeTopic:
		return "pipeline", nil
	case kmsg.ACLResourceTypeGroup:
		return "group", nil
	case kmsg.ACLResourceTypeCluster:
		return "cluster", nil
	case kmsg.ACLResourceTypeTransactionalId:
		return "transactional_id", nil
	case kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
		return "", errNoMatch
	}
	return "", fmt.Errorf("resource type %d is not topic, group, cluster or transactional id", t)
}

func aclKafkaResource(s string) kmsg.ACLResourceType {
	switch s {
	case "pipeline":
		return kmsg.ACLResourceTypeTopic
	case "group":
		return kmsg.ACLResourceTypeGroup
	case "cluster":
		return kmsg.ACLResourceTypeCluster
	case "transactional_id":
		return kmsg.ACLResourceTypeTransactionalId
	}
	return kmsg.ACLResourceTypeUnknown
}

var aclOps = map[kmsg.ACLOperation]string{
	kmsg.ACLOperationAll: "all", kmsg.ACLOperationRead: "read", kmsg.ACLOperationWrite: "write",
	kmsg.ACLOperationCreate: "create", kmsg.ACLOperationDelete: "delete", kmsg.ACLOperationAlter: "alter",
	kmsg.ACLOperationDescribe: "describe", kmsg.ACLOperationDescribeConfigs: "describe_configs",
	kmsg.ACLOperationAlterConfigs: "alter_configs", kmsg.ACLOperationIdempotentWrite: "idempotent_write",
}

func aclOpName(o kmsg.ACLOperation) (string, error) {
	if n, ok := aclOps[o]; ok {
		return n, nil
	}
	switch o {
	case kmsg.ACLOperationClusterAction, kmsg.ACLOperationCreateTokens, kmsg.ACLOperationDescribeTokens:
		return "", errNoMatch
	}
	return "", fmt.Errorf("operation %d is not a Kafka ACL operation", o)
}

func aclKafkaOp(s string) kmsg.ACLOperation {
	for o, n := range aclOps {
		if n == s {
			return o
		}
	}
	return kmsg.ACLOperationUnknown
}

func aclPermissionName(p kmsg.ACLPermissionType) (string, error) {
	switch p {
	case kmsg.ACLPermissionTypeAllow:
		return "allow", nil
	case kmsg.ACLPermissionTypeDeny:
		return "deny", nil
	}
	return "", fmt.Errorf("permission type %d is not ALLOW or DENY", p)
}

func aclKafkaPermission(s string) kmsg.ACLPermissionType {
	if s == "deny" {
		return kmsg.ACLPermissionTypeDeny
	}
	return kmsg.ACLPermissionTypeAllow
}

func aclKafkaPattern(s string) kmsg.ACLResourcePatternType {
	if s == "prefixed" {
		return kmsg.ACLResourcePatternTypePrefixed
	}
	return kmsg.ACLResourcePatternTypeLiteral
}

// kafkaHost is the host DescribeAcls and DeleteAcls show for an ACL.
func kafkaHost(a admin.ACLInfo) string {
	host := a.Host
	if host == "" {
		host = "*"
	}
	if len(a.Jurisdictions) > 0 {
		host += ";jurisdictions=" + strings.Join(a.Jurisdictions, ",")
	}
	return host
}

// aclFilter turns a Kafka ACL binding filter into the admin API's.
func aclFilter(t kmsg.ACLResourceType, name *string, pat kmsg.ACLResourcePatternType, principal, host *string,
	op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (admin.ACLFilter, error) {
	var f admin.ACLFilter
	var err error
	if t != kmsg.ACLResourceTypeAny {
		if f.ResourceType, err = aclResourceName(t); err != nil {
			return f, err
		}
	}
	if name != nil {
		f.Name = *name
	}
	switch pat {
	case kmsg.ACLResourcePatternTypeAny:
	case kmsg.ACLResourcePatternTypeMatch:
		f.Pattern = "match"
	case kmsg.ACLResourcePatternTypeLiteral:
		f.Pattern = "literal"
	case kmsg.ACLResourcePatternTypePrefixed:
		f.Pattern = "prefixed"
	default:
		return f, fmt.Errorf("pattern type %d is not ANY, MATCH, LITERAL or PREFIXED", pat)
	}
	if principal != nil {
		f.Principal = *principal
	}
	if host != nil {
		f.Host = *host
	}
	if op != kmsg.ACLOperationAny {
		if f.Operation, err = aclOpName(op); err != nil {
			return f, err
		}
	}
	if perm != kmsg.ACLPermissionTypeAny {
		if f.Permission, err = aclPermissionName(perm); err != nil {
			return f, err
		}
	}
	return f, nil
}

// aclAdmin runs an ACL request of the admin API on behalf of the
// connection's principal (so that the security audit log names it).
func (c *conn) aclAdmin(req admin.Request) (admin.Response, error) {
	h := c.s.opts.Admin
	if h == nil {
		return admin.Response{}, result.New(result.InvalidRequest, "this listener keeps no ACLs")
	}
	if ch, ok := h.(admin.ContextHandler); ok {
		return ch.AdminContext(security.NewContext(context.Background(), c.principal), req)
	}
	return h.Admin(req)
}

// aclErrorCode is the Kafka code of a refused ACL request.
func aclErrorCode(err error) int16 {
	switch result.CodeOf(err) {
	case result.InvalidRequest, result.Malformed:
		return kerr.InvalidRequest.Code
	case result.Unauthorized:
		return kerr.ClusterAuthorizationFailed.Code
	case result.NotReady, result.Timeout:
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
