package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/seglog"
)

// Validate fills defaults and checks every value, returning one FieldError
// per problem joined with errors.Join. On success it builds the jurisdiction
// registry and the hub and pipeline masks. Validate may be called again
// after a change; values it filled in stay.
//
// Defaults that depend on the mode (see DevMode) are taken from
// Cluster.Peers as it is when Validate runs, and so is the default of
// Cluster.Listen: this node's address in Cluster.Peers.
func (c *Config) Validate() error {
	return errors.Join(c.check()...)
}

// check is Validate returning the problems as a list.
func (c *Config) check() []error {
	c.fillDefaults()
	v := &checker{c: c, badHubNodes: make(map[string]bool)}
	v.node()
	v.listeners()
	reg := v.registry()
	v.hubs(reg)
	v.pipelines(reg)
	v.durability()
	v.storage()
	v.router()
	v.alerts()
	v.kafka()
	v.http()
	v.tls()
	v.security()
	v.log()
	v.cluster()
	v.clusterTLS()
	v.processors()
	if len(v.errs) == 0 {
		c.registry = reg
	} else {
		c.registry = nil
	}
	return v.errs
}

func (c *Config) fillDefaults() {
	dev := c.DevMode()
	setDefault(&c.Node.ID, DefaultNodeID)
	setDefault(&c.Node.DataDir, DefaultDataDir)
	setDefault(&c.Listeners.Native, DefaultNativeAddr)
	setDefault(&c.Listeners.HTTP, DefaultHTTPAddr)
	setDefault(&c.Listeners.Kafka, DefaultKafkaAddr)
	setDefault(&c.Listeners.QUIC, DefaultQUICAddr)
	if c.Cluster.Listen == "" {
		if self, ok := c.self(); ok {
			c.Cluster.Listen = self.Addr
		}
	}
	if len(c.Jurisdictions) == 0 {
		c.Jurisdictions = []string{DefaultJurisdiction}
	}
	if len(c.Hubs) == 0 && dev {
		c.Hubs = []Hub{{Name: DefaultHubName, Jurisdiction: jurisdiction.Wildcard}}
	}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if p.Partitions == 0 {
			p.Partitions = 1
		}
		setDefault(&p.DefaultJurisdiction, jurisdiction.Wildcard)
	}
	if c.Durability.SegmentBytes == 0 {
		c.Durability.SegmentBytes = DefaultSegmentBytes
	}
	if c.Storage.PreallocateBytes == nil {
		p := DefaultPreallocateBytes
		c.Storage.PreallocateBytes = &p
	}
	if c.Router.MemoryLimit == 0 {
		c.Router.MemoryLimit = DefaultMemoryLimit
	}
	if c.Router.AutoCreatePipelines == nil {
		c.Router.AutoCreatePipelines = Bool(dev)
	}
	if c.Router.MaxEventBytes == 0 {
		c.Router.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.Router.ShedLowAt == 0 {
		c.Router.ShedLowAt = DefaultShedLowAt
	}
	if c.Router.ShedMediumAt == 0 {
		c.Router.ShedMediumAt = DefaultShedMediumAt
	}
	if c.Router.TargetDelay == 0 {
		c.Router.TargetDelay = DefaultTargetDelay
	}
	if c.Router.DelayInterval == 0 {
		c.Router.DelayInterval = DefaultDelayInterval
	}
	if c.Kafka.AutoCreateTopics == nil {
		c.Kafka.AutoCreateTopics = Bool(dev)
	}
	if c.Kafka.MaxRequestBytes == 0 {
		c.Kafka.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.Kafka.GroupInitialRebalanceDelay == nil {
		d := DefaultGroupInitialRebalanceDelay
		c.Kafka.GroupInitialRebalanceDelay = &d
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = DefaultHTTPMaxBodyBytes
	}
	if c.HTTP.MaxEventsPerRequest == 0 {
		c.HTTP.MaxEventsPerRequest = DefaultHTTPMaxEventsPerRequest
	}
	if c.TLS.HandshakeTimeout == 0 {
		c.TLS.HandshakeTimeout = DefaultHandshakeTimeout
	}
}

// self returns this node's entry in Cluster.Peers, the first whose ID is
// Node.ID.
func (c *Config) self() (Peer, bool) {
	for _, p := range c.Cluster.Peers {
		if p.ID == c.Node.ID {
			return p, true
		}
	}
	return Peer{}, false
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// checker collects the problems of one Validate.
type checker struct {
	c           *Config
	errs        []error
	badHubNodes map[string]bool // "hubs[i].nodes" keys found wrong
}

// fail records a problem with key; format is phrased to follow the key and
// value ("is not ...; do this").
func (v *checker) fail(key, value, format string, args ...any) {
	v.failErr(key, value, hint(fmt.Sprintf(format, args...)))
}

func (v *checker) failErr(key, value string, err error) {
	v.errs = append(v.errs, &FieldError{Key: key, Value: value, Source: v.c.sourceOf(key), Err: err})
}

// sourceOf returns where key's value came from or, for a key that was not
// given, where its nearest enclosing mapping or list was: a missing
// hubs[0].name is reported at the line of hubs[0].
func (c *Config) sourceOf(key string) string {
	for key != "" {
		if s, ok := c.sources[key]; ok {
			return s
		}
		key = key[:max(strings.LastIndexByte(key, '.'), strings.LastIndexByte(key, '['), 0)]
	}
	return ""
}

func (v *checker) node() {
	n := v.c.Node
	if !validName(n.ID, true) {
		v.fail("node.id", n.ID, "is not a valid node id; use 1 to %d of a-z, 0-9, '.', '_', '-' (not . or ..)", maxNameLen)
	}
	if strings.IndexByte(n.DataDir, 0) >= 0 {
		v.fail("node.data_dir", n.DataDir, "contains a NUL byte; give a directory path")
	}
}

// validName reports whether s is 1 to maxNameLen of a-z, 0-9, '_', '-',
// and, when dots is set, '.' (but not "." or "..").
func validName(s string, dots bool) bool {
	if s == "" || len(s) > maxNameLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || dots && c == '.') {
			return false
		}
	}
	return true
}

