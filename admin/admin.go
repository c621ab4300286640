// Package admin is Sense's administrative API as both sides see it: the
// typed requests (CreatePipeline, DescribePipeline, ExplainRoute, ...), the
// typed Response, and their JSON form on the wire, carried by the native
// protocol's ADMIN frame and by POST /v1/admin on the HTTP listener.
//
// A request travels as one JSON object whose "op" names it:
//
//	{"op":"pipeline.create","pipeline":"payments","partitions":2,"default_jurisdiction":"MA,SN"}
//	{"op":"pipeline.list"}
//	{"op":"pipeline.describe","pipeline":"payments"}
//	{"op":"pipeline.alter","pipeline":"payments","retention":"72h","default_priority":"medium"}
//	{"op":"route.explain","pipeline":"payments","jurisdiction":"MA","priority":"critical"}
//	{"op":"hub.set_status","hub":"tangier","status":"down"}
//	{"op":"hub.list"}
//	{"op":"registry"}
//	{"op":"user.create","user":"alice","credentials":[{"mechanism":"SCRAM-SHA-256","salt":"...","iterations":8192,"stored_key":"...","server_key":"..."}]}
//	{"op":"user.create","user":"alice","password":"...","mechanism":"SCRAM-SHA-512"}
//	{"op":"user.delete","user":"alice"}
//	{"op":"user.list"}
//	{"op":"token.create","user":"alice","ttl":"24h"}
//	{"op":"audit.security"}
//	{"op":"acl.create","acls":[{"principal":"User:alice","resource_type":"pipeline","pattern":"literal","name":"payments","operation":"read","permission":"allow","jurisdictions":["SN"]}]}
//	{"op":"acl.list","filters":[{"principal":"User:alice"}]}
//	{"op":"acl.delete","filters":[{"principal":"User:alice","resource_type":"pipeline","pattern":"literal","name":"payments","operation":"read"}]}
//	{"op":"processor.list"}
//	{"op":"processor.describe","processor":"payments-to-pg"}
//	{"op":"processor.pause","processor":"payments-to-pg"}
//	{"op":"processor.reset","processor":"payments-to-pg","to":"beginning"}
//	{"op":"processor.create","config":"processors:\n  - name: ..."}
//	{"op":"processor.delete","processor":"errors-to-alerts"}
//
// The answer is a Response object; a refused request carries "error" (a
// message for people) and "code" (a result code name such as
// "UNKNOWN_PIPELINE"), which DecodeResponse turns back into a
// *result.Error, so the code survives from the engine to the caller.
//
// The package depends on nothing of the engine: the Go client uses it
// without linking the node.
package admin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sensehq/sense/result"
)

// Request is one administrative operation: one of the types below.
type Request interface {
	// Op is the operation's name on the wire.
	Op() string
}

// CreatePipeline creates a pipeline. Zero fields take the server's
// defaults; Retention is a duration such as "24h".
type CreatePipeline struct {
	Pipeline            string
	Partitions          int
	Retention           string
	DefaultPriority     string
	DefaultJurisdiction string
	// CleanupPolicy is delete (the default), compact or compact,delete;
	// MaxMessageBytes a size such as 4MiB (default: the node's event
	// limit).
	CleanupPolicy   string
	MaxMessageBytes string
}

// AlterPipeline changes the settings of a pipeline that may change while
// it serves; an empty field stays as it is. Retention is a duration such
// as "72h", or "forever"; RetentionBytes a size of a buffer such as
// "10GiB" or 1073741824, or "none"; DefaultJurisdiction codes or groups
// (e.g. "MA,SN"), or "*"; DefaultPriority low, medium or critical. Its
// layout cannot change this way, nor a pipeline of the server's config
// file.
type AlterPipeline struct {
	Pipeline            string
	Retention           string
	RetentionBytes      string
	DefaultJurisdiction string
	DefaultPriority     string
	// CleanupPolicy delete, compact or compact,delete; MaxMessageBytes a
	// size, or "default" for the node's event limit.
	CleanupPolicy   string
	MaxMessageBytes string
}

