package security

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ACLs. An ACL allows or denies one principal (a user, or every user) one
// operation on resources of one type: those of one name (a literal
// pattern; the literal name "*" is every resource of the type), or those
// whose name begins with a prefix (a prefixed pattern). The model is
// Kafka's, so that Kafka's DescribeAcls, CreateAcls and DeleteAcls map
// onto it; Sense adds jurisdictions to read ACLs (ReadLimit).

// PatternType is how an ACL's resource name matches resources.
type PatternType uint8

// Pattern types. Match is for filters only: it selects the ACLs that
// apply to a resource name (literal ACLs of that name or "*", prefixed
// ACLs whose prefix begins it).
const (
	Literal PatternType = iota + 1
	Prefixed
	Match
)

var patternNames = [...]string{"", "literal", "prefixed", "match"}

func (t PatternType) String() string {
	if int(t) < len(patternNames) && t != 0 {
		return patternNames[t]
	}
	return fmt.Sprintf("pattern(%d)", uint8(t))
}

// Permission is whether an ACL allows or denies.
type Permission uint8

// Permissions.
const (
	Allow Permission = iota + 1
	Deny
)

var permissionNames = [...]string{"", "allow", "deny"}

func (p Permission) String() string {
	if int(p) < len(permissionNames) && p != 0 {
		return permissionNames[p]
	}
	return fmt.Sprintf("permission(%d)", uint8(p))
}

// ClusterName is the name of the cluster resource in ACLs, as Kafka
// names it.
const ClusterName = "kafka-cluster"

// WildcardPrincipal is the principal of an ACL on every user.
const WildcardPrincipal = "User:*"

// ACL is one access control entry. Its JSON form is what the metadata log
// and the security file keep:
//
//	{"principal":"User:alice","resource_type":"pipeline","pattern":"prefixed","name":"pay",
//	 "operation":"read","permission":"allow","host":"*","jurisdictions":["SN"]}
type ACL struct {
	// Principal is "User:<name>", or "User:*" for every user.
	Principal    string       `json:"principal"`
	ResourceType ResourceType `json:"resource_type"`
	Pattern      PatternType  `json:"pattern"`
	// Name is the resource name, or the prefix; "*" with a literal
	// pattern is every resource of the type; the cluster's is
	// ClusterName.
	Name       string     `json:"name"`
	Operation  Action     `json:"operation"`
	Permission Permission `json:"permission"`
	// Host is "*": Sense matches ACLs on every host.
	Host string `json:"host"`
	// Jurisdictions limit an allow read ACL on pipelines: the principal
	// receives only the records whose mask allows every one of them
	// (codes or groups of the registry, sorted). Empty: no limit.
	Jurisdictions []string `json:"jurisdictions,omitempty"`
}

// ErrInvalidACL is matched by every error of ACL.Validate and
// ParseFilter.
var ErrInvalidACL = errors.New("security: invalid ACL")

func invalidACL(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidACL, fmt.Sprintf(format, args...))
}

// validOps lists the operations each resource type takes, as Kafka's.
var validOps = map[ResourceType][]Action{
	Pipeline:        {Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs, All},
	Group:           {Read, Describe, Delete, All},
	Cluster:         {Create, Alter, Describe, DescribeConfigs, AlterConfigs, IdempotentWrite, All},
	TransactionalID: {Write, Describe, All},
}

// PrincipalUser returns the user an ACL principal names ("*" for every
// user), or false when it is not of the form User:<name>.
func PrincipalUser(principal string) (string, bool) {
	u, ok := strings.CutPrefix(principal, "User:")
	if !ok || u == "" {
		return "", false
	}
	return u, true
}

// Normalize fills an ACL's defaults (host "*", the cluster's name, a
// literal pattern) and sorts its jurisdictions, upper-cased; it does not
// validate.
func (a *ACL) Normalize() {
	if a.Host == "" {
		a.Host = "*"
	}
	if a.Pattern == 0 {
		a.Pattern = Literal
	}
	if a.ResourceType == Cluster && a.Name == "" {
		a.Name = ClusterName
	}
	if len(a.Jurisdictions) > 0 {
		js := make([]string, 0, len(a.Jurisdictions))
		for _, j := range a.Jurisdictions {
			if j = strings.ToUpper(strings.TrimSpace(j)); j != "" {
				js = append(js, j)
			}
		}
		slices.Sort(js)
		a.Jurisdictions = slices.Compact(js)
		if len(a.Jurisdictions) == 0 {
			a.Jurisdictions = nil
		}
	}
}