func (v *checker) listeners() {
	l := v.c.Listeners
	tcp := []struct{ name, addr string }{{"native", l.Native}, {"http", l.HTTP}, {"kafka", l.Kafka}}
	for i, t := range tcp {
		key := "listeners." + t.name
		if !v.listenAddr(key, t.addr) || t.addr == ListenerOff {
			continue
		}
		for _, prev := range tcp[:i] {
			if prev.addr != ListenerOff && samePort(prev.addr, t.addr) {
				v.fail(key, t.addr, "uses the TCP port of listeners.%s (%s); pick another port", prev.name, prev.addr)
				break
			}
		}
	}
	v.listenAddr("listeners.quic", l.QUIC)
	if a := l.KafkaAdvertised; a != "" {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "0" || !validPort(port) {
			v.fail("listeners.kafka_advertised", a, "is not an address Kafka clients can connect to; give a host and a non-zero port such as broker1.example.com:9092, or leave it empty to advertise listeners.kafka")
		}
	}
}

// listenAddr checks a listen address and reports whether it is well formed.
func (v *checker) listenAddr(key, addr string) bool {
	if addr == ListenerOff {
		return true
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(key, addr, "is not a host:port address; write it as 127.0.0.1:7070, [::1]:7070, :7070 (every interface), or off")
		return false
	}
	if !validPort(port) {
		v.fail(key, addr, "has port %q; use a number from 0 (any free port) to 65535", port)
		return false
	}
	return true
}

func validPort(p string) bool {
	_, err := strconv.ParseUint(p, 10, 16)
	return err == nil && allDigits(p)
}

// samePort reports whether two well-formed TCP listen addresses would
// collide: the same non-zero port on the same host, or on any host when
// either binds every interface.
func samePort(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na == 0 || na != nb {
		return false
	}
	return ha == hb || anyHost(ha) || anyHost(hb)
}

func anyHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }

