package security

import (
	"fmt"

	"github.com/sensehq/sense/result"
)

// Action is what a principal asks to do to a resource; the names follow
// Kafka's ACL operations, so that ACLs can map onto them.
type Action uint8

// Actions.
const (
	Read            Action = iota + 1 // fetch, subscribe, consumer-group reads and commits
	Write                             // produce
	Create                            // create a pipeline or a user
	Delete                            // delete a pipeline, a group or a user
	Alter                             // change settings, hubs, users
	Describe                          // list and describe
	DescribeConfigs                   // read settings
	AlterConfigs                      // change settings
	IdempotentWrite                   // get a producer id
	// All is an ACL's operation that matches every action; the edges
	// never ask for it.
	All
)

var actionNames = [...]string{"", "read", "write", "create", "delete", "alter", "describe", "describe_configs", "alter_configs", "idempotent_write", "all"}

// String returns the action's name ("write").
func (a Action) String() string {
	if int(a) < len(actionNames) && a != 0 {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ResourceType is the kind of thing an action is on.
type ResourceType uint8

// Resource types.
const (
	Cluster         ResourceType = iota + 1 // the cluster itself: hubs, users, audit, producer ids
	Pipeline                                // a pipeline (a Kafka topic)
	Group                                   // a consumer group
	TransactionalID                         // a Kafka transactional id
)

var resourceNames = [...]string{"", "cluster", "pipeline", "group", "transactional_id"}

// String returns the resource type's name ("pipeline").
func (t ResourceType) String() string {
	if int(t) < len(resourceNames) && t != 0 {
		return resourceNames[t]
	}
	return fmt.Sprintf("resource(%d)", uint8(t))
}

// Resource is one thing an action is on: a pipeline or group by name, or
// the cluster (Name empty).
type Resource struct {
	Type ResourceType
	Name string
}

// ClusterResource is the cluster.
var ClusterResource = Resource{Type: Cluster}

// PipelineResource returns the resource of a pipeline.
func PipelineResource(name string) Resource { return Resource{Type: Pipeline, Name: name} }

// TransactionalIDResource returns the resource of a transactional id.
func TransactionalIDResource(id string) Resource { return Resource{Type: TransactionalID, Name: id} }

// GroupResource returns the resource of a consumer group.
func GroupResource(name string) Resource { return Resource{Type: Group, Name: name} }

func (r Resource) String() string {
	if r.Name == "" {
		return r.Type.String()
	}
	return r.Type.String() + " " + r.Name
}

// Authorizer decides whether a principal may do an action on a resource.
// It returns nil to allow, and a *DeniedError to deny. Every edge calls it
// at its produce, fetch, group and admin points; an implementation must
// be safe for concurrent use and cheap, since produce calls it per
// request.
type Authorizer interface {
	Authorize(p Principal, a Action, r Resource) error
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(p Principal, a Action, r Resource) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(p Principal, a Action, r Resource) error { return f(p, a, r) }

// DeniedError is an Authorizer's refusal. errors.Is matches it with
// result.ErrUnauthorized.
type DeniedError struct {
	Principal Principal
	Action    Action
	Resource  Resource
	Reason    string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s may not %s %s: %s", e.Principal, e.Action, e.Resource, e.Reason)
}

// Is matches result.ErrUnauthorized.
func (e *DeniedError) Is(target error) bool { return target == result.ErrUnauthorized }

// AsResult returns the refusal as a *result.Error of code UNAUTHORIZED,
// for the edges that send codes.
func (e *DeniedError) AsResult() *result.Error { return result.New(result.Unauthorized, e.Error()) }

// DefaultAuthorizer is the authorization Sense has until ACLs: with
// security off, anyone may do anything; with it on, any authenticated
// principal may (superusers included), and the anonymous principal
// nothing.
type DefaultAuthorizer struct {
	Enabled bool
}

// Authorize implements Authorizer.
func (d DefaultAuthorizer) Authorize(p Principal, a Action, r Resource) error {
	if !d.Enabled || p.Superuser || p.Authenticated() {
		return nil
	}
	return &DeniedError{Principal: p, Action: a, Resource: r, Reason: "authenticate first (security.enabled is on; docs/security.md)"}
}
