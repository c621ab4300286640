package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// aclStore is where a node keeps its ACLs: the cluster metadata
// (acl.create, acl.delete), or a node alone's security file.
type aclStore interface {
	ACLs() []security.ACL
	CreateACLs([]security.ACL) error
	DeleteACLs([]security.ACL) error
}

// fileACLs keeps the ACLs in a node alone's security file.
type fileACLs struct{ fs *security.FileStore }

func (f fileACLs) ACLs() []security.ACL { return f.fs.ACLs() }

func (f fileACLs) CreateACLs(acls []security.ACL) error {
	_, err := f.fs.CreateACLs(acls)
	return err
}

func (f fileACLs) DeleteACLs(acls []security.ACL) error {
	_, err := f.fs.DeleteACLs(acls)
	return err
}

// metaACLs keeps the ACLs in the cluster metadata.
type metaACLs struct{ c *clusterRuntime }

func (m metaACLs) ACLs() []security.ACL {
	if st := m.c.metaStore.Load(); st != nil {
		return st.ACLs()
	}
	return nil
}

func (m metaACLs) CreateACLs(acls []security.ACL) error {
	return metaUsers(m).propose(meta.Command{Op: meta.OpACLCreate, ACLs: acls})
}

func (m metaACLs) DeleteACLs(acls []security.ACL) error {
	return metaUsers(m).propose(meta.Command{Op: meta.OpACLDelete, ACLs: acls})
}

// aclsChanged reports whether the metadata changes touch the ACLs.
func aclsChanged(cs []meta.Command) bool {
	return slices.ContainsFunc(cs, func(c meta.Command) bool { return c.Op == meta.OpACLCreate || c.Op == meta.OpACLDelete })
}

// refreshACLs gives the ACL authorizer the ACLs as stored now. Calls are
// serialized, and each reads the store, so the last one leaves the
// latest ACLs in force.
func (s *securityRuntime) refreshACLs() {
	s.aclMu.Lock()
	defer s.aclMu.Unlock()
	s.az.Set(s.acls.ACLs())
}

// aclAdmin runs acl.create, acl.list and acl.delete on behalf of the
// principal ctx carries (recorded in the audit log).
func (a Admin) aclAdmin(ctx context.Context, req admin.Request) (admin.Response, error) {
	var resp admin.Response
	if a.sec == nil || a.sec.acls == nil {
		return resp, result.New(result.InvalidRequest, "this node keeps no ACLs")
	}
	sec := a.sec
	who := security.FromContext(ctx)
	switch r := req.(type) {
	case admin.CreateACLs:
		if len(r.ACLs) == 0 {
			return resp, result.New(result.InvalidRequest, "acl.create names no ACL")
		}
		acls := make([]security.ACL, 0, len(r.ACLs))
		for _, info := range r.ACLs {
			acl, err := sec.aclFromInfo(info)
			if err != nil {
				return resp, result.New(result.InvalidRequest, err.Error())
			}
			acls = append(acls, acl)
		}
		if err := sec.acls.CreateACLs(acls); err != nil {
			return resp, securityError(err)
		}
		sec.refreshACLs()
		for _, acl := range acls {
			sec.auth.RecordChange(who, "acl.create", acl.String())
			resp.ACLs = append(resp.ACLs, aclInfo(acl))
		}
		return resp, nil
	case admin.ListACLs:
		fs, err := filtersFromInfo(r.Filters)
		if err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		resp.ACLs = []admin.ACLInfo{}
		for _, acl := range matching(sec.acls.ACLs(), fs) {
			resp.ACLs = append(resp.ACLs, aclInfo(acl))
		}
		return resp, nil
	case admin.DeleteACLs:
		if len(r.Filters) == 0 {
			return resp, result.New(result.InvalidRequest, "acl.delete needs a filter (an empty one matches every ACL)")
		}
		fs, err := filtersFromInfo(r.Filters)
		if err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		del := matching(sec.acls.ACLs(), fs)
		resp.ACLs = []admin.ACLInfo{}
		if len(del) == 0 {
			return resp, nil
		}
		if err := sec.acls.DeleteACLs(del); err != nil {
			return resp, securityError(err)
		}
		sec.refreshACLs()
		for _, acl := range del {
			sec.auth.RecordChange(who, "acl.delete", acl.String())
			resp.ACLs = append(resp.ACLs, aclInfo(acl))
		}
		return resp, nil
	}
	return resp, result.New(result.InvalidRequest, fmt.Sprintf("admin request %T is not an ACL request", req))
}