// ListPipelines lists every pipeline.
type ListPipelines struct{}

// DescribePipeline describes one pipeline and its partition layout.
type DescribePipeline struct{ Pipeline string }

// ExplainRoute says, buffer by buffer, whether an event of a jurisdiction
// set (codes, groups or "*") and priority may be stored there, and why.
type ExplainRoute struct{ Pipeline, Jurisdiction, Priority string }

// SetHubStatus sets a hub's status (up, draining or down), its
// jurisdiction (a re-designation: in a cluster, what it stored that the
// new jurisdiction does not allow is migrated), or both.
type SetHubStatus struct{ Hub, Status, Jurisdiction string }

// SetHubPolicy changes a hub's policy: the pipelines in Deny may no longer
// be held by the hub (their stored events are moved, in a cluster), those
// in Allow may again.
type SetHubPolicy struct {
	Hub         string
	Deny, Allow []string
}

// ListHubs lists the hubs.
type ListHubs struct{}

// GetRegistry returns the jurisdiction registry.
type GetRegistry struct{}

// Audit asks a node to read every record it stores (of Pipeline, or of
// all) and check that each rests in a hub of its mask.
type Audit struct{ Pipeline string }

// AuditLog asks a cluster node for the audit log of moves: every step of
// the migrator, in order.
type AuditLog struct{}

// ClusterStatus asks a cluster node for its peers and the buffers it holds
// replicas of (ClusterInfo).
type ClusterStatus struct{}

// CreateUser creates a user, or replaces its credentials. Credentials are
// SCRAM credentials the client derived (the password never leaves it);
// without them, the server derives them from Password for Mechanism
// (both SCRAM mechanisms when empty), Iterations (0: the default).
type CreateUser struct {
	User        string
	Password    string
	Mechanism   string
	Iterations  int
	Credentials []ScramCredential
}

