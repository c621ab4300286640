package config

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/seglog"
)

// Defaults filled in by Validate.
const (
	DefaultNodeID          = "n1"
	DefaultDataDir         = "./data"
	DefaultNativeAddr      = "127.0.0.1:7070"
	DefaultQUICAddr        = "127.0.0.1:7071"
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultKafkaAddr       = "127.0.0.1:9092"
	DefaultJurisdiction    = "ZZ"    // ISO 3166 user-assigned: never a real country
	DefaultHubName         = "local" // the dev-mode hub, of jurisdiction "*"
	DefaultSegmentBytes    = 128 * MiB
	DefaultMemoryLimit     = 256 * MiB
	DefaultMaxEventBytes   = 1 * MiB
	DefaultMaxRequestBytes = 100 * MiB
	DefaultShedLowAt       = 0.5
	DefaultShedMediumAt    = 0.8
	DefaultTargetDelay     = Duration(5 * time.Millisecond)
	DefaultDelayInterval   = Duration(100 * time.Millisecond)
	// DefaultHTTPMaxBodyBytes and DefaultHTTPMaxEventsPerRequest bound an
	// HTTP produce request.
	DefaultHTTPMaxBodyBytes        = 16 * MiB
	DefaultHTTPMaxEventsPerRequest = 10000
	// DefaultGroupInitialRebalanceDelay is Kafka's default too.
	DefaultGroupInitialRebalanceDelay = Duration(3 * time.Second)
	// DefaultReplication is the replication of a pipeline that gives none,
	// in a hub of at least that many nodes (see Pipeline.ReplicationIn).
	DefaultReplication = 3
)

// Limits checked by Validate.
const (
	MaxPartitions  = 1024
	MaxReplication = 7
	MinMemoryLimit = 1 * MiB
	maxNameLen     = 64
)

// ListenerOff, given as a listener address, turns that listener off.
const ListenerOff = "off"

// Config is the configuration of one sense process. The zero value is a
// valid dev-mode configuration once Validate has filled its defaults. Fields
// are tagged with their YAML keys, which are the contract; docs/configuration.md
// lists every key with its default, environment variable and flag.
//
// Load and Parse return a validated Config. After changing a Config by hand,
// call Validate again: it fills defaults, rejects bad values and computes the
// jurisdiction registry and masks that Registry, Hub.Mask and
// Pipeline.DefaultMask return.
type Config struct {
	Node      Node      `yaml:"node"`
	Listeners Listeners `yaml:"listeners"`
	// Jurisdictions lists ISO 3166-1 alpha-2 codes; the i-th code owns bit i
	// of every mask. Codes may be appended but never reordered or removed
	// once data is stored. Default: [ZZ].
	Jurisdictions []string `yaml:"jurisdictions"`
	// Groups names sets of registered codes, such as ECOWAS: [SN, NG].
	Groups map[string][]string `yaml:"groups"`
	// Hubs are the sites that hold buffers. Default in dev mode: one hub
	// "local" of jurisdiction "*"; outside dev mode at least one is required.
	Hubs []Hub `yaml:"hubs"`
	// Pipelines are declared up front; others are created on first use when
	// Router.AutoCreatePipelines is set.
	Pipelines  []Pipeline `yaml:"pipelines"`
	Durability Durability `yaml:"durability"`
	Storage    Storage    `yaml:"storage"`
	Router     Router     `yaml:"router"`
	Alerts     Alerts     `yaml:"alerts"`
	Kafka      Kafka      `yaml:"kafka"`
	HTTP       HTTP       `yaml:"http"`
	TLS        TLS        `yaml:"tls"`
	Security   Security   `yaml:"security"`
	Log        Log        `yaml:"log"`
	Cluster    Cluster    `yaml:"cluster"`
	// Processors read pipelines and deliver to sinks (docs/processors.md).
	Processors []Processor `yaml:"processors"`

	registry *jurisdiction.Registry // built by Validate
	sources  map[string]string      // key -> where its value came from, set by Load
}

// Node identifies this process and its storage.
type Node struct {
	// ID names the node: 1 to 64 of a-z, 0-9, '.', '_', '-'. Default n1.
	ID string `yaml:"id"`
	// DataDir holds every hub's data, one sub-directory per hub. A relative
	// path is relative to the working directory. Default ./data.
	DataDir string `yaml:"data_dir"`
}