// registry checks Jurisdictions and Groups and builds the registry, or
// returns nil after recording why it cannot.
func (v *checker) registry() *jurisdiction.Registry {
	c := v.c
	before := len(v.errs)
	if len(c.Jurisdictions) > jurisdiction.MaxCodes {
		v.fail("jurisdictions", "", "lists %d codes, but at most %d fit in a mask; remove %d",
			len(c.Jurisdictions), jurisdiction.MaxCodes, len(c.Jurisdictions)-jurisdiction.MaxCodes)
	}
	first := make(map[string]int, len(c.Jurisdictions))
	for i, code := range c.Jurisdictions {
		key := fmt.Sprintf("jurisdictions[%d]", i)
		switch j, dup := first[code]; {
		case code == "":
			v.fail(key, "", "is empty; write an ISO 3166-1 alpha-2 code such as MA")
		case !isCode(code):
			v.fail(key, code, "is not an ISO 3166-1 alpha-2 code; write two upper-case letters such as MA")
		case dup:
			v.fail(key, code, "is also jurisdictions[%d]; remove one (each code owns one bit)", j)
		default:
			first[code] = i
		}
	}
	var valid []string
	for i, code := range c.Jurisdictions {
		if first[code] == i && isCode(code) {
			valid = append(valid, code)
		}
	}
	registered := orNone(valid)
	names := make(map[string]string, len(c.Groups))
	for _, name := range sortedKeys(c.Groups) {
		key := "groups." + name
		upper := strings.ToUpper(name)
		_, isRegistered := first[upper]
		switch prev, dup := names[upper]; {
		case !validGroupName(name):
			v.fail(key, "", "is not a valid group name; use 1 to %d ASCII letters, digits, '_' or '-'", maxNameLen)
		case isRegistered:
			v.fail(key, "", "is also a registered jurisdiction code; rename the group")
		case dup:
			v.fail(key, "", "is the same name as groups.%s (group names ignore case); merge or rename them", prev)
		}
		names[upper] = name
		members := c.Groups[name]
		if len(members) == 0 {
			v.fail(key, "", "has no members; list its codes, such as [SN, NG], or remove the group")
		}
		for j, m := range members {
			if _, ok := first[strings.ToUpper(m)]; !ok {
				v.fail(fmt.Sprintf("%s[%d]", key, j), m, "is not a registered jurisdiction (registered: %s); add it to jurisdictions or remove it from the group", registered)
			}
		}
	}
	if len(v.errs) > before {
		return nil
	}
	reg, err := jurisdiction.New(c.Jurisdictions, c.Groups)
	if err != nil {
		// Every rule of New is checked above; this catches one added later.
		v.failErr("jurisdictions", "", hintWrap("and groups do not form a registry: "+err.Error(), err))
		return nil
	}
	return reg
}