// ScramCredential is a user's SCRAM credential for one mechanism (package
// security's Credential); the byte fields travel in base64.
type ScramCredential struct {
	Mechanism  string `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// DeleteUser deletes a user; its tokens stop working.
type DeleteUser struct{ User string }

// ListUsers lists the users and their mechanisms.
type ListUsers struct{}

// CreateToken makes a token for User valid for TTL (a duration such as
// "24h").
type CreateToken struct{ User, TTL string }

// SecurityAudit asks a node for its security audit log: the last
// authentications it saw, successful or not.
type SecurityAudit struct{}

// CreateACLs adds ACLs; one present already is not added twice.
type CreateACLs struct{ ACLs []ACLInfo }

// ListACLs lists the ACLs that match any of Filters (every ACL when
// there is none).
type ListACLs struct{ Filters []ACLFilter }

// DeleteACLs removes the ACLs that match any of Filters (at least one).
type DeleteACLs struct{ Filters []ACLFilter }

// ACLInfo is one ACL (package security's ACL): Principal "User:<name>" or
// "User:*"; ResourceType pipeline (or topic), group, transactional_id or
// cluster; Pattern literal (default) or prefixed; Name the resource name
// or prefix ("*" with literal: every one; the cluster's is
// kafka-cluster); Operation read, write, create, delete, alter, describe,
// describe_configs, alter_configs, idempotent_write or all (produce and
// consume are taken for write and read); Permission allow or deny; Host
// "*" (or empty); Jurisdictions codes or groups limiting an allow read
// ACL of a pipeline.
type ACLInfo struct {
	Principal     string   `json:"principal"`
	ResourceType  string   `json:"resource_type"`
	Pattern       string   `json:"pattern,omitempty"`
	Name          string   `json:"name,omitempty"`
	Operation     string   `json:"operation"`
	Permission    string   `json:"permission"`
	Host          string   `json:"host,omitempty"`
	Jurisdictions []string `json:"jurisdictions,omitempty"`
}

// ACLFilter selects ACLs; an empty field matches any value. Pattern is
// literal, prefixed, match (the ACLs that apply to a resource called
// Name) or empty (any pattern, Name exactly).
type ACLFilter struct {
	Principal    string `json:"principal,omitempty"`
	ResourceType string `json:"resource_type,omitempty"`
	Pattern      string `json:"pattern,omitempty"`
	Name         string `json:"name,omitempty"`
	Operation    string `json:"operation,omitempty"`
	Permission   string `json:"permission,omitempty"`
	Host         string `json:"host,omitempty"`
}

func (CreateACLs) Op() string { return "acl.create" }
func (ListACLs) Op() string   { return "acl.list" }
func (DeleteACLs) Op() string { return "acl.delete" }

func (CreateUser) Op() string    { return "user.create" }
func (DeleteUser) Op() string    { return "user.delete" }
func (ListUsers) Op() string     { return "user.list" }
func (CreateToken) Op() string   { return "token.create" }
func (SecurityAudit) Op() string { return "audit.security" }

func (CreatePipeline) Op() string   { return "pipeline.create" }
func (AlterPipeline) Op() string    { return "pipeline.alter" }
func (ListPipelines) Op() string    { return "pipeline.list" }
func (DescribePipeline) Op() string { return "pipeline.describe" }
func (ExplainRoute) Op() string     { return "route.explain" }
func (SetHubStatus) Op() string     { return "hub.set_status" }
func (SetHubPolicy) Op() string     { return "hub.policy" }
func (ListHubs) Op() string         { return "hub.list" }
func (GetRegistry) Op() string      { return "registry" }
func (ClusterStatus) Op() string    { return "cluster.status" }
func (Audit) Op() string            { return "audit" }
func (AuditLog) Op() string         { return "audit.log" }

// ListProcessors lists the processors of the node.
type ListProcessors struct{}

// DescribeProcessor describes one processor: its state, rate, lag and
// counters, and each of its partitions.
type DescribeProcessor struct{ Processor string }

// PauseProcessor stops a processor's deliveries (it keeps its place);
// ResumeProcessor starts them again.
type PauseProcessor struct{ Processor string }

// ResumeProcessor resumes a paused processor.
type ResumeProcessor struct{ Processor string }

// ResetProcessor moves a processor's position on every partition it reads
// to "beginning", "end" or an offset (clamped to each partition's range).
type ResetProcessor struct{ Processor, To string }

// CreateProcessor starts the processors of Config, YAML with a
// processors: list as in a node's config file. They are kept: they run
// again after a restart, until DeleteProcessor.
type CreateProcessor struct{ Config string }

// DeleteProcessor stops a processor made with processor.create on every
// node that runs it, for good (after a restart too), and forgets its
// consumer group's offsets. A processor of the config file is refused.
type DeleteProcessor struct{ Processor string }

func (ListProcessors) Op() string    { return "processor.list" }
func (DescribeProcessor) Op() string { return "processor.describe" }
func (PauseProcessor) Op() string    { return "processor.pause" }
func (ResumeProcessor) Op() string   { return "processor.resume" }
func (ResetProcessor) Op() string    { return "processor.reset" }
func (CreateProcessor) Op() string   { return "processor.create" }
func (DeleteProcessor) Op() string   { return "processor.delete" }

// Response is the answer to any request; each operation fills its part:
// pipeline.create, pipeline.alter and pipeline.describe Pipelines (one)
// and Layout,
// pipeline.list Pipelines, route.explain Verdicts, hub.set_status and
// hub.policy and hub.list Hubs, registry Registry, cluster.status Cluster.
// TableVersion is the version of the routing table the answering node
// routes with (route.explain, hub.*).
type Response struct {
	// Error and Code are set, on the wire, when the request was refused;
	// DecodeResponse returns them as a *result.Error.
	Error     string          `json:"error,omitempty"`
	Code      string          `json:"code,omitempty"`
	Pipelines []PipelineInfo  `json:"pipelines,omitempty"`
	Layout    []PartitionInfo `json:"layout,omitempty"`
	Verdicts  []VerdictInfo   `json:"verdicts,omitempty"`
	Hubs      []HubInfo       `json:"hubs,omitempty"`
	Registry  *RegistryInfo   `json:"registry,omitempty"`
	Cluster   *ClusterInfo    `json:"cluster,omitempty"`
	// TableVersion is the answering node's routing table version.
	TableVersion uint64       `json:"table_version,omitempty"`
	Audit        *AuditReport `json:"audit,omitempty"`
	Moves        []Move       `json:"moves,omitempty"`
	// Users answers user.create, user.delete (the users left) and
	// user.list; Token token.create; SecurityEvents audit.security, with
	// SecurityEventsTotal the number of authentications the node ever
	// recorded (the log keeps the last ones).
	Users               []UserInfo      `json:"users,omitempty"`
	Token               *TokenInfo      `json:"token,omitempty"`
	SecurityEvents      []SecurityEvent `json:"security_events,omitempty"`
	SecurityEventsTotal uint64          `json:"security_events_total,omitempty"`
	// ACLs answers acl.create (the ACLs created), acl.list and
	// acl.delete (the ACLs deleted).
	ACLs []ACLInfo `json:"acls,omitempty"`
	// Processors answers processor.*.
	Processors []ProcessorInfo `json:"processors,omitempty"`
}

// UserInfo is a user: its name and the mechanisms it has credentials for.
type UserInfo struct {
	Name       string   `json:"name"`
	Mechanisms []string `json:"mechanisms"`
	// Iterations is each mechanism's iteration count.
	Iterations map[string]int `json:"iterations,omitempty"`
	// Credentials are the user's SCRAM credentials (their keys): filled
	// in-process only (the Kafka listener's AlterUserScramCredentials),
	// never sent on the wire.
	Credentials []ScramCredential `json:"-"`
}

// TokenInfo is a token made by token.create: the token itself (a secret:
// whoever holds it is the user until it expires), its user, id and expiry
// (RFC 3339).
type TokenInfo struct {
	Token   string `json:"token"`
	User    string `json:"user"`
	ID      string `json:"id"`
	Expires string `json:"expires"`
}

// SecurityEvent is one authentication a node saw.
type SecurityEvent struct {
	Time      string `json:"time"`
	Edge      string `json:"edge"`
	Remote    string `json:"remote"`
	Mechanism string `json:"mechanism"`
	Principal string `json:"principal"`
	Success   bool   `json:"success"`
	Reason    string `json:"reason,omitempty"`
	// Op is set for a change to the ACLs (acl.create, acl.delete) made
	// by Principal; Detail is the ACL.
	Op     string `json:"op,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ProcessorInfo is a processor as processor.list and processor.describe
// show it. Counters count since the node started.
type ProcessorInfo struct {
	Name     string `json:"name"`
	Pipeline string `json:"pipeline"`
	Sink     string `json:"sink"`
	Group    string `json:"group"`
	// State is running, paused or starting; Error the last failure, if
	// the processor is retrying.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Rate is the adaptive rate now (events/s); MaxRate the configured
	// bound (0: none).
	Rate             float64 `json:"rate"`
	MaxRate          float64 `json:"max_rate"`
	InFlightBytes    int64   `json:"in_flight_bytes"`
	MaxInFlightBytes int64   `json:"max_in_flight_bytes"`
	LagEvents        int64   `json:"lag_events"`
	LagSeconds       float64 `json:"lag_seconds"`
	Delivered        uint64  `json:"delivered"`
	Filtered         uint64  `json:"filtered"`
	Retries          uint64  `json:"retries"`
	DeadLettered     uint64  `json:"dead_lettered"`
	// SinkLatencyP99 is the 99th percentile of recent delivery attempts,
	// in seconds.
	SinkLatencyP99 float64                  `json:"sink_latency_p99"`
	Partitions     []ProcessorPartitionInfo `json:"partitions,omitempty"`
}

// ProcessorPartitionInfo is one partition a processor reads here.
type ProcessorPartitionInfo struct {
	Partition     int32  `json:"partition"`
	Hub           string `json:"hub"`
	Priority      string `json:"priority"`
	Position      int64  `json:"position"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
}

// Move is one step of the migrator to one destination, as the audit log
// of moves records it: of the records of a source buffer in [From, To),
// those copied to a destination partition at [DestFrom, DestTo) (-1 when
// a copy made before a restart was recognized as stored), their count and
// a CRC-32C of their keys and values, why they moved ("policy": the hub's
// policy denies the pipeline; "designation": the hub was re-designated to
// a jurisdiction their mask does not allow, or they were re-appended to
// keep them while the records before them left), the routing table version
// the step was planned with, and when. A step that sent records to
// several destinations is one Move per destination.
type Move struct {
	Pipeline  string `json:"pipeline"`
	Source    string `json:"source"`
	SourceHub string `json:"source_hub"`
	From      int64  `json:"from"`
	To        int64  `json:"to"`
	Dest      int32  `json:"dest_partition"`
	DestHub   string `json:"dest_hub"`
	DestFrom  int64  `json:"dest_from"`
	DestTo    int64  `json:"dest_to"`
	Records   int64  `json:"records"`
	Checksum  uint32 `json:"checksum"`
	Reason    string `json:"reason"`
	Cause     uint64 `json:"cause_table_version"`
	Planned   string `json:"planned"`
	Finished  string `json:"finished"`
}

// AuditReport is what one node found reading what it stores (audit).
type AuditReport struct {
	Node string     `json:"node"`
	Hubs []AuditHub `json:"hubs"`
}

// AuditHub is one hub's records on the answering node. Violations must
// be 0: a record whose stored mask does not include the hub's
// jurisdiction, or that carries no mask. AwaitingMigration counts the
// records of pipelines the hub's policy now denies. Corrupt counts
// buffers whose reading stopped at a damaged batch.
type AuditHub struct {
	Hub               string           `json:"hub"`
	Jurisdiction      string           `json:"jurisdiction"`
	Buffers           int              `json:"buffers"`
	Records           int64            `json:"records"`
	Bytes             int64            `json:"bytes"`
	Masks             map[string]int64 `json:"masks"`
	Violations        int64            `json:"violations"`
	AwaitingMigration int64            `json:"awaiting_migration"`
	Corrupt           int64            `json:"corrupt"`
	Examples          []string         `json:"examples,omitempty"`
}

// ClusterInfo is one node's view of its cluster (cluster.status).
type ClusterInfo struct {
	Self    string         `json:"self"`
	Nodes   []NodeStatus   `json:"nodes"`
	Buffers []BufferStatus `json:"buffers"`
}

// NodeStatus is what the answering node knows of one node: its addresses
// (from the node itself, once heard), whether it is up, and when it was
// last heard from.
type NodeStatus struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster_addr"`
	Kafka   string `json:"kafka_addr,omitempty"`
	Native  string `json:"native_addr,omitempty"`
	HTTP    string `json:"http_addr,omitempty"`
	Up      bool   `json:"up"`
	// LastHeardMs is how long ago the node was last heard from, in
	// milliseconds; -1 if never (0 for the answering node itself).
	LastHeardMs int64 `json:"last_heard_ms"`
	// TableVersion is the routing table version the node routes with,
	// as it last said (the metadata log's applied offset).
	TableVersion uint64 `json:"table_version"`
}

// BufferStatus is one raft group (a buffer, or the committed offsets) as
// the answering node sees it. Replicas' progress is known on the leader
// only: elsewhere their Match is -1.
type BufferStatus struct {
	Key           string          `json:"key"`
	Leader        string          `json:"leader"`
	Term          uint64          `json:"term"`
	HighWatermark int64           `json:"high_watermark"`
	Replicas      []ReplicaStatus `json:"replicas"`
	// Held says the answering node holds a replica: Leader, Term and
	// HighWatermark are its live view. A buffer it does not hold is
	// listed from the cluster metadata alone (Leader "", HighWatermark
	// -1, the replicas' progress unknown).
	Held bool `json:"held"`
	// MetaLeader and MetaTerm are the buffer's leader and raft term as
	// the cluster metadata last recorded them ("" and 0 when it has none
	// yet; always so for __offsets and __meta).
	MetaLeader string `json:"meta_leader,omitempty"`
	MetaTerm   uint64 `json:"meta_term,omitempty"`
}

// ReplicaStatus is one replica of a buffer: the offset after the last batch
// it is known to hold, and how far that is behind the leader's log.
type ReplicaStatus struct {
	Node   string `json:"node"`
	Match  int64  `json:"match_offset"`
	Lag    int64  `json:"lag"`
	Active bool   `json:"active"`
}

// RegistryInfo is the jurisdiction registry: bit i is Codes[i]. Clients use
// it to turn codes and groups into masks.
type RegistryInfo struct {
	Codes  []string            `json:"codes"`
	Groups map[string][]string `json:"groups,omitempty"`
}

// PipelineInfo describes a pipeline.
type PipelineInfo struct {
	Name                string `json:"name"`
	Partitions          int    `json:"partitions_per_hub_lane"`
	TotalPartitions     int    `json:"total_partitions"`
	Retention           string `json:"retention"`
	RetentionBytes      string `json:"retention_bytes"` // "none" or a size such as 10GiB
	DefaultPriority     string `json:"default_priority"`
	DefaultJurisdiction string `json:"default_jurisdiction"`
	CleanupPolicy       string `json:"cleanup_policy"`
	MaxMessageBytes     int64  `json:"max_message_bytes"`
	Declared            bool   `json:"declared"`
}

// PartitionInfo is one buffer of a pipeline's layout.
type PartitionInfo struct {
	Partition     int32  `json:"partition"`
	Hub           string `json:"hub"`
	Lane          string `json:"lane"`
	Index         int    `json:"index"`
	Start         int64  `json:"start_offset"`
	HighWatermark int64  `json:"high_watermark"`
}

// VerdictInfo says whether one buffer is eligible for an event, and why.
type VerdictInfo struct {
	Partition int32  `json:"partition"`
	Hub       string `json:"hub"`
	Lane      string `json:"lane"`
	Eligible  bool   `json:"eligible"`
	Why       string `json:"why"`
}

// HubInfo describes a hub.
type HubInfo struct {
	Name         string   `json:"name"`
	Jurisdiction string   `json:"jurisdiction"`
	Status       string   `json:"status"`
	Deny         []string `json:"deny_pipelines,omitempty"`
	// Former are the jurisdictions the hub was designated before, oldest
	// first.
	Former []string `json:"former_jurisdictions,omitempty"`
}

// envelope is a request on the wire.
type envelope struct {
	Op                  string            `json:"op"`
	Pipeline            string            `json:"pipeline,omitempty"`
	Partitions          int               `json:"partitions,omitempty"`
	Retention           string            `json:"retention,omitempty"`
	RetentionBytes      string            `json:"retention_bytes,omitempty"`
	DefaultPriority     string            `json:"default_priority,omitempty"`
	DefaultJurisdiction string            `json:"default_jurisdiction,omitempty"`
	CleanupPolicy       string            `json:"cleanup_policy,omitempty"`
	MaxMessageBytes     string            `json:"max_message_bytes,omitempty"`
	Jurisdiction        string            `json:"jurisdiction,omitempty"`
	Priority            string            `json:"priority,omitempty"`
	Hub                 string            `json:"hub,omitempty"`
	Status              string            `json:"status,omitempty"`
	Deny                []string          `json:"deny,omitempty"`
	Allow               []string          `json:"allow,omitempty"`
	User                string            `json:"user,omitempty"`
	Password            string            `json:"password,omitempty"`
	Mechanism           string            `json:"mechanism,omitempty"`
	Iterations          int               `json:"iterations,omitempty"`
	Credentials         []ScramCredential `json:"credentials,omitempty"`
	TTL                 string            `json:"ttl,omitempty"`
	ACLs                []ACLInfo         `json:"acls,omitempty"`
	Filters             []ACLFilter       `json:"filters,omitempty"`
	Processor           string            `json:"processor,omitempty"`
	To                  string            `json:"to,omitempty"`
	Config              string            `json:"config,omitempty"`
}

// ops lists the operations, for the error on an unknown one.
const ops = "pipeline.create, pipeline.alter, pipeline.list, pipeline.describe, route.explain, hub.set_status, hub.policy, hub.list, registry, cluster.status, audit, audit.log, user.create, user.delete, user.list, token.create, audit.security, acl.create, acl.list, acl.delete, processor.list, processor.describe, processor.pause, processor.resume, processor.reset, processor.create, processor.delete"

// Encode returns the wire form of r.
func Encode(r Request) ([]byte, error) {
	e := envelope{Op: r.Op()}
	switch r := r.(type) {
	case CreatePipeline:
		e.Pipeline, e.Partitions, e.Retention, e.DefaultPriority, e.DefaultJurisdiction =
			r.Pipeline, r.Partitions, r.Retention, r.DefaultPriority, r.DefaultJurisdiction
		e.CleanupPolicy, e.MaxMessageBytes = r.CleanupPolicy, r.MaxMessageBytes
	case AlterPipeline:
		e.Pipeline, e.Retention, e.RetentionBytes, e.DefaultPriority, e.DefaultJurisdiction =
			r.Pipeline, r.Retention, r.RetentionBytes, r.DefaultPriority, r.DefaultJurisdiction
		e.CleanupPolicy, e.MaxMessageBytes = r.CleanupPolicy, r.MaxMessageBytes
	case DescribePipeline:
		e.Pipeline = r.Pipeline
	case Audit:
		e.Pipeline = r.Pipeline
	case ExplainRoute:
		e.Pipeline, e.Jurisdiction, e.Priority = r.Pipeline, r.Jurisdiction, r.Priority
	case SetHubStatus:
		e.Hub, e.Status, e.Jurisdiction = r.Hub, r.Status, r.Jurisdiction
	case SetHubPolicy:
		e.Hub, e.Deny, e.Allow = r.Hub, r.Deny, r.Allow
	case CreateUser:
		e.User, e.Password, e.Mechanism, e.Iterations, e.Credentials = r.User, r.Password, r.Mechanism, r.Iterations, r.Credentials
	case DeleteUser:
		e.User = r.User
	case CreateToken:
		e.User, e.TTL = r.User, r.TTL
	case CreateACLs:
		e.ACLs = r.ACLs
	case ListACLs:
		e.Filters = r.Filters
	case DeleteACLs:
		e.Filters = r.Filters
	case DescribeProcessor:
		e.Processor = r.Processor
	case PauseProcessor:
		e.Processor = r.Processor
	case ResumeProcessor:
		e.Processor = r.Processor
	case ResetProcessor:
		e.Processor, e.To = r.Processor, r.To
	case CreateProcessor:
		e.Config = r.Config
	case DeleteProcessor:
		e.Processor = r.Processor
	case ListPipelines, ListHubs, GetRegistry, ClusterStatus, AuditLog, ListUsers, SecurityAudit, ListProcessors:
	default:
		return nil, fmt.Errorf("admin: %T is not a request of this package", r)
	}
	return json.Marshal(&e)
}

// Decode parses a request's wire form. A body that is not a JSON object is
// MALFORMED; an unknown op is INVALID_REQUEST naming the known ones.
func Decode(body []byte) (Request, error) {
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, result.New(result.Malformed, fmt.Sprintf("admin request is not valid JSON: %v", err))
	}
	switch e.Op {
	case "pipeline.create":
		return CreatePipeline{Pipeline: e.Pipeline, Partitions: e.Partitions, Retention: e.Retention,
			DefaultPriority: e.DefaultPriority, DefaultJurisdiction: e.DefaultJurisdiction,
			CleanupPolicy: e.CleanupPolicy, MaxMessageBytes: e.MaxMessageBytes}, nil
	case "pipeline.alter":
		return AlterPipeline{Pipeline: e.Pipeline, Retention: e.Retention, RetentionBytes: e.RetentionBytes,
			DefaultPriority: e.DefaultPriority, DefaultJurisdiction: e.DefaultJurisdiction,
			CleanupPolicy: e.CleanupPolicy, MaxMessageBytes: e.MaxMessageBytes}, nil
	case "pipeline.list":
		return ListPipelines{}, nil
	case "pipeline.describe":
		return DescribePipeline{Pipeline: e.Pipeline}, nil
	case "route.explain":
		return ExplainRoute{Pipeline: e.Pipeline, Jurisdiction: e.Jurisdiction, Priority: e.Priority}, nil
	case "hub.set_status":
		return SetHubStatus{Hub: e.Hub, Status: e.Status, Jurisdiction: e.Jurisdiction}, nil
	case "hub.policy":
		return SetHubPolicy{Hub: e.Hub, Deny: e.Deny, Allow: e.Allow}, nil
	case "hub.list":
		return ListHubs{}, nil
	case "registry":
		return GetRegistry{}, nil
	case "cluster.status":
		return ClusterStatus{}, nil
	case "audit":
		return Audit{Pipeline: e.Pipeline}, nil
	case "audit.log":
		return AuditLog{}, nil
	case "user.create":
		return CreateUser{User: e.User, Password: e.Password, Mechanism: e.Mechanism, Iterations: e.Iterations, Credentials: e.Credentials}, nil
	case "user.delete":
		return DeleteUser{User: e.User}, nil
	case "user.list":
		return ListUsers{}, nil
	case "token.create":
		return CreateToken{User: e.User, TTL: e.TTL}, nil
	case "audit.security":
		return SecurityAudit{}, nil
	case "acl.create":
		return CreateACLs{ACLs: e.ACLs}, nil
	case "acl.list":
		return ListACLs{Filters: e.Filters}, nil
	case "acl.delete":
		return DeleteACLs{Filters: e.Filters}, nil
	case "processor.list":
		return ListProcessors{}, nil
	case "processor.describe":
		return DescribeProcessor{Processor: e.Processor}, nil
	case "processor.pause":
		return PauseProcessor{Processor: e.Processor}, nil
	case "processor.resume":
		return ResumeProcessor{Processor: e.Processor}, nil
	case "processor.reset":
		return ResetProcessor{Processor: e.Processor, To: e.To}, nil
	case "processor.create":
		return CreateProcessor{Config: e.Config}, nil
	case "processor.delete":
		return DeleteProcessor{Processor: e.Processor}, nil
	}
	return nil, result.New(result.InvalidRequest, fmt.Sprintf("unknown admin op %q; known: %s", e.Op, ops))
}