// Listeners are the addresses the edges listen on, as host:port. An empty
// host (":7070") means every interface; port 0 picks a free port; "off"
// turns the listener off.
type Listeners struct {
	Native string `yaml:"native"` // TCP, default 127.0.0.1:7070
	HTTP   string `yaml:"http"`   // TCP, default 127.0.0.1:8080
	Kafka  string `yaml:"kafka"`  // TCP, default 127.0.0.1:9092
	// KafkaAdvertised is the host:port Kafka clients are told to connect
	// to; empty means the Kafka listen address (see KafkaAdvertisedAddr).
	KafkaAdvertised string `yaml:"kafka_advertised"`
	QUIC            string `yaml:"quic"` // UDP, default 127.0.0.1:7071
}

// KafkaAdvertisedAddr returns the address to advertise to Kafka clients:
// KafkaAdvertised if set, else the Kafka listen address.
func (l Listeners) KafkaAdvertisedAddr() string {
	if l.KafkaAdvertised != "" {
		return l.KafkaAdvertised
	}
	return l.Kafka
}

// Hub is a site in exactly one jurisdiction.
type Hub struct {
	// Name is 1 to 64 of a-z, 0-9, '_', '-', unique among hubs.
	Name string `yaml:"name"`
	// Jurisdiction is one registered code, or "*" for every registered
	// code (the dev-mode hub). A group is not allowed: a hub sits in one
	// place.
	Jurisdiction string `yaml:"jurisdiction"`
	// Nodes are the ids of the cluster peers that hold the hub's buffers,
	// each listed once. Empty means every peer. In dev mode it must be
	// empty: the one node holds every hub. Config.HubNodes resolves it.
	Nodes  []string  `yaml:"nodes"`
	Status HubStatus `yaml:"status"`
	Policy HubPolicy `yaml:"policy"`

	mask jurisdiction.Mask // set by Validate
}

// Mask returns the hub's jurisdiction as a mask: one bit, or every
// registered bit for "*". It is 0 until Validate has run.
func (h Hub) Mask() jurisdiction.Mask { return h.mask }

// HubPolicy restricts what a hub may hold.
type HubPolicy struct {
	// DenyPipelines names pipelines the hub must never hold. The names must
	// be valid pipeline names but need not be declared.
	DenyPipelines []string `yaml:"deny_pipelines"`
}

// Denies reports whether the policy forbids the pipeline.
func (p HubPolicy) Denies(pipeline string) bool {
	for _, d := range p.DenyPipelines {
		if d == pipeline {
			return true
		}
	}
	return false
}

// HubStatus is a hub's status. The zero value is HubUp.
type HubStatus uint8

// Hub statuses. Only an up hub is eligible for new events; a draining hub
// is on its way out (its stored events are to move elsewhere); a down hub is
// unavailable.
const (
	HubUp HubStatus = iota
	HubDraining
	HubDown
)

var hubStatusNames = [...]string{"up", "draining", "down"}

// ParseHubStatus reads "up", "draining" or "down", in any case.
func ParseHubStatus(s string) (HubStatus, error) {
	for i, n := range hubStatusNames {
		if strings.EqualFold(s, n) {
			return HubStatus(i), nil
		}
	}
	return HubUp, fmt.Errorf("config: hub status %q is not up, draining or down", s)
}

func (s HubStatus) valid() bool { return int(s) < len(hubStatusNames) }

