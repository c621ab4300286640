// Package meta is a cluster's metadata: what every node must agree on to
// route events the same way, kept in one raft group (the metadata log)
// that every node applies in order.
//
// The metadata log holds commands, one per record: a record's key is the
// command's op and its value the command as JSON (Command). Applying them
// in log order from an empty State gives every node the same State; its
// Version is the offset after the last command applied, so two nodes with
// the same Version route alike. The routing table a node builds from a
// State carries that Version (`sense route explain`, `sense cluster
// status`).
//
// What the log holds today (docs/cluster.md):
//
//   - seed: the hubs' status and policy as the config file of the first
//     node to lead the log said; ignored once the metadata is seeded.
//   - hub.status: a hub's status (up, draining, down).
//   - hub.policy: pipelines added to (deny) or removed from (allow) the
//     list a hub may not hold.
//   - hub.set: a hub's status and whole policy, as a reloaded config file
//     says (SIGHUP reconciles what the file changed).
//   - hub.designate: a hub re-designated to another jurisdiction; what it
//     stored that the new one does not allow is migrated (designate.go).
//   - pids.alloc: a block of PIDBlock producer ids for the proposing node,
//     so that no two nodes ever hand out the same id.
//   - move.plan, move.done: the migrator's checkpoints (migrate.go of
//     package server): a range of a source buffer to copy to a destination
//     partition under a producer id of its own, then the copy done; the
//     done records are the audit log of moves (`sense audit log`).
//   - pipeline.create, pipeline.delete: pipelines created and deleted at
//     run time (the admin API, Kafka CreateTopics and DeleteTopics); the
//     spec is the node's, opaque here, complete with its layout so that
//     every node creates the same partitions.
//   - leaders: buffers' leaders and raft terms as their leaders report them
//     (leaders.go); per buffer the highest term wins.
//   - pipeline.alter: a run-time pipeline's settings changed (alter.go).
//   - user.put, user.delete, token.key: users (their SCRAM credentials)
//     and the key tokens are signed with (users.go).
//   - acl.create, acl.delete: ACLs added and removed (acls.go).
//
// The hubs themselves (name, jurisdiction, nodes) and the pipelines the
// config file declares are the config file's, identical on every node.
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sensehq/sense/security"
)

// Ops of the commands.
const (
	OpSeed      = "seed"
	OpHubStatus = "hub.status"
	OpHubPolicy = "hub.policy"
	OpHubSet    = "hub.set"
	OpDesignate = "hub.designate"
	OpCreate    = "pipeline.create"
	OpDelete    = "pipeline.delete"
	OpAlter     = "pipeline.alter"
	OpPIDs      = "pids.alloc"
	OpMovePlan  = "move.plan"
	OpMoveDone  = "move.done"
	OpLeaders   = "leaders"
)

// MovePIDBase is the first producer id of the migrator's copies: each
// plan takes the next, far above the ids pids.alloc hands out.
const MovePIDBase int64 = 1 << 56

// Move is one step of the migrator: the records of a source buffer in
// [From, To) copied to partitions of the same pipeline, each record to the
// first of Routes whose jurisdiction its mask allows. The plan fixes all
// but the outcome; move.done fills the rest in.
type Move struct {
	Source   string `json:"source"` // pipeline/hub/partition
	Pipeline string `json:"pipeline"`
	Hub      string `json:"hub"`
	From     int64  `json:"from"`
	To       int64  `json:"to"`
	// Dest and DestHub are the one destination of a step planned before
	// Routes existed (a log written by an older version); Routes is
	// empty then.
	Dest    int32   `json:"dest"`
	DestHub string  `json:"dest_hub"`
	Routes  []Route `json:"routes,omitempty"`
	// Reason is why the records move: "policy" (the hub's policy denies
	// the pipeline) or "designation" (the hub was re-designated; Since is
	// the hub's DesignatedAt, and the campaign moves the records below
	// Until, the end of the last one stored under a former designation).
	Reason string `json:"reason,omitempty"`
	Since  int64  `json:"since,omitempty"`
	Until  int64  `json:"until,omitempty"`
	// PID is the producer id the copies are written under (sequence =
	// source offset), so that a copy made again after a crash is
	// recognized by the destination; set when the plan is applied.
	PID int64 `json:"pid"`
	// Cause is the routing table version the migrator saw the source's
	// hub deny the pipeline with.
	Cause uint64 `json:"cause"`

	Done     bool   `json:"done"`
	DestFrom int64  `json:"dest_from"` // destination offsets of the copies (one route)
	DestTo   int64  `json:"dest_to"`
	Records  int64  `json:"records"`  // of all routes
	Checksum uint32 `json:"checksum"` // CRC-32C of the records' keys and values, in order (one route)
	Planned  int64  `json:"planned"`  // Unix nanoseconds
	Finished int64  `json:"finished"`
}