func isCode(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

func validGroupName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (v *checker) hubs(reg *jurisdiction.Registry) {
	c := v.c
	if len(c.Hubs) == 0 {
		v.fail("hubs", "", "is empty; with cluster peers there is no default hub, so declare at least one")
		return
	}
	first := make(map[string]int, len(c.Hubs))
	for i := range c.Hubs {
		h := &c.Hubs[i]
		key := fmt.Sprintf("hubs[%d]", i)
		if j, dup := first[h.Name]; dup {
			v.fail(key+".name", h.Name, "is also the name of hubs[%d]; hub names must be unique", j)
		} else if !validName(h.Name, false) {
			if h.Name == "" {
				v.fail(key+".name", "", "is empty; name the hub with 1 to %d of a-z, 0-9, '_', '-'", maxNameLen)
			} else {
				v.fail(key+".name", h.Name, "is not a valid hub name; use 1 to %d of a-z, 0-9, '_', '-'", maxNameLen)
			}
		} else {
			first[h.Name] = i
		}
		if reg != nil {
			h.mask = v.hubMask(key+".jurisdiction", h.Jurisdiction, reg)
		}
		v.hubNodes(key+".nodes", h.Nodes)
		if !h.Status.valid() {
			v.fail(key+".status", h.Status.String(), "is not a hub status; use up, draining or down")
		}
		for j, p := range h.Policy.DenyPipelines {
			if err := event.ValidatePipelineName(p); err != nil {
				v.failErr(fmt.Sprintf("%s.policy.deny_pipelines[%d]", key, j), p, pipelineNameErr(err))
			}
		}
	}
}

// hubNodes checks a hub's nodes: none in dev mode, else configured peers,
// each once. A hub whose nodes are bad is left out of the replication
// checks, which would only repeat the problem.
func (v *checker) hubNodes(key string, nodes []string) {
	c := v.c
	if len(nodes) == 0 {
		return
	}
	if c.DevMode() {
		v.fail(key, "["+strings.Join(nodes, ", ")+"]", "needs a cluster section: without cluster.peers this process is the only node and holds every hub; remove nodes, or list the cluster's nodes in cluster.peers")
		v.badHubNodes[key] = true
		return
	}
	peers := c.peerIDs()
	first := make(map[string]int, len(nodes))
	for j, n := range nodes {
		k := fmt.Sprintf("%s[%d]", key, j)
		switch prev, dup := first[n]; {
		case !slices.Contains(peers, n):
			v.fail(k, n, "is not among cluster.peers (%s); add the node to cluster.peers or remove it from the hub", strings.Join(peers, ", "))
		case dup:
			v.fail(k, n, "is also %s[%d]; list each node once", key, prev)
		default:
			first[n] = j
			continue
		}
		v.badHubNodes[key] = true
	}
}

func (v *checker) hubMask(key, j string, reg *jurisdiction.Registry) jurisdiction.Mask {
	if j == jurisdiction.Wildcard {
		return reg.All()
	}
	if bit, ok := reg.Bit(j); ok {
		return 1 << uint(bit)
	}
	switch _, group := reg.Group(j); {
	case j == "":
		v.fail(key, "", "is empty; give one registered code (registered: %s) or * for all", strings.Join(reg.Codes(), ", "))
	case group:
		v.fail(key, j, "is a group, but a hub sits in exactly one jurisdiction; give one registered code or *")
	default:
		v.fail(key, j, "is not a registered jurisdiction (registered: %s); add it to jurisdictions or fix the hub", strings.Join(reg.Codes(), ", "))
	}
	return 0
}

func pipelineNameErr(err error) error {
	return hintWrap(fmt.Sprintf("is not a valid pipeline name; use 1 to %d of a-z, A-Z, 0-9, '.', '_', '-' (not . or ..)", event.MaxPipelineLen), err)
}

func (v *checker) pipelines(reg *jurisdiction.Registry) {
	c := v.c
	first := make(map[string]int, len(c.Pipelines))
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		key := fmt.Sprintf("pipelines[%d]", i)
		folded := strings.ToLower(p.Name)
		if err := event.ValidatePipelineName(p.Name); err != nil {
			v.failErr(key+".name", p.Name, pipelineNameErr(err))
		} else if j, dup := first[folded]; dup {
			v.fail(key+".name", p.Name, "is already declared as pipelines[%d] %q (names are compared without regard to case); remove or rename one", j, c.Pipelines[j].Name)
		} else {
			first[folded] = i
		}
		if p.Partitions < 1 || p.Partitions > MaxPartitions {
			v.fail(key+".partitions", strconv.Itoa(p.Partitions), "is out of range; use 1 to %d", MaxPartitions)
		}
		v.replication(key+".replication", p)
		if p.Retention < 0 {
			v.fail(key+".retention", p.Retention.String(), "is negative; use a duration such as 24h or 7d, or 0 to keep events forever")
		}
		if p.RetentionBytes < 0 {
			v.fail(key+".retention_bytes", p.RetentionBytes.String(), "is negative; use a size such as 10GiB, or 0 for no limit")
		}
		switch strings.ReplaceAll(p.CleanupPolicy, " ", "") {
		case "", "delete", "compact", "compact,delete", "delete,compact":
		default:
			v.fail(key+".cleanup_policy", p.CleanupPolicy, "is not a cleanup policy; use delete, compact or compact,delete")
		}
		if p.DeleteRetention < 0 {
			v.fail(key+".delete_retention", p.DeleteRetention.String(), "is negative; use a duration such as 24h (0 is 24h)")
		}
		if p.MinCompactionLag < 0 {
			v.fail(key+".min_compaction_lag", p.MinCompactionLag.String(), "is negative; use a duration such as 1h, or 0")
		}
		if p.MinCleanableDirtyRatio < 0 || p.MinCleanableDirtyRatio > 1 {
			v.fail(key+".min_cleanable_dirty_ratio", strconv.FormatFloat(p.MinCleanableDirtyRatio, 'g', -1, 64), "is out of range; use a number above 0, at most 1 (0 is 0.5)")
		}
		if !p.DefaultPriority.Valid() {
			v.fail(key+".default_priority", p.DefaultPriority.String(), "is not a priority class; use low, medium or critical")
		}
		if reg != nil {
			m, err := reg.Parse(p.DefaultJurisdiction)
			if err != nil {
				v.failErr(key+".default_jurisdiction", p.DefaultJurisdiction, hintWrap(fmt.Sprintf(
					"is not a jurisdiction set; use registered codes (%s), a group (%s) or *, separated by commas",
					strings.Join(reg.Codes(), ", "), orNone(reg.Groups())), err))
			}
			p.defaultMask = m
		}
	}
}