// Validate checks a normalized ACL, naming what is wrong and what to do.
// Jurisdictions are checked for form only: the registry is the caller's.
func (a *ACL) Validate() error {
	u, ok := PrincipalUser(a.Principal)
	if !ok {
		return invalidACL("principal %q is not User:<name> or User:*", a.Principal)
	}
	if u != "*" {
		if err := ValidUserName(u); err != nil {
			return invalidACL("principal %q: %v", a.Principal, err)
		}
	}
	ops, ok := validOps[a.ResourceType]
	if !ok {
		return invalidACL("resource type %s is not pipeline (topic), group, transactional_id or cluster", a.ResourceType)
	}
	switch a.Pattern {
	case Literal:
	case Prefixed:
		if a.Name == "*" {
			return invalidACL("a prefixed pattern of \"*\" matches nothing; for every %s use the literal name \"*\"", a.ResourceType)
		}
	default:
		return invalidACL("pattern %s is not literal or prefixed", a.Pattern)
	}
	if a.ResourceType == Cluster {
		if a.Name != ClusterName || a.Pattern != Literal {
			return invalidACL("the cluster resource is the literal name %q, not %s %q", ClusterName, a.Pattern, a.Name)
		}
	} else if a.Name == "" || len(a.Name) > 255 {
		return invalidACL("a %s ACL needs a resource name of 1 to 255 bytes (or \"*\" for every one)", a.ResourceType)
	}
	if !slices.Contains(ops, a.Operation) {
		names := make([]string, len(ops))
		for i, o := range ops {
			names[i] = o.String()
		}
		return invalidACL("operation %s does not apply to a %s; its operations are %s", a.Operation, a.ResourceType, strings.Join(names, ", "))
	}
	if a.Permission != Allow && a.Permission != Deny {
		return invalidACL("permission %s is not allow or deny", a.Permission)
	}
	if a.Host != "*" {
		return invalidACL("host %q: Sense matches ACLs on every host; give host \"*\" (or none)", a.Host)
	}
	if len(a.Jurisdictions) > 0 {
		if a.ResourceType != Pipeline || a.Operation != Read || a.Permission != Allow {
			return invalidACL("jurisdictions limit what a principal may read: they go on an allow read (consume) ACL of a pipeline only, not on %s %s of a %s", a.Permission, a.Operation, a.ResourceType)
		}
		for _, j := range a.Jurisdictions {
			if j == "*" {
				return invalidACL("jurisdiction \"*\" is no limit: leave --jurisdiction out")
			}
		}
	}
	return nil
}

// Equal reports whether a and b are the same ACL.
func (a ACL) Equal(b ACL) bool {
	return a.Principal == b.Principal && a.ResourceType == b.ResourceType && a.Pattern == b.Pattern &&
		a.Name == b.Name && a.Operation == b.Operation && a.Permission == b.Permission && a.Host == b.Host &&
		slices.Equal(a.Jurisdictions, b.Jurisdictions)
}

// String describes the ACL for people and logs: "allow User:alice read
// pipeline prefixed pay (jurisdictions SN)".
func (a ACL) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %s %q", a.Permission, a.Principal, a.Operation, a.ResourceType, a.Pattern, a.Name)
	if len(a.Jurisdictions) > 0 {
		fmt.Fprintf(&b, " (jurisdictions %s)", strings.Join(a.Jurisdictions, ","))
	}
	return b.String()
}

// KafkaHost is the host DescribeAcls shows for the ACL: "*", or, for an
// ACL limited to jurisdictions (which Kafka's ACLs cannot express),
// "*;jurisdictions=MA,SN".
func (a ACL) KafkaHost() string {
	if len(a.Jurisdictions) == 0 {
		return a.Host
	}
	return a.Host + ";jurisdictions=" + strings.Join(a.Jurisdictions, ",")
}

// Compare orders ACLs for listing: by resource type, name, pattern,
// principal, operation, permission, then jurisdictions.
func Compare(a, b ACL) int {
	if c := int(a.ResourceType) - int(b.ResourceType); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := int(a.Pattern) - int(b.Pattern); c != 0 {
		return c
	}
	if c := strings.Compare(a.Principal, b.Principal); c != 0 {
		return c
	}
	if c := int(a.Operation) - int(b.Operation); c != 0 {
		return c
	}
	if c := int(a.Permission) - int(b.Permission); c != 0 {
		return c
	}
	return slices.Compare(a.Jurisdictions, b.Jurisdictions)
}

