package security

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/sensehq/sense/jurisdiction"
)

// ACLAuthorizer is the Authorizer of a node with security enabled:
// superusers may do anything; anyone else is denied unless an allow ACL
// matches and no deny ACL does (deny wins), as Kafka's authorizer decides:
//
//   - an ACL of operation all matches every action;
//   - an allow ACL of read, write, delete or alter also allows describe,
//     and one of alter_configs also allows describe_configs (deny ACLs
//     deny only their own operation, or all);
//   - idempotent_write on the cluster is also allowed to a principal that
//     may write some pipeline (KIP-679), so that an idempotent producer
//     needs no cluster ACL;
//   - the anonymous principal is denied everything.
//
// The ACLs are indexed by user and resource type in an immutable index
// that Set swaps atomically: Authorize takes no lock and allocates
// nothing when it allows. Its cost is two map lookups per principal (the
// user and User:*) for literal ACLs, and a binary search over the
// principal's prefixes for prefixed ones (see prefixRules).
type ACLAuthorizer struct {
	idx     atomic.Pointer[aclIndex]
	resolve func(string) (jurisdiction.Mask, error)
	log     *slog.Logger
}

// NewACLAuthorizer returns an authorizer with no ACLs. resolve turns an
// ACL's jurisdiction (a code or a group) into its mask; an ACL whose
// jurisdictions do not resolve grants nothing (and is logged).
func NewACLAuthorizer(resolve func(string) (jurisdiction.Mask, error), log *slog.Logger) *ACLAuthorizer {
	if log == nil {
		log = slog.Default()
	}
	z := &ACLAuthorizer{resolve: resolve, log: log}
	z.Set(nil)
	return z
}

// opBits is a set of actions, bit a for Action a.
type opBits uint16

func bit(a Action) opBits { return 1 << a }

// implied are the allow bits that grant each action.
var implied = func() [All + 1]opBits {
	var t [All + 1]opBits
	for a := Read; a <= All; a++ {
		t[a] = bit(a) | bit(All)
	}
	t[Describe] |= bit(Read) | bit(Write) | bit(Delete) | bit(Alter)
	t[DescribeConfigs] |= bit(AlterConfigs)
	return t
}()

// ruleSet is what the ACLs of one pattern (a principal, a resource type
// and a name) say.
type ruleSet struct {
	allow, deny opBits
	// unlimited is set when an allow read (or all) ACL without
	// jurisdictions matches; limits are the masks of the allow read ACLs
	// with jurisdictions.
	unlimited bool
	limits    []jurisdiction.Mask
}

// typeRules are a principal's ACLs on one resource type.
type typeRules struct {
	every   ruleSet             // literal "*", and the cluster
	literal map[string]*ruleSet // by name
	prefix  prefixRules
}

// prefixRules are prefixed ACLs, by prefix, sorted. The prefixes of the
// set that begin a name are found without hashing or scanning them all:
// c, the greatest prefix not above the name, begins with every prefix of
// the set that begins the name (each such p <= name, and every string
// between p and the name begins with p), so they are c's ancestors (the
// prefixes in the set that begin c, parent links) no longer than the
// common prefix of c and the name. A lookup is a binary search and a walk
// up the chain.
type prefixRules struct {
	names  []string
	sets   []*ruleSet
	parent []int32 // the longest other prefix in the set that begins names[i], or -1
}

// add returns the rule set of a prefix, adding it (build time only).
func (p *prefixRules) add(name string) *ruleSet {
	i, found := slices.BinarySearch(p.names, name)
	if found {
		return p.sets[i]
	}
	rs := &ruleSet{}
	p.names = slices.Insert(p.names, i, name)
	p.sets = slices.Insert(p.sets, i, rs)
	return rs
}

// link computes the parent links once every prefix is added: the sorted
// order is a depth-first walk of the prefixes' trie.
func (p *prefixRules) link() {
	p.parent = make([]int32, len(p.names))
	var stack []int32
	for i, n := range p.names {
		for len(stack) > 0 && !strings.HasPrefix(n, p.names[stack[len(stack)-1]]) {
			stack = stack[:len(stack)-1]
		}
		p.parent[i] = -1
		if len(stack) > 0 {
			p.parent[i] = stack[len(stack)-1]
		}
		stack = append(stack, int32(i))
	}
}

// match returns the index of the longest prefix of the set that begins
// name, and the length of the common prefix of name and the candidate
// the walk starts from; -1 when none. next walks on.
func (p *prefixRules) match(name string) (int32, int) {
	if len(p.names) == 0 {
		return -1, 0
	}
	i, found := slices.BinarySearch(p.names, name)
	if !found {
		i--
	}
	if i < 0 {
		return -1, 0
	}
	c := p.names[i]
	l := 0
	for l < len(c) && l < len(name) && c[l] == name[l] {
		l++
	}
	return p.next(int32(i), l), l
}