// replication checks a pipeline's replication against the mode and, when
// it is given, against the nodes of every hub: a declared pipeline has
// partitions in every hub, whatever the hub's status or policy.
func (v *checker) replication(key string, p *Pipeline) {
	c := v.c
	r := p.Replication
	switch {
	case r == 0:
		return
	case r < 0 || r > MaxReplication:
		v.fail(key, strconv.Itoa(r), "is out of range; use 0 (the default: %d, or every node of a smaller hub) or 1 to %d, odd numbers preferred", DefaultReplication, MaxReplication)
		return
	case c.DevMode() && r > 1:
		v.fail(key, strconv.Itoa(r), "needs a cluster: without cluster.peers this process is the only node; use 0 or 1, or list the cluster's nodes in cluster.peers")
		return
	}
	var short []string // "hub dakar's 2 nodes (n1, n2)"
	for i := range c.Hubs {
		h := &c.Hubs[i]
		if v.badHubNodes[fmt.Sprintf("hubs[%d].nodes", i)] {
			continue
		}
		if nodes := c.hubNodes(h); len(nodes) < r {
			noun := "nodes"
			if len(nodes) == 1 {
				noun = "node"
			}
			short = append(short, fmt.Sprintf("hub %s's %d %s (%s)", h.Name, len(nodes), noun, strings.Join(nodes, ", ")))
		}
	}
	switch len(short) {
	case 0:
	case 1:
		v.fail(key, strconv.Itoa(r), "is more than %s; pipeline %s has partitions in every hub, so lower the replication or add nodes to the hub", short[0], p.Name)
	default:
		v.fail(key, strconv.Itoa(r), "is more than %s and %s; pipeline %s has partitions in every hub, so lower the replication or add nodes to those hubs",
			strings.Join(short[:len(short)-1], ", "), short[len(short)-1], p.Name)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none defined"
	}
	return strings.Join(s, ", ")
}

func (v *checker) durability() {
	d := v.c.Durability
	switch d.Fsync.Mode {
	case seglog.SyncAlways, seglog.SyncNever:
	case seglog.SyncInterval:
		if d.Fsync.Interval <= 0 {
			v.fail("durability.fsync", d.Fsync.String(), "has a non-positive interval; use interval:<duration> such as interval:10ms")
		}
	default:
		v.fail("durability.fsync", fmt.Sprintf("mode %d", d.Fsync.Mode), "is not an fsync policy; use always, interval:<duration> or never")
	}
	if d.SegmentBytes < seglog.MinSegmentBytes || d.SegmentBytes > seglog.MaxSegmentBytes {
		v.fail("durability.segment_bytes", d.SegmentBytes.String(), "is out of range; use %v to %v", Size(seglog.MinSegmentBytes), Size(seglog.MaxSegmentBytes))
	}
	if g := d.GroupCommitInterval; g != nil && (*g < 0 || time.Duration(*g) > seglog.MaxGroupCommitInterval) {
		v.fail("durability.group_commit_interval", g.String(), "is out of range; use 0 (fdatasyncs back to back) to %v, such as 500us", seglog.MaxGroupCommitInterval)
	}
}

func (v *checker) storage() {
	if n := v.c.Storage.MaxOpenFiles; n != 0 && n < MinOpenFiles {
		v.fail("storage.max_open_files", strconv.Itoa(n), "is too small; use 0 (half of ulimit -n, at most 4096) or at least %d", MinOpenFiles)
	}
	if p := v.c.Storage.PreallocateBytes; p != nil && (*p < 0 || *p > MaxPreallocateBytes) {
		v.fail("storage.preallocate_bytes", p.String(), "is out of range; use 0 (off) to %v", MaxPreallocateBytes)
	}
}

func (v *checker) router() {
	r := v.c.Router
	if r.MemoryLimit < MinMemoryLimit {
		v.fail("router.memory_limit", r.MemoryLimit.String(), "is below the minimum of %v; use a size such as 256MiB", MinMemoryLimit)
	}
	switch {
	case r.MaxEventBytes < 0:
		v.fail("router.max_event_bytes", r.MaxEventBytes.String(), "is negative; use a size such as 1MiB")
	case r.MaxEventBytes > r.MemoryLimit && r.MemoryLimit >= MinMemoryLimit:
		v.fail("router.max_event_bytes", r.MaxEventBytes.String(), "is larger than router.memory_limit (%v); lower it or raise the limit", r.MemoryLimit)
	}
	if r.DefaultPartitions < 0 || r.DefaultPartitions > 1024 {
		v.fail("router.default_partitions", strconv.Itoa(r.DefaultPartitions), "is out of range; use 0 (one partition per hub and lane) or 1 to 1024")
	}
	if r.TargetDelay < 0 || time.Duration(r.TargetDelay) > time.Minute {
		v.fail("router.target_delay", r.TargetDelay.String(), "is out of range; use a duration from 0 (the default, 5ms) to 1m, such as 5ms")
	}
	if r.DelayInterval < 0 || time.Duration(r.DelayInterval) > time.Hour {
		v.fail("router.delay_interval", r.DelayInterval.String(), "is out of range; use a duration from 0 (the default, 100ms) to 1h, such as 100ms")
	}
	lowOK := v.fraction("router.shed_low_at", r.ShedLowAt)
	if v.fraction("router.shed_medium_at", r.ShedMediumAt) && lowOK && r.ShedMediumAt < r.ShedLowAt {
		v.fail("router.shed_medium_at", formatFloat(r.ShedMediumAt), "is below router.shed_low_at (%s); medium events must be shed after low ones, so raise it", formatFloat(r.ShedLowAt))
	}
}