// Route is one destination of a move step: partition Dest, in hub
// DestHub, which was of Jurisdiction when the step was planned. Records
// the step sends there are counted and summed as they are copied; their
// destination offsets are [DestFrom, DestTo) (-1 when every copy was
// recognized as stored by an attempt before a restart).
type Route struct {
	Dest         int32  `json:"dest"`
	DestHub      string `json:"dest_hub"`
	Jurisdiction string `json:"jurisdiction"`
	// Start is the destination's high watermark as the plan was made:
	// every copy of the step is stored after it, which is where the
	// migrator reads them back from.
	Start int64 `json:"start"`

	DestFrom int64  `json:"dest_from"`
	DestTo   int64  `json:"dest_to"`
	Records  int64  `json:"records"`
	Checksum uint32 `json:"checksum"`
}

// Destinations returns the step's routes: Routes, or the one destination
// of a step planned before Routes existed.
func (m Move) Destinations() []Route {
	if len(m.Routes) > 0 {
		return m.Routes
	}
	return []Route{{Dest: m.Dest, DestHub: m.DestHub, Jurisdiction: "*", DestFrom: m.DestFrom, DestTo: m.DestTo, Records: m.Records, Checksum: m.Checksum}}
}

// Registry is a jurisdiction registry as the metadata keeps it: the codes
// in bit order, and each group's codes.
type Registry struct {
	Codes  []string            `json:"codes"`
	Groups map[string][]string `json:"groups,omitempty"`
}

// Diff says how r and o differ, or "" when they are the same registry.
func (r *Registry) Diff(o *Registry) string {
	if !slices.Equal(r.Codes, o.Codes) {
		return fmt.Sprintf("jurisdiction codes %v (mask bit i is the i-th) against %v", r.Codes, o.Codes)
	}
	for _, g := range slices.Sorted(maps.Keys(r.Groups)) {
		if !slices.Equal(r.Groups[g], o.Groups[g]) {
			return fmt.Sprintf("group %s is %v against %v", g, r.Groups[g], o.Groups[g])
		}
	}
	for g := range o.Groups {
		if _, ok := r.Groups[g]; !ok {
			return fmt.Sprintf("group %s is missing against %v", g, o.Groups[g])
		}
	}
	return ""
}

// PIDBlock is how many producer ids one pids.alloc gives a node.
const PIDBlock = 1000

// Hub statuses, as the router names them.
var statuses = []string{"up", "draining", "down"}

// HubState is what the metadata holds of one hub.
type HubState struct {
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Deny   []string `json:"deny,omitempty"` // pipelines the hub may not hold, sorted
	// Jurisdiction is the hub's designation: a registered code, a group,
	// or "*". Empty in a log seeded before it was kept: the config file's.
	Jurisdiction string `json:"jurisdiction,omitempty"`
	// Former are the designations the hub had before, oldest first: what
	// it stored under them is due to move (designate.go). DesignatedAt is
	// when the last re-designation was proposed (Unix nanoseconds).
	Former       []string `json:"former,omitempty"`
	DesignatedAt int64    `json:"designated_at,omitempty"`
}