// EncodeResponse returns the wire form of an answer: resp, or, when err is
// not nil, err's message and code (UNKNOWN for an error without one).
func EncodeResponse(resp Response, err error) []byte {
	if err != nil {
		resp = Response{Error: result.MessageOf(err), Code: result.CodeOf(err).String()}
	}
	out, _ := json.Marshal(&resp)
	return out
}

// DecodeResponse parses an answer's wire form. A refusal is returned as a
// *result.Error with the server's code and message, beside the response.
func DecodeResponse(body []byte) (Response, error) {
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		return resp, fmt.Errorf("admin: the server's answer is not the expected JSON: %w", err)
	}
	if resp.Error == "" {
		return resp, nil
	}
	code, ok := result.Parse(resp.Code)
	if !ok {
		code = result.Unknown
	}
	return resp, result.New(code, resp.Error)
}

// Handler runs typed requests: the node implements it.
type Handler interface {
	Admin(Request) (Response, error)
}

// ContextHandler is a Handler that runs a request on behalf of whoever
// ctx says sent it (the principal of package security, which the edges
// put there): the server's admin API checks that the principal may.
type ContextHandler interface {
	Handler
	AdminContext(ctx context.Context, req Request) (Response, error)
}

// Serve decodes a request's wire form, runs it with h, and returns the
// answer's wire form: the one path of the native ADMIN frame and of POST
// /v1/admin.
func Serve(h Handler, body []byte) []byte {
	return ServeContext(context.Background(), h, body)
}

// ServeContext is Serve on behalf of the sender ctx carries: a
// ContextHandler gets ctx.
func ServeContext(ctx context.Context, h Handler, body []byte) []byte {
	req, err := Decode(body)
	if err != nil {
		return EncodeResponse(Response{}, err)
	}
	if ch, ok := h.(ContextHandler); ok {
		return EncodeResponse(ch.AdminContext(ctx, req))
	}
	return EncodeResponse(h.Admin(req))
}