func (v *checker) fraction(key string, f float64) bool {
	if f > 0 && f <= 1 {
		return true
	}
	v.fail(key, formatFloat(f), "is not a fraction of router.memory_limit; use a number above 0 and at most 1, such as 0.5")
	return false
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (v *checker) alerts() {
	w := v.c.Alerts.Webhook
	if w == "" {
		return
	}
	u, err := url.Parse(w)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.fail("alerts.webhook", w, "is not an http or https URL; write it as https://alerts.example.com/sense, or leave it empty for no webhook")
	}
}

func (v *checker) kafka() {
	k := v.c.Kafka
	if k.MaxRequestBytes < 0 || k.MaxRequestBytes > math.MaxInt32 {
		v.fail("kafka.max_request_bytes", k.MaxRequestBytes.String(), "is out of range; use a size from 1 to %d bytes (Kafka sizes are 32-bit), such as 100MiB", math.MaxInt32)
	}
	if d := k.GroupInitialRebalanceDelay; d != nil && (*d < 0 || time.Duration(*d) > 5*time.Minute) {
		v.fail("kafka.group_initial_rebalance_delay", d.String(), "is out of range; use a duration from 0s to 5m, such as 3s")
	}
	if d := k.TransactionalIDExpiration; d < 0 || d > 0 && time.Duration(d) < time.Minute {
		v.fail("kafka.transactional_id_expiration", d.String(), "is out of range; use a duration of at least 1m, such as 168h (7 days, the default)")
	}
	switch tv := k.TransactionVersion; {
	case tv < 0 || tv > 2:
		v.fail("kafka.transaction_version", strconv.Itoa(tv), "is not a transaction version Sense serves; use 1 (before KIP-890), 2 (KIP-890 part 2), or leave it out for the default, 2")
	}
}

func (v *checker) http() {
	h := v.c.HTTP
	if h.MaxBodyBytes < 0 || h.MaxBodyBytes > MaxHTTPBodyBytes {
		v.fail("http.max_body_bytes", h.MaxBodyBytes.String(), "is out of range; use a size from 1 byte to %v, such as 16MiB", Size(MaxHTTPBodyBytes))
	}
	if h.MaxEventsPerRequest < 0 || h.MaxEventsPerRequest > MaxHTTPEventsPerRequest {
		v.fail("http.max_events_per_request", strconv.Itoa(h.MaxEventsPerRequest), "is out of range; use 1 to %d, such as 10000", MaxHTTPEventsPerRequest)
	}
}

// tls checks every certificate, key and CA file of the listeners: given
// together, readable, holding what they should, so a bad file stops
// start-up with a message naming it rather than failing the first TLS
// handshake. A listener whose TLS is on must have a certificate, and a
// policy that verifies client certificates a CA file.
func (v *checker) tls() {
	t := v.c.TLS
	v.keyPair("tls.cert_file", "tls.key_file", t.CertFile, t.KeyFile)
	v.caFile("tls.client_ca_file", t.ClientCAFile)
	if t.HandshakeTimeout < 0 {
		v.fail("tls.handshake_timeout", t.HandshakeTimeout.String(), "is negative; give a duration such as 10s")
	}
	for _, l := range []struct {
		name string
		lt   ListenerTLS
		addr string
	}{{ListenerHTTP, t.HTTP, v.c.Listeners.HTTP}, {ListenerNative, t.Native, v.c.Listeners.Native}, {ListenerKafka, t.Kafka, v.c.Listeners.Kafka}} {
		key := "tls." + l.name
		v.keyPair(key+".cert_file", key+".key_file", l.lt.CertFile, l.lt.KeyFile)
		v.caFile(key+".client_ca_file", l.lt.ClientCAFile)
		eff := t.Listener(l.name)
		if !eff.Enabled || l.addr == ListenerOff {
			continue
		}
		if eff.CertFile == "" || eff.KeyFile == "" {
			if eff.CertFile != "" || eff.KeyFile != "" {
				continue // half a pair, reported above
			}
			v.fail(key+".enabled", "true", "but the %s listener has no certificate; set tls.cert_file and tls.key_file, or %s.cert_file and %s.key_file", l.name, key, key)
			continue
		}
		if eff.ClientAuth != ClientAuthNone && eff.ClientCAFile == "" {
			k := "tls.client_auth"
			if l.lt.ClientAuth != ClientAuthDefault {
				k = key + ".client_auth"
			}
			v.fail(k, string(eff.ClientAuth), "verifies client certificates, but no CA file is given for the %s listener; set tls.client_ca_file (or %s.client_ca_file) to the CAs that sign your clients' certificates, or use none", l.name, key)
		}
	}
}