// Command is one change to the metadata.
type Command struct {
	Op     string     `json:"op"`
	Hub    string     `json:"hub,omitempty"`
	Status string     `json:"status,omitempty"` // hub.status, hub.set
	Deny   []string   `json:"deny,omitempty"`   // hub.policy: pipelines to deny; hub.set: the whole list
	Allow  []string   `json:"allow,omitempty"`  // hub.policy: pipelines to allow again
	Hubs   []HubState `json:"hubs,omitempty"`   // seed
	// Registry is the jurisdiction registry of the seeding node's config
	// (seed): every node must have the same, since a mask's bit i means
	// the registry's i-th code.
	Registry *Registry `json:"registry,omitempty"`
	// Jurisdiction is hub.designate's new designation; From the one the
	// proposer routes the hub with (the config file's, when the metadata
	// has none yet).
	Jurisdiction string `json:"jurisdiction,omitempty"`
	From         string `json:"from,omitempty"`
	// Move is the step of move.plan and move.done.
	Move *Move `json:"move,omitempty"`
	// Pipeline names the pipeline of pipeline.create and pipeline.delete;
	// Spec is the created pipeline's spec (JSON of the node's spec).
	Pipeline string          `json:"pipeline,omitempty"`
	Spec     json.RawMessage `json:"spec,omitempty"`
	Leaders  []BufferLeader  `json:"leaders,omitempty"` // leaders
	// User is user.put's user; Name user.delete's; TokenKey token.key's
	// key.
	User     *security.User `json:"user,omitempty"`
	Name     string         `json:"name,omitempty"`
	TokenKey []byte         `json:"token_key,omitempty"`
	// ACLs are acl.create's and acl.delete's ACLs.
	ACLs []security.ACL `json:"acls,omitempty"`
	// At is when the command was proposed (Unix nanoseconds on the
	// proposing node's clock), By the node that proposed it: the
	// propagation metric and the audit trail use them.
	At int64  `json:"at"`
	By string `json:"by,omitempty"`
}

// ErrInvalid is matched by every error of Command.Check.
var ErrInvalid = errors.New("meta: invalid command")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// State is the metadata after the commands up to Version.
type State struct {
	// Version is the offset after the last command applied: the routing
	// table version of a node that applied it.
	Version uint64
	// Seeded is set once a seed command is applied; before, each node
	// routes by its own config file.
	Seeded bool
	Hubs   []HubState // in seed order
	// Registry is the seed's jurisdiction registry (nil in a log seeded
	// before it was kept); never changed once seeded.
	Registry *Registry
	// Pipelines are the names of the pipelines created at run time and
	// not deleted, sorted.
	Pipelines []string
	// NextPID is the first producer id no node has been given; PIDBlocks
	// the first id of the last block each node was given.
	NextPID   int64
	PIDBlocks map[string]int64
	// Moves is each source buffer's last move step, by source key;
	// MoveLog every finished step in order (the audit log of moves).
	Moves       map[string]Move
	MoveLog     []Move
	NextMovePID int64
	// Leaders is each buffer's leader as last reported, by buffer key.
	Leaders map[string]BufferLeader
	// Users are the users by name (never changed in place: a change
	// makes a new map); TokenKey the key tokens are signed with.
	Users    map[string]security.User
	TokenKey []byte
	// ACLs are the ACLs, sorted (security.Compare); a change makes a new
	// slice.
	ACLs []security.ACL
}

// Clone returns a deep copy of s.
func (s State) Clone() State {
	c := s
	c.Hubs = make([]HubState, len(s.Hubs))
	for i, h := range s.Hubs {
		h.Deny = slices.Clone(h.Deny)
		h.Former = slices.Clone(h.Former)
		c.Hubs[i] = h
	}
	c.Pipelines = slices.Clone(s.Pipelines)
	c.PIDBlocks = maps.Clone(s.PIDBlocks)
	c.Moves = maps.Clone(s.Moves)
	// MoveLog only grows, and its entries never change: a clone shares
	// it, capped at its length, so that an append never shows in it.
	c.MoveLog = s.MoveLog[:len(s.MoveLog):len(s.MoveLog)]
	c.Leaders = maps.Clone(s.Leaders)
	return c
}

// HasPipeline reports whether a pipeline of that name was created at run
// time and not deleted.
func (s *State) HasPipeline(name string) bool {
	_, ok := slices.BinarySearch(s.Pipelines, name)
	return ok
}

// Hub returns the state of the hub named name.
func (s *State) Hub(name string) (HubState, bool) {
	for _, h := range s.Hubs {
		if h.Name == name {
			return h, true
		}
	}
	return HubState{}, false
}