// ACLFilter selects ACLs (Kafka's AclBindingFilter). A zero field matches
// every value: ResourceType 0 is any type; Pattern 0 any pattern with
// Name matched exactly, Match the ACLs that apply to a resource called
// Name; Name "" any name; Principal "" any; Operation 0 any; Permission
// 0 any; Host "" or "*" any.
type ACLFilter struct {
	ResourceType ResourceType
	Pattern      PatternType
	Name         string
	Principal    string
	Operation    Action
	Permission   Permission
	Host         string
}

// Matches reports whether a passes the filter.
func (f ACLFilter) Matches(a ACL) bool {
	if f.ResourceType != 0 && f.ResourceType != a.ResourceType {
		return false
	}
	if f.Principal != "" && f.Principal != a.Principal {
		return false
	}
	if f.Operation != 0 && f.Operation != a.Operation {
		return false
	}
	if f.Permission != 0 && f.Permission != a.Permission {
		return false
	}
	if f.Host != "" && f.Host != "*" && f.Host != a.Host && f.Host != a.KafkaHost() {
		return false
	}
	switch f.Pattern {
	case 0:
		return f.Name == "" || f.Name == a.Name
	case Literal, Prefixed:
		return f.Pattern == a.Pattern && (f.Name == "" || f.Name == a.Name)
	case Match:
		if f.Name == "" {
			return true
		}
		if a.Pattern == Prefixed {
			return strings.HasPrefix(f.Name, a.Name)
		}
		return a.Name == f.Name || a.Name == "*" || a.ResourceType == Cluster
	}
	return false
}

// MarshalText and UnmarshalText give the enums their names in JSON.

func (a Action) MarshalText() ([]byte, error) {
	return marshalName(actionNames[:], int(a), "operation")
}
func (a *Action) UnmarshalText(b []byte) error {
	return unmarshalName(actionNames[:], b, "operation", func(i int) { *a = Action(i) })
}
func (t ResourceType) MarshalText() ([]byte, error) {
	return marshalName(resourceNames[:], int(t), "resource type")
}
func (t *ResourceType) UnmarshalText(b []byte) error {
	return unmarshalName(resourceNames[:], b, "resource type", func(i int) { *t = ResourceType(i) })
}
func (t PatternType) MarshalText() ([]byte, error) {
	return marshalName(patternNames[:], int(t), "pattern")
}
func (t *PatternType) UnmarshalText(b []byte) error {
	return unmarshalName(patternNames[:], b, "pattern", func(i int) { *t = PatternType(i) })
}
func (p Permission) MarshalText() ([]byte, error) {
	return marshalName(permissionNames[:], int(p), "permission")
}
func (p *Permission) UnmarshalText(b []byte) error {
	return unmarshalName(permissionNames[:], b, "permission", func(i int) { *p = Permission(i) })
}

func marshalName(names []string, i int, what string) ([]byte, error) {
	if i <= 0 || i >= len(names) {
		return nil, fmt.Errorf("security: %s %d has no name", what, i)
	}
	return []byte(names[i]), nil
}

func unmarshalName(names []string, b []byte, what string, set func(int)) error {
	for i := 1; i < len(names); i++ {
		if names[i] == string(b) {
			set(i)
			return nil
		}
	}
	return fmt.Errorf("security: unknown %s %q; known: %s", what, b, strings.Join(names[1:], ", "))
}

// ParseOperation parses an operation name as the CLI takes it: Kafka's
// names (read, write, create, delete, alter, describe, describe_configs,
// alter_configs, idempotent_write, all; any case, "-" for "_") and the
// aliases produce (write) and consume (read).
func ParseOperation(s string) (Action, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	switch n {
	case "produce":
		return Write, nil
	case "consume":
		return Read, nil
	case "describeconfigs":
		return DescribeConfigs, nil
	case "alterconfigs":
		return AlterConfigs, nil
	case "idempotentwrite":
		return IdempotentWrite, nil
	}
	for i := 1; i < len(actionNames); i++ {
		if actionNames[i] == n {
			return Action(i), nil
		}
	}
	return 0, invalidACL("operation %q is not one of produce, consume, %s", s, strings.Join(actionNames[1:], ", "))
}

// ParseResourceType parses a resource type name: pipeline (or topic),
// group, transactional_id, cluster.
func ParseResourceType(s string) (ResourceType, error) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_") {
	case "pipeline", "topic":
		return Pipeline, nil
	case "group":
		return Group, nil
	case "transactional_id", "transactionalid":
		return TransactionalID, nil
	case "cluster":
		return Cluster, nil
	}
	return 0, invalidACL("resource type %q is not pipeline (topic), group, transactional_id or cluster", s)
}