// keyPair checks a certificate file and its key file: both or neither,
// readable PEM, and the key of the certificate.
func (v *checker) keyPair(certKey, keyKey, certFile, keyFile string) {
	switch {
	case certFile == "" && keyFile == "":
		return
	case keyFile == "":
		v.fail(keyKey, "", "is empty but %s is set; give the certificate's private key too, or neither", certKey)
		return
	case certFile == "":
		v.fail(certKey, "", "is empty but %s is set; give the certificate too, or neither", keyKey)
		return
	}
	certPEM, certErr := os.ReadFile(certFile)
	if certErr != nil {
		v.failErr(certKey, certFile, hintWrap("cannot be read: "+certErr.Error()+"; give a readable PEM certificate file", certErr))
	} else if !tlsconf.HasPEM(certPEM, "CERTIFICATE") {
		v.fail(certKey, certFile, "holds no PEM CERTIFICATE block; give a PEM certificate file (-----BEGIN CERTIFICATE-----)")
		certErr = errors.New("no certificate")
	}
	keyPEM, keyErr := os.ReadFile(keyFile)
	if keyErr != nil {
		v.failErr(keyKey, keyFile, hintWrap("cannot be read: "+keyErr.Error()+"; give a readable PEM private key file", keyErr))
	} else if !tlsconf.HasPEM(keyPEM, "PRIVATE KEY") {
		v.fail(keyKey, keyFile, "holds no PEM PRIVATE KEY block; give a PEM private key file (-----BEGIN PRIVATE KEY-----)")
		keyErr = errors.New("no key")
	}
	if certErr != nil || keyErr != nil {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		v.failErr(keyKey, keyFile, hintWrap(fmt.Sprintf("does not go with %s %s: %v; give the certificate's own private key", certKey, certFile, err), err))
	}
}

// caFile checks a file of CA certificates, when one is named.
func (v *checker) caFile(key, file string) {
	if file == "" {
		return
	}
	data, err := os.ReadFile(file)
	switch {
	case err != nil:
		v.failErr(key, file, hintWrap("cannot be read: "+err.Error()+"; give a readable PEM file of CA certificates", err))
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		v.fail(key, file, "holds no PEM CERTIFICATE block; give a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)")
	}
}

// clusterTLS checks cluster.tls: the three files together, and this
// node's certificate naming its node.id.
func (v *checker) clusterTLS() {
	t := v.c.Cluster.TLS
	if !t.Enabled() {
		return
	}
	if !v.c.Cluster.Enabled() {
		v.fail("cluster.tls", "", "is set but cluster.peers is empty; list the cluster's nodes in cluster.peers, or remove cluster.tls for dev mode")
		return
	}
	for _, f := range []struct{ key, file string }{{"cluster.tls.cert_file", t.CertFile}, {"cluster.tls.key_file", t.KeyFile}, {"cluster.tls.ca_file", t.CAFile}} {
		if f.file == "" {
			v.fail(f.key, "", "is empty; mutual TLS between nodes needs cluster.tls.cert_file, key_file and ca_file together (or none of them for plain TCP)")
			return
		}
	}
	v.keyPair("cluster.tls.cert_file", "cluster.tls.key_file", t.CertFile, t.KeyFile)
	v.caFile("cluster.tls.ca_file", t.CAFile)
	if cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err == nil && cert.Leaf != nil {
		if !tlsconf.NamesNode(cert.Leaf, v.c.Node.ID) {
			names := strings.Join(tlsconf.NodeIDs(cert.Leaf), ", ")
			if names == "" {
				names = "none"
			}
			v.fail("cluster.tls.cert_file", t.CertFile, "names node(s) %s, not this node %q; its peers would refuse it. Give the node a certificate with the URI SAN %s%s (or a DNS SAN %s)",
				names, v.c.Node.ID, tlsconf.NodeURIPrefix, v.c.Node.ID, v.c.Node.ID)
		}
	}
}

func (v *checker) log() {
	if !v.c.Log.Format.valid() {
		v.fail("log.format", v.c.Log.Format.String(), "is not a log format; use auto, json or text")
	}
}