// Check reports whether c may be applied to s: a known op, a known hub,
// a valid status. It names what is wrong and with which value. Apply
// ignores a command Check refuses, so that a command proposed against a
// stale state changes nothing on any node.
func (c *Command) Check(s *State) error {
	validStatus := func(st string) error {
		if !slices.Contains(statuses, st) {
			return invalid("hub status %q is not up, draining or down", st)
		}
		return nil
	}
	hub := func() error {
		if _, ok := s.Hub(c.Hub); !ok {
			names := make([]string, len(s.Hubs))
			for i, h := range s.Hubs {
				names[i] = h.Name
			}
			return invalid("unknown hub %q; the hubs are %v", c.Hub, names)
		}
		return nil
	}
	switch c.Op {
	case OpSeed:
		seen := map[string]bool{}
		for _, h := range c.Hubs {
			if h.Name == "" || seen[h.Name] {
				return invalid("seed names hub %q twice or not at all", h.Name)
			}
			seen[h.Name] = true
			if err := validStatus(h.Status); err != nil {
				return err
			}
		}
		return nil
	case OpHubStatus:
		if err := hub(); err != nil {
			return err
		}
		return validStatus(c.Status)
	case OpHubPolicy:
		if err := hub(); err != nil {
			return err
		}
		if len(c.Deny) == 0 && len(c.Allow) == 0 {
			return invalid("policy change of hub %q names no pipeline to deny or allow", c.Hub)
		}
		for _, p := range c.Deny {
			if slices.Contains(c.Allow, p) {
				return invalid("pipeline %q is both denied and allowed in hub %q", p, c.Hub)
			}
		}
		return nil
	case OpHubSet:
		if !s.Seeded {
			return invalid("hub.set before the metadata is seeded")
		}
		if _, ok := s.Hub(c.Hub); !ok {
			return nil // a hub the config gained: added
		}
		return validStatus(c.Status)
	case OpDesignate:
		return c.checkDesignate(s)
	case OpPIDs:
		if c.By == "" {
			return invalid("pids.alloc names no node")
		}
		return nil
	case OpMovePlan:
		m := c.Move
		if m == nil || m.Source == "" || m.To <= m.From {
			return invalid("move.plan without a source or a range")
		}
		if cur, ok := s.Moves[m.Source]; ok && (!cur.Done || m.From < cur.To) {
			return invalid("move.plan of %s from %d: its last step (%d to %d, done %v) is not behind it", m.Source, m.From, cur.From, cur.To, cur.Done)
		}
		return nil
	case OpMoveDone:
		m := c.Move
		if m == nil {
			return invalid("move.done without a step")
		}
		cur, ok := s.Moves[m.Source]
		if !ok || cur.Done || cur.From != m.From || cur.To != m.To {
			return invalid("move.done of %s %d to %d: no such step is under way", m.Source, m.From, m.To)
		}
		return nil
	case OpCreate:
		if c.Pipeline == "" || len(c.Spec) == 0 {
			return invalid("pipeline.create without a pipeline name or spec")
		}
		if s.HasPipeline(c.Pipeline) {
			return invalid("pipeline %q exists already", c.Pipeline)
		}
		return nil
	case OpDelete:
		if !s.HasPipeline(c.Pipeline) {
			return invalid("pipeline %q was not created at run time, or is deleted already", c.Pipeline)
		}
		return nil
	case OpLeaders:
		return c.checkLeaders()
	case OpAlter:
		return c.checkAlter(s)
	case OpUserPut, OpUserDelete, OpTokenKey:
		return c.checkUser(s)
	case OpACLCreate, OpACLDelete:
		return c.checkACL()
	}
	return invalid("unknown op %q; known: %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s", c.Op, OpSeed, OpHubStatus, OpHubPolicy, OpHubSet, OpDesignate, OpCreate, OpDelete, OpAlter, OpPIDs, OpMovePlan, OpMoveDone, OpLeaders, OpUserPut, OpUserDelete, OpTokenKey, OpACLCreate, OpACLDelete)
}