// String returns "up", "draining", "down", or "status(N)" for an unknown value.
func (s HubStatus) String() string {
	if s.valid() {
		return hubStatusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText writes the status name.
func (s HubStatus) MarshalText() ([]byte, error) {
	if !s.valid() {
		return nil, fmt.Errorf("config: hub status %d is not up (0), draining (1) or down (2)", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a status as ParseHubStatus does.
func (s *HubStatus) UnmarshalText(text []byte) error {
	v, err := ParseHubStatus(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Pipeline declares a pipeline (a Kafka topic) and its defaults.
type Pipeline struct {
	// Name follows Kafka's topic rules (event.ValidatePipelineName) and is
	// unique, also when compared without regard to case.
	Name string `yaml:"name"`
	// Partitions is 1 to 1024; 0 means 1.
	Partitions int `yaml:"partitions"`
	// Replication is how many nodes of a hub hold each of the pipeline's
	// buffers in that hub: 1 to MaxReplication, odd numbers recommended
	// (raft needs a majority). The pipeline has partitions in every hub, so
	// every hub must have at least this many nodes. 0, the default, means
	// DefaultReplication or, in a hub of fewer nodes, all of them; see
	// ReplicationIn. In dev mode it is 0 or 1.
	Replication int `yaml:"replication"`
	// Retention deletes events older than this; 0 keeps them forever.
	Retention Duration `yaml:"retention"`
	// RetentionBytes deletes the oldest events of a buffer while it is
	// larger than this; 0 means no limit.
	RetentionBytes Size `yaml:"retention_bytes"`
	// DefaultPriority applies to events that carry none. Default low.
	DefaultPriority event.Priority `yaml:"default_priority"`
	// DefaultJurisdiction applies to events that carry no mask, in the
	// registry's Parse syntax ("MA,SN", "ECOWAS", "*"). Default "*".
	DefaultJurisdiction string `yaml:"default_jurisdiction"`
	// MaxMessageBytes is the largest batch, and record, a Kafka producer
	// may send to the pipeline (Kafka's max.message.bytes); 0 means
	// router.max_event_bytes.
	MaxMessageBytes Size `yaml:"max_message_bytes"`
	// CleanupPolicy is Kafka's cleanup.policy: delete (the default; old
	// segments go by retention), compact (each buffer keeps the latest
	// event of each key; events need a key; retention deletes nothing) or
	// "compact,delete" (both). docs/storage.md, "Compaction".
	CleanupPolicy string `yaml:"cleanup_policy"`
	// DeleteRetention is how long a tombstone (an event with a key and no
	// value) that is the latest of its key stays in a compacted pipeline;
	// 0 means 24h (Kafka's delete.retention.ms).
	DeleteRetention Duration `yaml:"delete_retention"`
	// MinCompactionLag keeps events from compaction until they are this
	// old (min.compaction.lag.ms).
	MinCompactionLag Duration `yaml:"min_compaction_lag"`
	// MinCleanableDirtyRatio: a buffer is compacted once this share of
	// its sealed bytes was not compacted yet; 0 means 0.5.
	MinCleanableDirtyRatio float64 `yaml:"min_cleanable_dirty_ratio"`

	defaultMask jurisdiction.Mask // set by Validate
}

// DefaultMask returns DefaultJurisdiction parsed by the registry. It is 0
// until Validate has run.
func (p Pipeline) DefaultMask() jurisdiction.Mask { return p.defaultMask }

// ReplicationIn returns the pipeline's effective replication in a hub of
// hubNodes nodes (len(Config.HubNodes(hub))): Replication, or
// DefaultReplication when it is 0, and never more than hubNodes. Validate
// refuses an explicit Replication larger than a hub, so for a validated
// Config the cap only applies to the default.
func (p Pipeline) ReplicationIn(hubNodes int) int {
	r := p.Replication
	if r == 0 {
		r = DefaultReplication
	}
	return max(0, min(r, hubNodes))
}

// Durability configures the segmented logs.
type Durability struct {
	// Fsync is the fsync policy: always (default), interval:<duration>,
	// never.
	Fsync seglog.Durability `yaml:"fsync"`
	// SegmentBytes rolls a segment at this size, 4KiB to 1GiB; default
	// 128MiB.
	SegmentBytes Size `yaml:"segment_bytes"`
	// GroupCommitInterval paces each buffer's group commits under fsync
	// always while appends keep arriving: the least time between the
	// starts of two back-to-back fdatasyncs of one buffer
	// (seglog.Options.GroupCommitInterval). nil means
	// DefaultGroupCommitInterval; 0 syncs back to back; at most
	// seglog.MaxGroupCommitInterval.
	GroupCommitInterval *Duration `yaml:"group_commit_interval"`
}

// GroupCommitInterval is durability.group_commit_interval, its default
// when unset.
func (c *Config) GroupCommitInterval() time.Duration {
	if c.Durability.GroupCommitInterval == nil {
		return time.Duration(DefaultGroupCommitInterval)
	}
	return time.Duration(*c.Durability.GroupCommitInterval)
}

// Storage configures how the node holds its logs' files.
type Storage struct {
	// MaxOpenFiles bounds the segment files the node keeps open for all its
	// buffers (a cache shared by every log: idle, fully synced files are
	// closed least recently used first and reopened on demand). 0, the
	// default, is half the process's open-file limit (ulimit -n), at most
	// 4096; otherwise at least MinOpenFiles.
	MaxOpenFiles int `yaml:"max_open_files"`
	// PreallocateBytes keeps each log's active segment this far ahead of
	// its data in written zeros (in the background), so that the fdatasync
	// of an append need not persist a new file size. nil means
	// DefaultPreallocateBytes (Validate sets it); 0 turns it off; at most
	// MaxPreallocateBytes.
	PreallocateBytes *Size `yaml:"preallocate_bytes"`
}

// PreallocateBytes is storage.preallocate_bytes in bytes, its default when
// unset.
func (c *Config) PreallocateBytes() int64 {
	if c.Storage.PreallocateBytes == nil {
		return int64(DefaultPreallocateBytes)
	}
	return int64(*c.Storage.PreallocateBytes)
}

// MinOpenFiles is the smallest storage.max_open_files.
const MinOpenFiles = 16

// DefaultPreallocateBytes and MaxPreallocateBytes bound
// storage.preallocate_bytes.
const (
	DefaultPreallocateBytes = 1 * MiB
	// DefaultGroupCommitInterval is durability.group_commit_interval's
	// default (docs/storage.md, "Pacing group commits").
	DefaultGroupCommitInterval = Duration(500 * time.Microsecond)
	MaxPreallocateBytes        = 256 * MiB
)

// Router configures the ingestion router.
type Router struct {
	// MemoryLimit bounds the router's queued events; default 256MiB, at
	// least 1MiB.
	MemoryLimit Size `yaml:"memory_limit"`
	// AutoCreatePipelines creates a pipeline on its first event. nil means
	// the mode's default: true in dev mode, false otherwise. Validate sets
	// it.
	AutoCreatePipelines *bool `yaml:"auto_create_pipelines"`
	// MaxEventBytes rejects larger events; default 1MiB, at most
	// MemoryLimit.
	MaxEventBytes Size `yaml:"max_event_bytes"`
	// ShedLowAt is the fraction of MemoryLimit in use past which low
	// events are rejected as OVERLOADED; default 0.5.
	ShedLowAt float64 `yaml:"shed_low_at"`
	// ShedMediumAt is the same for medium events; default 0.8, at least
	// ShedLowAt. Critical events are never shed.
	ShedMediumAt float64 `yaml:"shed_medium_at"`
	// TargetDelay is the queueing delay (from reading a produce request to
	// the start of its append) a low or medium lane may keep for a
	// DelayInterval before part of its requests are refused as
	// OVERLOADED, low before medium; default 5ms.
	TargetDelay Duration `yaml:"target_delay"`
	// DelayInterval is how long the delay must stay above TargetDelay,
	// and how often a lane revises how much it admits; default 100ms.
	DelayInterval Duration `yaml:"delay_interval"`
	// DefaultPartitions is the partition count of a pipeline created
	// without one (on first produce, by a Kafka CreateTopics with -1): 0,
	// the default, is one partition per hub and lane; N (1 to 1024) lays N
	// partitions over the hubs and lanes.
	DefaultPartitions int `yaml:"default_partitions"`
}

// Alerts configures where alerts go.
type Alerts struct {
	// Webhook is an http or https URL that receives a POST per alert (for
	// example NO_COMPLIANT_HUB); empty sends none.
	Webhook string `yaml:"webhook"`
}

// Kafka configures the Kafka edge.
type Kafka struct {
	// AutoCreateTopics lets a Kafka metadata or produce request create a
	// missing topic. nil means the mode's default: true in dev mode, false
	// otherwise. Validate sets it.
	AutoCreateTopics *bool `yaml:"auto_create_topics"`
	// MaxRequestBytes rejects larger Kafka requests before reading them;
	// default 100MiB, at most 2GiB-1.
	MaxRequestBytes Size `yaml:"max_request_bytes"`
	// GroupInitialRebalanceDelay is how long the first member of an empty
	// consumer group waits for others before the first generation forms
	// (Kafka's group.initial.rebalance.delay.ms). nil means the default,
	// 3s; 0 means none. Validate sets it.
	GroupInitialRebalanceDelay *Duration `yaml:"group_initial_rebalance_delay"`
	// TransactionVersion is the Kafka transaction version in effect (the
	// feature transaction.version that ApiVersions finalizes): 2 is
	// KIP-890 part 2 (partitions and groups added to a transaction by
	// the produce and the offset commit themselves, the producer epoch
	// bumped at every transaction), 1 the protocol before it. 0, the
	// default, is 2 on a node alone and 1 in a cluster, which cannot
	// serve 2 (docs/kafka.md, "Transaction version 2").
	TransactionVersion int `yaml:"transaction_version"`
	// TransactionalIDExpiration forgets a transactional id that has had
	// no transaction under way and no change for that long (Kafka's
	// transactional.id.expiration.ms); its producer, back later, gets a
	// new producer id. 0, the default, is 7 days.
	TransactionalIDExpiration Duration `yaml:"transactional_id_expiration"`
}

// HTTP configures the HTTP edge's event ingestion.
type HTTP struct {
	// MaxBodyBytes refuses a larger POST body with 413, before it is
	// read; default 16MiB, at most 1GiB.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// MaxEventsPerRequest refuses a POST with more events with 413;
	// default 10000, at most 1000000.
	MaxEventsPerRequest int `yaml:"max_events_per_request"`
}

// Limits checked by Validate on the http section.
const (
	MaxHTTPBodyBytes        = 1 * GiB
	MaxHTTPEventsPerRequest = 1000000
)

// TLS configures TLS on the TCP listeners (docs/security.md, "TLS").
//
// CertFile, KeyFile, ClientCAFile and ClientAuth are shared: a listener's
// section (HTTP, Native, Kafka) may override each of them. The HTTP
// listener serves HTTPS whenever it has a certificate, as it always has,
// and QUIC presents the shared certificate; the native and Kafka listeners
// speak TLS only when their section turns it on (Enabled, or a cert_file
// of their own), so a plain-TCP client keeps working with a config that
// only names the shared certificate.
type TLS struct {
	// CertFile is a PEM file holding the certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is a PEM file holding the certificate's private key.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is a PEM file of the CA certificates that sign client
	// certificates (mutual TLS). With it ClientAuth defaults to require.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none, verify_if_given or require; empty is require
	// with a ClientCAFile, none without.
	ClientAuth ClientAuth `yaml:"client_auth"`
	// HandshakeTimeout disconnects a client that has not finished its TLS
	// handshake this long after connecting. Default 10s.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// HTTP, Native and Kafka are the listeners' own settings.
	HTTP   ListenerTLS `yaml:"http"`
	Native ListenerTLS `yaml:"native"`
	Kafka  ListenerTLS `yaml:"kafka"`
}

// ListenerTLS is one listener's TLS: whether it is on, and the shared
// settings it overrides (an empty field takes the shared one).
type ListenerTLS struct {
	// Enabled turns TLS on or off for the listener. nil means the default
	// (TLS.Listener resolves it): for HTTP, true when a certificate is
	// configured for it (shared or its own); for the native and Kafka
	// listeners, true when the section gives a cert_file of its own.
	Enabled      *bool      `yaml:"enabled"`
	CertFile     string     `yaml:"cert_file"`
	KeyFile      string     `yaml:"key_file"`
	ClientCAFile string     `yaml:"client_ca_file"`
	ClientAuth   ClientAuth `yaml:"client_auth"`
}

// ClientAuth says whether a TLS listener asks its clients for a
// certificate. The zero value, "", is the default: require with a client
// CA file, none without.
type ClientAuth string

// Client authentication policies.
const (
	ClientAuthDefault       ClientAuth = ""
	ClientAuthNone          ClientAuth = "none"            // no client certificate asked for
	ClientAuthVerifyIfGiven ClientAuth = "verify_if_given" // optional; verified when given
	ClientAuthRequire       ClientAuth = "require"         // required and verified
)

func (a ClientAuth) valid() bool {
	switch a {
	case ClientAuthDefault, ClientAuthNone, ClientAuthVerifyIfGiven, ClientAuthRequire:
		return true
	}
	return false
}

// DefaultHandshakeTimeout is the default of tls.handshake_timeout.
const DefaultHandshakeTimeout = Duration(10 * time.Second)

// Listener names for TLS.Listener.
const (
	ListenerHTTP   = "http"
	ListenerNative = "native"
	ListenerKafka  = "kafka"
)

// ListenerTLSSettings are a listener's effective TLS settings, shared ones
// and overrides resolved.
type ListenerTLSSettings struct {
	Enabled                         bool
	CertFile, KeyFile, ClientCAFile string
	ClientAuth                      ClientAuth // never ClientAuthDefault
}

// Listener returns the effective TLS settings of the listener named
// ListenerHTTP, ListenerNative or ListenerKafka, after Validate.
func (t TLS) Listener(name string) ListenerTLSSettings {
	var l ListenerTLS
	switch name {
	case ListenerHTTP:
		l = t.HTTP
	case ListenerNative:
		l = t.Native
	case ListenerKafka:
		l = t.Kafka
	default:
		panic("config: no TLS settings for listener " + name)
	}
	s := ListenerTLSSettings{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, ClientAuth: t.ClientAuth}
	if l.CertFile != "" || l.KeyFile != "" {
		s.CertFile, s.KeyFile = l.CertFile, l.KeyFile
	}
	if l.ClientCAFile != "" {
		s.ClientCAFile = l.ClientCAFile
	}
	if l.ClientAuth != ClientAuthDefault {
		s.ClientAuth = l.ClientAuth
	}
	if s.ClientAuth == ClientAuthDefault {
		s.ClientAuth = ClientAuthNone
		if s.ClientCAFile != "" {
			s.ClientAuth = ClientAuthRequire
		}
	}
	if l.Enabled != nil {
		s.Enabled = *l.Enabled
	} else {
		s.Enabled = name == ListenerHTTP && s.CertFile != "" && s.KeyFile != "" || l.CertFile != ""
	}
	return s
}

// Enabled reports whether a shared certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// ClusterTLS secures the cluster transport with mutual TLS: every node
// presents its certificate, which must name its node id (URI SAN
// sense://node/<id>, or a DNS SAN equal to the id), and verifies its
// peers' against CAFile. Empty: the transport is plain TCP.
type ClusterTLS struct {
	// CertFile and KeyFile are this node's certificate (chain) and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile holds the CA certificates that sign the nodes' certificates.
	CAFile string `yaml:"ca_file"`
}

// Enabled reports whether the cluster transport uses TLS.
func (t ClusterTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// Log configures the process's log.
type Log struct {
	Format LogFormat  `yaml:"format"` // auto (default), json or text
	Level  slog.Level `yaml:"level"`  // debug, info (default), warn or error
}

// EffectiveFormat resolves LogAuto: JSON when the log does not go to a
// terminal, text when it does.
func (l Log) EffectiveFormat(terminal bool) LogFormat {
	if l.Format != LogAuto {
		return l.Format
	}
	if terminal {
		return LogText
	}
	return LogJSON
}

// Handler returns a slog handler writing to w in the effective format at
// Level; terminal says whether w is a terminal.
func (l Log) Handler(w io.Writer, terminal bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.EffectiveFormat(terminal) == LogText {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// LogFormat is the log's encoding. The zero value is LogAuto.
type LogFormat uint8

// Log formats.
const (
	LogAuto LogFormat = iota // JSON unless writing to a terminal
	LogJSON
	LogText
)

var logFormatNames = [...]string{"auto", "json", "text"}

// ParseLogFormat reads "auto", "json" or "text", in any case.
func ParseLogFormat(s string) (LogFormat, error) {
	for i, n := range logFormatNames {
		if strings.EqualFold(s, n) {
			return LogFormat(i), nil
		}
	}
	return LogAuto, fmt.Errorf("config: log format %q is not auto, json or text", s)
}

func (f LogFormat) valid() bool { return int(f) < len(logFormatNames) }

// String returns "auto", "json", "text", or "format(N)" for an unknown value.
func (f LogFormat) String() string {
	if f.valid() {
		return logFormatNames[f]
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// MarshalText writes the format name.
func (f LogFormat) MarshalText() ([]byte, error) {
	if !f.valid() {
		return nil, fmt.Errorf("config: log format %d is not auto (0), json (1) or text (2)", uint8(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText reads a format as ParseLogFormat does.
func (f *LogFormat) UnmarshalText(text []byte) error {
	v, err := ParseLogFormat(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Cluster lists the nodes of a multi-node deployment and how they reach
// each other. A Cluster with no peers is dev mode (see DevMode): one node
// holding every hub.
type Cluster struct {
	// Listen is the host:port this node's cluster transport listens on for
	// its peers. Default: this node's own address in Peers (the entry whose
	// ID is Node.ID). Validate fills it in.
	Listen string `yaml:"listen"`
	// Advertise is the host:port peers and clients are told to reach this
	// node's transport at; empty means Listen (see AdvertiseAddr).
	Advertise string `yaml:"advertise"`
	// Peers are every node of the cluster, this one included, in an order
	// every node's config must share.
	Peers []Peer `yaml:"peers"`
	// MetadataVoters are the nodes that vote in the cluster metadata log
	// (an odd number, 3 or 5); the other nodes follow it as learners.
	// Empty means every peer when there are at most 5, else the first 3
	// (MetadataVoterIDs). Every node's config must give the same.
	MetadataVoters []string `yaml:"metadata_voters"`
	// TLS, when set, secures the transport with mutual TLS.
	TLS ClusterTLS `yaml:"tls"`
}

// MetadataVoterIDs returns the voters of the cluster metadata log:
// MetadataVoters, or by default every peer when there are at most 5, else
// the first 3 in peer order.
func (c Cluster) MetadataVoterIDs() []string {
	if len(c.MetadataVoters) > 0 {
		return c.MetadataVoters
	}
	var ids []string
	for _, p := range c.Peers {
		ids = append(ids, p.ID)
	}
	if len(ids) > 5 {
		ids = ids[:3]
	}
	return ids
}

// Peer is one node of a cluster.
type Peer struct {
	// ID is the node's node.id: 1 to 64 of a-z, 0-9, '.', '_', '-'.
	ID string `yaml:"id"`
	// Addr is the host:port the other nodes dial to reach this one's
	// cluster transport.
	Addr string `yaml:"addr"`
}

// String returns the peer as id=host:port, the form SENSE_CLUSTER_PEERS
// takes.
func (p Peer) String() string { return p.ID + "=" + p.Addr }

// Enabled reports whether the cluster names any peer, which leaves dev
// mode.
func (c Cluster) Enabled() bool { return len(c.Peers) > 0 }

// AdvertiseAddr returns the address to advertise for this node's cluster
// transport: Advertise if set, else Listen.
func (c Cluster) AdvertiseAddr() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Listen
}

// DevMode reports whether c names no cluster peers. In dev mode the default
// hub "local" exists, this node holds every hub, and pipelines and Kafka
// topics are auto-created unless the config says otherwise.
func (c *Config) DevMode() bool { return !c.Cluster.Enabled() }

// HubNodes returns the ids of the nodes that hold the named hub's buffers,
// in config order: the hub's Nodes, every peer when it names none, or just
// Node.ID in dev mode. It returns nil for a hub that is not configured. The
// slice is the caller's.
func (c *Config) HubNodes(hub string) []string {
	for i := range c.Hubs {
		if c.Hubs[i].Name == hub {
			return c.hubNodes(&c.Hubs[i])
		}
	}
	return nil
}

func (c *Config) hubNodes(h *Hub) []string {
	switch {
	case c.DevMode():
		return []string{c.Node.ID}
	case len(h.Nodes) > 0:
		return slices.Clone(h.Nodes)
	}
	return c.peerIDs()
}

// peerIDs returns the ids of Cluster.Peers, in order.
func (c *Config) peerIDs() []string {
	ids := make([]string, len(c.Cluster.Peers))
	for i, p := range c.Cluster.Peers {
		ids[i] = p.ID
	}
	return ids
}

// Registry returns the jurisdiction registry built from Jurisdictions and
// Groups by the last successful Validate, or nil if Validate has not
// succeeded.
func (c *Config) Registry() *jurisdiction.Registry { return c.registry }

// Source returns where the value of key (a YAML path such as
// "node.data_dir" or "hubs[0].name") came from: "sense.yaml line 3",
// "env SENSE_DATA", "flag --data"; empty for a default or a value set in Go.
func (c *Config) Source(key string) string { return c.sources[key] }

// Bool returns a pointer to b, for the *bool fields.
func Bool(b bool) *bool { return &b }

// Default returns the validated zero Config: dev mode with every default.
func Default() *Config {
	c := new(Config)
	if err := c.Validate(); err != nil {
		panic("config: the zero Config does not validate: " + err.Error())
	}
	return c
}