// next returns j or its nearest ancestor no longer than l; -1 when none.
func (p *prefixRules) next(j int32, l int) int32 {
	for j >= 0 && len(p.names[j]) > l {
		j = p.parent[j]
	}
	return j
}

// principalRules are the ACLs of one principal (a user, or User:*).
type principalRules struct {
	types [TransactionalID + 1]typeRules
	// writes is set when an allow ACL lets the principal write some
	// pipeline (KIP-679).
	writes bool
}

type aclIndex struct {
	users map[string]*principalRules // by user name; "*" for User:*
	n     int
}

// Set replaces the ACLs the authorizer decides by.
func (z *ACLAuthorizer) Set(acls []ACL) {
	ix := &aclIndex{users: map[string]*principalRules{}, n: len(acls)}
	for _, a := range acls {
		u, ok := PrincipalUser(a.Principal)
		if !ok || int(a.ResourceType) >= len(principalRules{}.types) || a.ResourceType == 0 {
			continue
		}
		var limit jurisdiction.Mask
		if len(a.Jurisdictions) > 0 {
			var err error
			if limit, err = z.mask(a.Jurisdictions); err != nil {
				z.log.Warn("ACL ignored: its jurisdictions are not in this node's registry", "acl", a.String(), "err", err)
				continue
			}
		}
		pr := ix.users[u]
		if pr == nil {
			pr = &principalRules{}
			ix.users[u] = pr
		}
		tr := &pr.types[a.ResourceType]
		var rs *ruleSet
		switch {
		case a.ResourceType == Cluster || a.Pattern == Literal && a.Name == "*":
			rs = &tr.every
		case a.Pattern == Literal:
			if tr.literal == nil {
				tr.literal = map[string]*ruleSet{}
			}
			if rs = tr.literal[a.Name]; rs == nil {
				rs = &ruleSet{}
				tr.literal[a.Name] = rs
			}
		case a.Pattern == Prefixed:
			rs = tr.prefix.add(a.Name)
		default:
			continue
		}
		if a.Permission == Deny {
			rs.deny |= bit(a.Operation)
			continue
		}
		rs.allow |= bit(a.Operation)
		if a.ResourceType == Pipeline && (a.Operation == Write || a.Operation == All) {
			pr.writes = true
		}
		if a.Operation == Read || a.Operation == All {
			if limit != 0 {
				rs.limits = append(rs.limits, limit)
			} else {
				rs.unlimited = true
			}
		}
	}
	for _, pr := range ix.users {
		for i := range pr.types {
			pr.types[i].prefix.link()
		}
	}
	z.idx.Store(ix)
}

// mask is the union of the masks of an ACL's jurisdictions.
func (z *ACLAuthorizer) mask(js []string) (jurisdiction.Mask, error) {
	if z.resolve == nil {
		return 0, fmt.Errorf("no jurisdiction registry")
	}
	var m jurisdiction.Mask
	for _, j := range js {
		jm, err := z.resolve(j)
		if err != nil {
			return 0, err
		}
		m |= jm
	}
	if m == 0 {
		return 0, fmt.Errorf("jurisdictions %v name no code", js)
	}
	return m, nil
}

// Len returns the number of ACLs the authorizer decides by.
func (z *ACLAuthorizer) Len() int { return z.idx.Load().n }

// each calls f with every rule set of the principal's ACLs (its own, then
// User:*'s) that matches r, until f returns false.
func (ix *aclIndex) each(user string, r Resource, f func(*ruleSet) bool) {
	for i := 0; i < 2; i++ {
		key := user
		if i == 1 {
			key = "*"
		}
		pr := ix.users[key]
		if pr == nil || int(r.Type) >= len(pr.types) {
			continue
		}
		tr := &pr.types[r.Type]
		if !f(&tr.every) {
			return
		}
		if r.Type == Cluster {
			continue
		}
		if rs := tr.literal[r.Name]; rs != nil && !f(rs) {
			return
		}
		pf := &tr.prefix
		for j, l := pf.match(r.Name); j >= 0; j = pf.next(pf.parent[j], l) {
			if !f(pf.sets[j]) {
				return
			}
		}
	}
}

// bits returns the union of the allow and deny bits of the ACLs of user
// that match r. It is each, unrolled: it allocates nothing.
func (ix *aclIndex) bits(user string, r Resource) (allow, deny opBits) {
	for i := 0; i < 2; i++ {
		key := user
		if i == 1 {
			key = "*"
		}
		pr := ix.users[key]
		if pr == nil || int(r.Type) >= len(pr.types) {
			continue
		}
		tr := &pr.types[r.Type]
		allow |= tr.every.allow
		deny |= tr.every.deny
		if r.Type == Cluster {
			continue
		}
		if rs := tr.literal[r.Name]; rs != nil {
			allow |= rs.allow
			deny |= rs.deny
		}
		pf := &tr.prefix
		for j, l := pf.match(r.Name); j >= 0; j = pf.next(pf.parent[j], l) {
			allow |= pf.sets[j].allow
			deny |= pf.sets[j].deny
		}
	}
	return allow, deny
}