// Apply applies c to s (a command Check refuses, or a seed once seeded,
// changes nothing) and reports whether it changed anything. It does not
// move Version: the store sets it from the log.
func (s *State) Apply(c *Command) bool {
	if c.Check(s) != nil {
		return false
	}
	switch c.Op {
	case OpSeed:
		if s.Seeded {
			return false
		}
		s.Seeded = true
		s.Registry = c.Registry
		s.Hubs = make([]HubState, len(c.Hubs))
		for i, h := range c.Hubs {
			h.Deny = sortedSet(h.Deny)
			s.Hubs[i] = h
		}
		return true
	case OpHubStatus:
		h := s.hub(c.Hub)
		if h.Status == c.Status {
			return false
		}
		h.Status = c.Status
		return true
	case OpHubPolicy:
		h := s.hub(c.Hub)
		deny := slices.Clone(h.Deny)
		deny = append(deny, c.Deny...)
		deny = slices.DeleteFunc(sortedSet(deny), func(p string) bool { return slices.Contains(c.Allow, p) })
		if slices.Equal(deny, h.Deny) {
			return false
		}
		h.Deny = deny
		return true
	case OpHubSet:
		h := s.hub(c.Hub)
		if h == nil {
			s.Hubs = append(s.Hubs, HubState{Name: c.Hub, Status: c.Status, Deny: sortedSet(c.Deny), Jurisdiction: c.Jurisdiction})
			return true
		}
		deny := sortedSet(c.Deny)
		if h.Status == c.Status && slices.Equal(h.Deny, deny) {
			return false
		}
		h.Status, h.Deny = c.Status, deny
		return true
	case OpDesignate:
		return s.applyDesignate(c)
	case OpPIDs:
		if s.PIDBlocks == nil {
			s.PIDBlocks = map[string]int64{}
		}
		first := max(s.NextPID, 1)
		s.PIDBlocks[c.By] = first
		s.NextPID = first + PIDBlock
		return true
	case OpMovePlan:
		if s.Moves == nil {
			s.Moves = map[string]Move{}
		}
		m := *c.Move
		m.Done, m.PID, m.Planned = false, MovePIDBase+s.NextMovePID, c.At
		s.NextMovePID++
		s.Moves[m.Source] = m
		return true
	case OpMoveDone:
		m := s.Moves[c.Move.Source]
		m.Done, m.DestFrom, m.DestTo, m.Records, m.Checksum, m.Finished = true, c.Move.DestFrom, c.Move.DestTo, c.Move.Records, c.Move.Checksum, c.At
		routes := slices.Clone(m.Routes) // shared with clones of the state: not changed in place
		for i := range routes {
			if i < len(c.Move.Routes) {
				o := c.Move.Routes[i]
				routes[i].DestFrom, routes[i].DestTo, routes[i].Records, routes[i].Checksum = o.DestFrom, o.DestTo, o.Records, o.Checksum
			}
		}
		m.Routes = routes
		s.Moves[m.Source] = m
		s.MoveLog = append(s.MoveLog, m)
		return true
	case OpCreate:
		i, _ := slices.BinarySearch(s.Pipelines, c.Pipeline)
		s.Pipelines = slices.Insert(s.Pipelines, i, c.Pipeline)
		s.dropLeaders(c.Pipeline)
		return true
	case OpDelete:
		i, _ := slices.BinarySearch(s.Pipelines, c.Pipeline)
		s.Pipelines = slices.Delete(s.Pipelines, i, i+1)
		s.dropLeaders(c.Pipeline)
		// Its migration steps go with it: a step of the deleted pipeline
		// would otherwise trim a new one of the same name, whose records
		// were never copied. (The audit log of moves keeps them.)
		if len(s.Moves) > 0 {
			moves := make(map[string]Move, len(s.Moves))
			for k, m := range s.Moves {
				if m.Pipeline != c.Pipeline {
					moves[k] = m
				}
			}
			s.Moves = moves
		}
		return true
	case OpLeaders:
		return s.applyLeaders(c)
	case OpAlter:
		return s.applyAlter(c)
	case OpUserPut, OpUserDelete, OpTokenKey:
		return s.applyUser(c)
	case OpACLCreate, OpACLDelete:
		return s.applyACL(c)
	}
	return false
}

func (s *State) hub(name string) *HubState {
	for i := range s.Hubs {
		if s.Hubs[i].Name == name {
			return &s.Hubs[i]
		}
	}
	return nil
}

func sortedSet(v []string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	v = slices.Compact(v)
	if len(v) == 0 {
		return nil
	}
	return v
}

// maxCommand bounds one command's JSON.
const maxCommand = 1 << 20

// EncodeCommand returns c's record value.
func EncodeCommand(c *Command) ([]byte, error) {
	return json.Marshal(c)
}

// DecodeCommand parses a record value of the metadata log. A record that
// does not decode is an error (the log is damaged, or written by a newer
// version).
func DecodeCommand(p []byte) (Command, error) {
	var c Command
	if len(p) > maxCommand {
		return c, fmt.Errorf("meta: command of %d bytes, more than %d", len(p), maxCommand)
	}
	if err := json.Unmarshal(p, &c); err != nil {
		return c, fmt.Errorf("meta: command does not decode: %w", err)
	}
	if c.Op == "" {
		return c, errors.New("meta: command without an op")
	}
	return c, nil
}