// cluster checks the peers, this node's place among them and the
// transport's addresses. Without peers (dev mode) the section must be
// empty.
func (v *checker) cluster() {
	c := v.c
	cl := c.Cluster
	if !cl.Enabled() {
		for _, a := range []struct{ key, addr string }{{"cluster.listen", cl.Listen}, {"cluster.advertise", cl.Advertise}} {
			if a.addr != "" {
				v.fail(a.key, a.addr, "is set but cluster.peers is empty; list the cluster's nodes, this one included, in cluster.peers, or remove %s for dev mode", a.key)
			}
		}
		return
	}
	idsOK := true
	ids := make(map[string]int, len(cl.Peers))
	addrs := make(map[string]int, len(cl.Peers))
	for i, p := range cl.Peers {
		key := fmt.Sprintf("cluster.peers[%d]", i)
		switch j, dup := ids[p.ID]; {
		case p.ID == "":
			v.fail(key+".id", "", "is empty; give the peer's node.id: 1 to %d of a-z, 0-9, '.', '_', '-'", maxNameLen)
			idsOK = false
		case !validName(p.ID, true):
			v.fail(key+".id", p.ID, "is not a valid node id; use 1 to %d of a-z, 0-9, '.', '_', '-' (not . or ..)", maxNameLen)
			idsOK = false
		case dup:
			v.fail(key+".id", p.ID, "is also the id of cluster.peers[%d]; peer ids must be unique", j)
		default:
			ids[p.ID] = i
		}
		host, port, err := net.SplitHostPort(p.Addr)
		switch j, dup := addrs[p.Addr]; {
		case p.Addr == "":
			v.fail(key+".addr", "", "is empty; give the host:port the other nodes reach this peer at, such as 10.0.0.2:7100")
		case err != nil || anyHost(host) || !validPort(port) || port == "0":
			v.fail(key+".addr", p.Addr, "is not an address peers can connect to; write host:port with a host and a non-zero port, such as 10.0.0.2:7100")
		case dup:
			v.fail(key+".addr", p.Addr, "is also the address of cluster.peers[%d] (%s); give each peer its own address", j, cl.Peers[j].ID)
		default:
			addrs[p.Addr] = i
		}
	}
	seen := map[string]bool{}
	for i, id := range cl.MetadataVoters {
		key := fmt.Sprintf("cluster.metadata_voters[%d]", i)
		switch _, ok := ids[id]; {
		case !ok:
			v.fail(key, id, "is not among cluster.peers (%s); name peers' ids", strings.Join(c.peerIDs(), ", "))
		case seen[id]:
			v.fail(key, id, "is named twice; name each voter once")
		}
		seen[id] = true
	}
	if n := len(cl.MetadataVoters); n > 0 && n%2 == 0 {
		v.fail("cluster.metadata_voters", strings.Join(cl.MetadataVoters, ", "), "names %d nodes; name an odd number (3 or 5): an even one tolerates no more failures than one fewer", n)
	}
	if _, ok := ids[c.Node.ID]; !ok && idsOK && validName(c.Node.ID, true) {
		v.fail("node.id", c.Node.ID, "is not among cluster.peers (%s); set node.id to this node's id in cluster.peers, or add this node to cluster.peers", strings.Join(c.peerIDs(), ", "))
	}
	// An empty listen address is filled in from this node's peer entry, so
	// it stays empty only when that entry is missing or has no address,
	// which is reported above.
	if cl.Listen != "" {
		v.clusterListen(cl.Listen)
	}
	if a := cl.Advertise; a != "" {
		host, port, err := net.SplitHostPort(a)
		if err != nil || anyHost(host) || !validPort(port) || port == "0" {
			v.fail("cluster.advertise", a, "is not an address peers can connect to; give a host and a non-zero port such as node1.example.com:7100, or leave it empty to advertise cluster.listen")
		}
	}
}

// clusterListen checks the cluster transport's listen address: host:port
// with a fixed port, since peers dial the port in cluster.peers, and not
// the TCP port of an edge listener.
func (v *checker) clusterListen(addr string) {
	_, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		v.fail("cluster.listen", addr, "is not a host:port address; write it as 10.0.0.1:7100, [::1]:7100 or :7100 (every interface)")
		return
	case !validPort(port) || port == "0":
		v.fail("cluster.listen", addr, "has port %q; use a number from 1 to 65535: peers dial a fixed port, the one in this node's cluster.peers entry", port)
		return
	}
	l := v.c.Listeners
	for _, t := range []struct{ name, addr string }{{"native", l.Native}, {"http", l.HTTP}, {"kafka", l.Kafka}} {
		if _, p, err := net.SplitHostPort(t.addr); err == nil && validPort(p) && samePort(addr, t.addr) {
			v.fail("cluster.listen", addr, "uses the TCP port of listeners.%s (%s); give the cluster transport a port of its own, in cluster.listen or this node's cluster.peers entry", t.name, t.addr)
			return
		}
	}
}