// Authorize implements Authorizer.
func (z *ACLAuthorizer) Authorize(p Principal, a Action, r Resource) error {
	if p.Superuser {
		return nil
	}
	if !p.Authenticated() {
		return &DeniedError{Principal: p, Action: a, Resource: r, Reason: "authenticate first (security.enabled is on; docs/security.md)"}
	}
	if a == 0 || a >= All {
		return &DeniedError{Principal: p, Action: a, Resource: r, Reason: "not an action ACLs decide"}
	}
	ix := z.idx.Load()
	allow, deny := ix.bits(p.User, r)
	if deny&(bit(a)|bit(All)) != 0 {
		return &DeniedError{Principal: p, Action: a, Resource: r, Reason: "a deny ACL matches (deny wins over allow; `sense acl list --user " + p.User + "` shows it)"}
	}
	if allow&implied[a] != 0 {
		return nil
	}
	if a == IdempotentWrite && r.Type == Cluster && ix.writes(p.User) {
		return nil
	}
	return &DeniedError{Principal: p, Action: a, Resource: r, Reason: "no ACL allows it; " + grantHint(p.User, a, r)}
}

// writes reports whether an allow ACL lets user write some pipeline.
func (ix *aclIndex) writes(user string) bool {
	if pr := ix.users[user]; pr != nil && pr.writes {
		return true
	}
	pr := ix.users["*"]
	return pr != nil && pr.writes
}

// grantHint says how to grant an action.
func grantHint(user string, a Action, r Resource) string {
	op := a.String()
	switch a {
	case Write:
		op = "produce"
	case Read:
		op = "consume"
	}
	var target string
	switch r.Type {
	case Pipeline:
		target = "--pipeline " + r.Name
	case Group:
		target = "--group " + r.Name
	case TransactionalID:
		target = "--transactional-id " + r.Name
	default:
		target = "--cluster"
	}
	return fmt.Sprintf("grant it with `sense acl add --user %s %s --operation %s`", user, target, op)
}

// ReadLimit is what a principal may receive of the records of a pipeline
// it may read: every record, or only those whose mask allows every
// jurisdiction of one of its read ACLs' sets. The zero value is no limit.
type ReadLimit struct {
	limited bool
	sets    []jurisdiction.Mask
}

// Limited reports whether records are filtered.
func (l ReadLimit) Limited() bool { return l.limited }

// Allows reports whether a record of mask m may be given: m holds every
// jurisdiction of one of the sets (a record limited to SN is given to a
// principal limited to SN; one of MA alone is not).
func (l ReadLimit) Allows(m jurisdiction.Mask) bool {
	if !l.limited {
		return true
	}
	for _, s := range l.sets {
		if s&^m == 0 {
			return true
		}
	}
	return false
}

// Sets returns the jurisdiction sets of a limited ReadLimit.
func (l ReadLimit) Sets() []jurisdiction.Mask { return l.sets }

// ReadLimiter is an Authorizer that limits reads by jurisdiction: the
// edges ask it, once Authorize allowed a read, which records the
// principal may receive.
type ReadLimiter interface {
	ReadLimit(p Principal, pipeline string) ReadLimit
}

// ReadLimitOf asks az for p's read limit on a pipeline when az is a
// ReadLimiter; otherwise there is none.
func ReadLimitOf(az Authorizer, p Principal, pipeline string) ReadLimit {
	if rl, ok := az.(ReadLimiter); ok {
		return rl.ReadLimit(p, pipeline)
	}
	return ReadLimit{}
}

// ReadLimit implements ReadLimiter: a superuser, or a principal with an
// allow read ACL without jurisdictions on the pipeline, reads everything;
// one whose matching allow read ACLs all carry jurisdictions reads what
// one of them allows; one with none reads nothing.
func (z *ACLAuthorizer) ReadLimit(p Principal, pipeline string) ReadLimit {
	if p.Superuser {
		return ReadLimit{}
	}
	lim := ReadLimit{limited: true}
	unlimited := false
	z.idx.Load().each(p.User, PipelineResource(pipeline), func(rs *ruleSet) bool {
		if rs.unlimited {
			unlimited = true
			return false
		}
		lim.sets = append(lim.sets, rs.limits...)
		return true
	})
	if unlimited {
		return ReadLimit{}
	}
	return lim
}

// FormatLimit names a read limit's sets with reg: "SN | MA+SN".
func FormatLimit(l ReadLimit, reg *jurisdiction.Registry) string {
	if !l.limited {
		return "*"
	}
	parts := make([]string, len(l.sets))
	for i, s := range l.sets {
		parts[i] = reg.Format(s)
	}
	return strings.Join(parts, " | ")
}