// matching returns the ACLs that pass any of fs (all of them when fs is
// empty).
func matching(acls []security.ACL, fs []security.ACLFilter) []security.ACL {
	var out []security.ACL
	for _, a := range acls {
		if len(fs) == 0 || slices.ContainsFunc(fs, func(f security.ACLFilter) bool { return f.Matches(a) }) {
			out = append(out, a)
		}
	}
	return out
}

// aclFromInfo checks an ACL of a request: its fields, and its
// jurisdictions against the node's registry.
func (s *securityRuntime) aclFromInfo(i admin.ACLInfo) (security.ACL, error) {
	var a security.ACL
	var err error
	a.Principal = i.Principal
	if a.ResourceType, err = security.ParseResourceType(i.ResourceType); err != nil {
		return a, err
	}
	if a.Pattern, err = parsePattern(i.Pattern, false); err != nil {
		return a, err
	}
	a.Name = i.Name
	if a.Operation, err = security.ParseOperation(i.Operation); err != nil {
		return a, err
	}
	if a.Permission, err = parsePermission(i.Permission); err != nil {
		return a, err
	}
	if a.Permission == 0 {
		a.Permission = security.Allow
	}
	a.Host = i.Host
	a.Jurisdictions = i.Jurisdictions
	a.Normalize()
	if err := a.Validate(); err != nil {
		return a, err
	}
	for _, j := range a.Jurisdictions {
		if _, err := s.reg.Parse(j); err != nil || strings.Contains(j, ",") {
			return a, fmt.Errorf("%w: jurisdiction %q is not a code or group of this cluster's registry (%s)", security.ErrInvalidACL, j, strings.Join(append(s.reg.Codes(), s.reg.Groups()...), ", "))
		}
	}
	return a, nil
}

func filtersFromInfo(infos []admin.ACLFilter) ([]security.ACLFilter, error) {
	out := make([]security.ACLFilter, 0, len(infos))
	for _, i := range infos {
		var f security.ACLFilter
		var err error
		f.Principal, f.Name, f.Host = i.Principal, i.Name, i.Host
		if i.ResourceType != "" && i.ResourceType != "any" {
			if f.ResourceType, err = security.ParseResourceType(i.ResourceType); err != nil {
				return nil, err
			}
		}
		if f.Pattern, err = parsePattern(i.Pattern, true); err != nil {
			return nil, err
		}
		if i.Operation != "" && i.Operation != "any" {
			if f.Operation, err = security.ParseOperation(i.Operation); err != nil {
				return nil, err
			}
		}
		if f.Permission, err = parsePermission(i.Permission); err != nil {
			return nil, err
		}
		if f.ResourceType == security.Cluster && f.Name == "" && f.Pattern != 0 {
			f.Name = security.ClusterName
		}
		out = append(out, f)
	}
	return out, nil
}

func parsePattern(s string, filter bool) (security.PatternType, error) {
	switch strings.ToLower(s) {
	case "":
		if filter {
			return 0, nil
		}
		return security.Literal, nil
	case "literal":
		return security.Literal, nil
	case "prefixed", "prefix":
		return security.Prefixed, nil
	case "match":
		if filter {
			return security.Match, nil
		}
	case "any":
		if filter {
			return 0, nil
		}
	}
	if filter {
		return 0, fmt.Errorf("%w: pattern %q is not literal, prefixed, match or any", security.ErrInvalidACL, s)
	}
	return 0, fmt.Errorf("%w: pattern %q is not literal or prefixed", security.ErrInvalidACL, s)
}

func parsePermission(s string) (security.Permission, error) {
	switch strings.ToLower(s) {
	case "", "any":
		return 0, nil
	case "allow":
		return security.Allow, nil
	case "deny":
		return security.Deny, nil
	}
	return 0, fmt.Errorf("%w: permission %q is not allow or deny", security.ErrInvalidACL, s)
}

func aclInfo(a security.ACL) admin.ACLInfo {
	return admin.ACLInfo{Principal: a.Principal, ResourceType: a.ResourceType.String(), Pattern: a.Pattern.String(), Name: a.Name,
		Operation: a.Operation.String(), Permission: a.Permission.String(), Host: a.Host, Jurisdictions: a.Jurisdictions}
}
