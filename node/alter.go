package node

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/seglog"
)

// Run-time settings. Five fields of a pipeline's spec may change while it
// serves: Retention, RetentionBytes, DefaultJurisdiction, DefaultPriority
// and MaxMessageBytes. Its layout (Partitions, Slots, Hubs) may not: partition
// numbers and the buffers behind them follow from it (AddPartitions grows
// a pipeline instead). A pipeline of the config file takes its settings
// from the file, at every start: it is changed there, not here.
//
// Alone, a node applies a change at once: one catalog record, then a new
// routing table whose routes of the pipeline resolve the new defaults, and
// the new limits handed to its open buffers (RetentionSetter). In a
// cluster the change goes through the metadata log (Proposer), and every
// node applies it in log order with ApplyAlterPipeline.

// PipelineChange is a change of a pipeline's run-time settings: a nil field
// stays as it is. A zero Retention or RetentionBytes is no limit; an empty
// DefaultJurisdiction or DefaultPriority is the default ("*", "low"). It is
// carried as JSON in a cluster's metadata log.
type PipelineChange struct {
	Retention           *time.Duration `json:"retention,omitempty"`
	RetentionBytes      *int64         `json:"retention_bytes,omitempty"`
	DefaultJurisdiction *string        `json:"default_jurisdiction,omitempty"`
	DefaultPriority     *string        `json:"default_priority,omitempty"`
	// MaxMessageBytes: 0 is the node's event limit.
	MaxMessageBytes *int64 `json:"max_message_bytes,omitempty"`
	// The compaction settings (PipelineSpec's); an empty CleanupPolicy is
	// delete, a zero DeleteRetention or MinCleanableDirtyRatio the default.
	CleanupPolicy          *string        `json:"cleanup_policy,omitempty"`
	DeleteRetention        *time.Duration `json:"delete_retention,omitempty"`
	MinCompactionLag       *time.Duration `json:"min_compaction_lag,omitempty"`
	MinCleanableDirtyRatio *float64       `json:"min_cleanable_dirty_ratio,omitempty"`
}

// compactionChanged reports whether c changes a compaction setting.
func (c PipelineChange) compactionChanged() bool {
	return c.CleanupPolicy != nil || c.DeleteRetention != nil || c.MinCompactionLag != nil || c.MinCleanableDirtyRatio != nil
}

// Empty reports whether c changes nothing.
func (c PipelineChange) Empty() bool {
	return c.Retention == nil && c.RetentionBytes == nil && c.DefaultJurisdiction == nil && c.DefaultPriority == nil && c.MaxMessageBytes == nil &&
		!c.compactionChanged()
}

// Then returns the change c then next make: next's settings where it has
// them, c's elsewhere.
func (c PipelineChange) Then(next PipelineChange) PipelineChange {
	if next.Retention != nil {
		c.Retention = next.Retention
	}
	if next.RetentionBytes != nil {
		c.RetentionBytes = next.RetentionBytes
	}
	if next.DefaultJurisdiction != nil {
		c.DefaultJurisdiction = next.DefaultJurisdiction
	}
	if next.DefaultPriority != nil {
		c.DefaultPriority = next.DefaultPriority
	}
	if next.MaxMessageBytes != nil {
		c.MaxMessageBytes = next.MaxMessageBytes
	}
	if next.CleanupPolicy != nil {
		c.CleanupPolicy = next.CleanupPolicy
	}
	if next.DeleteRetention != nil {
		c.DeleteRetention = next.DeleteRetention
	}
	if next.MinCompactionLag != nil {
		c.MinCompactionLag = next.MinCompactionLag
	}
	if next.MinCleanableDirtyRatio != nil {
		c.MinCleanableDirtyRatio = next.MinCleanableDirtyRatio
	}
	return c
}

// String lists the settings c changes, for logs.
func (c PipelineChange) String() string {
	var parts []string
	if c.Retention != nil {
		parts = append(parts, "retention="+c.Retention.String())
	}
	if c.RetentionBytes != nil {
		parts = append(parts, fmt.Sprintf("retention_bytes=%d", *c.RetentionBytes))
	}
	if c.DefaultJurisdiction != nil {
		parts = append(parts, "default_jurisdiction="+*c.DefaultJurisdiction)
	}
	if c.DefaultPriority != nil {
		parts = append(parts, "default_priority="+*c.DefaultPriority)
	}
	if c.MaxMessageBytes != nil {
		parts = append(parts, fmt.Sprintf("max_message_bytes=%d", *c.MaxMessageBytes))
	}
	if c.CleanupPolicy != nil {
		parts = append(parts, "cleanup_policy="+orDelete(*c.CleanupPolicy))
	}
	if c.DeleteRetention != nil {
		parts = append(parts, "delete_retention="+c.DeleteRetention.String())
	}
	if c.MinCompactionLag != nil {
		parts = append(parts, "min_compaction_lag="+c.MinCompactionLag.String())
	}
	if c.MinCleanableDirtyRatio != nil {
		parts = append(parts, fmt.Sprintf("min_cleanable_dirty_ratio=%g", *c.MinCleanableDirtyRatio))
	}
	return strings.Join(parts, " ")
}

// RetentionSetter is implemented by a Buffer whose retention limits can
// change while it is open (a single node's seglog.Log). Any other Buffer
// keeps the limits it was opened with until it is opened again; a
// replicated buffer enforces none yet.
type RetentionSetter interface {
	SetRetention(age time.Duration, bytes int64) error
}

// checkChange checks c's values, and returns it with its jurisdiction and
// priority in the spelling the catalog keeps.
func (n *Node) checkChange(name string, c PipelineChange) (PipelineChange, error) {
	if c.Retention != nil && *c.Retention < 0 {
		return c, fmt.Errorf("%w: pipeline %q: retention %v is negative; give a duration such as 24h, or 0 to keep events forever", ErrInvalidSpec, name, *c.Retention)
	}
	if c.RetentionBytes != nil && *c.RetentionBytes < 0 {
		return c, fmt.Errorf("%w: pipeline %q: retention bytes %d is negative; give a size in bytes, or 0 for no limit", ErrInvalidSpec, name, *c.RetentionBytes)
	}
	if c.MaxMessageBytes != nil {
		if err := CheckMaxMessageBytes(*c.MaxMessageBytes); err != nil {
			return c, fmt.Errorf("%w: pipeline %q: %w", ErrInvalidSpec, name, err)
		}
	}
	if c.compactionChanged() {
		var s PipelineSpec
		if c.CleanupPolicy != nil {
			v, err := ParseCleanupPolicy(*c.CleanupPolicy)
			if err != nil {
				return c, fmt.Errorf("%w: pipeline %q: %w", ErrInvalidSpec, name, err)
			}
			c.CleanupPolicy = &v
		}
		if err := checkCompaction(c.apply(s)); err != nil {
			return c, fmt.Errorf("%w: pipeline %q: %w", ErrInvalidSpec, name, err)
		}
	}
	if c.DefaultJurisdiction != nil {
		v := *c.DefaultJurisdiction
		if v == "" {
			v = "*"
		}
		if _, err := n.reg.Parse(v); err != nil {
			return c, fmt.Errorf("%w: pipeline %q: default jurisdiction %q: %w; give jurisdiction codes or groups of the registry (e.g. MA,SN), or * for anywhere", ErrInvalidSpec, name, v, err)
		}
		c.DefaultJurisdiction = &v
	}
	if c.DefaultPriority != nil {
		v := *c.DefaultPriority
		if v == "" {
			v = event.Low.String()
		}
		p, err := event.ParsePriority(v)
		if err != nil {
			return c, fmt.Errorf("%w: pipeline %q: default priority: %w", ErrInvalidSpec, name, err)
		}
		v = p.String()
		c.DefaultPriority = &v
	}
	return c, nil
}

// apply returns spec with c's settings (c checked by checkChange).
func (c PipelineChange) apply(spec PipelineSpec) PipelineSpec {
	if c.Retention != nil {
		spec.Retention = *c.Retention
	}
	if c.RetentionBytes != nil {
		spec.RetentionBytes = *c.RetentionBytes
	}
	if c.DefaultJurisdiction != nil {
		spec.DefaultJurisdiction = *c.DefaultJurisdiction
	}
	if c.DefaultPriority != nil {
		spec.DefaultPriority = *c.DefaultPriority
	}
	if c.MaxMessageBytes != nil {
		spec.MaxMessageBytes = *c.MaxMessageBytes
	}
	if c.CleanupPolicy != nil {
		spec.CleanupPolicy = *c.CleanupPolicy
	}
	if c.DeleteRetention != nil {
		spec.DeleteRetention = *c.DeleteRetention
	}
	if c.MinCompactionLag != nil {
		spec.MinCompactionLag = *c.MinCompactionLag
	}
	if c.MinCleanableDirtyRatio != nil {
		spec.MinCleanableDirtyRatio = *c.MinCleanableDirtyRatio
	}
	return spec
}

// Cleanup policies (PipelineSpec.CleanupPolicy), as Kafka spells them.
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// ParseCleanupPolicy returns a cleanup policy in the spelling the catalog
// keeps: "" for delete (the default), "compact" or "compact,delete" (in
// either order, as Kafka takes the list).
func ParseCleanupPolicy(v string) (string, error) {
	switch strings.ReplaceAll(strings.TrimSpace(v), " ", "") {
	case "", CleanupDelete:
		return "", nil
	case CleanupCompact:
		return CleanupCompact, nil
	case CleanupCompactDelete, "delete,compact":
		return CleanupCompactDelete, nil
	}
	return "", fmt.Errorf("cleanup policy %q is not one of delete, compact, compact,delete", v)
}

func orDelete(v string) string {
	if v == "" {
		return CleanupDelete
	}
	return v
}

// checkCompaction checks the compaction settings of spec.
func checkCompaction(spec PipelineSpec) error {
	if _, err := ParseCleanupPolicy(spec.CleanupPolicy); err != nil {
		return err
	}
	switch {
	case spec.DeleteRetention < 0:
		return fmt.Errorf("delete retention %v is negative; give a duration such as 24h (0 is the default, 24h)", spec.DeleteRetention)
	case spec.MinCompactionLag < 0:
		return fmt.Errorf("min compaction lag %v is negative; give a duration such as 1h, or 0", spec.MinCompactionLag)
	case spec.MinCleanableDirtyRatio < 0 || spec.MinCleanableDirtyRatio > 1:
		return fmt.Errorf("min cleanable dirty ratio %g is outside [0, 1]; 0 is the default, 0.5", spec.MinCleanableDirtyRatio)
	}
	return nil
}

// Compacted reports whether the pipeline's buffers are compacted.
func (p PipelineSpec) Compacted() bool { return strings.HasPrefix(p.CleanupPolicy, CleanupCompact) }

// BufferRetention is the retention the pipeline's buffers enforce: none
// under cleanup policy compact alone (Kafka deletes nothing by age or
// size then), its retention limits otherwise.
func (p PipelineSpec) BufferRetention() (age time.Duration, bytes int64) {
	if p.CleanupPolicy == CleanupCompact {
		return 0, 0
	}
	return p.Retention, p.RetentionBytes
}

// CompactPolicy is the compaction policy of the pipeline's buffers.
func (p PipelineSpec) CompactPolicy() seglog.CompactPolicy {
	cp := seglog.CompactPolicy{Enabled: p.Compacted(), TombstoneAge: p.DeleteRetention,
		MinLag: p.MinCompactionLag, DirtyRatio: p.MinCleanableDirtyRatio}
	_ = cp.Validate() // fills the defaults; the values were checked
	return cp
}

// CompactionSetter is implemented by a Buffer whose compaction policy can
// change while it is open (a single node's seglog.Log, a replicated
// buffer).
type CompactionSetter interface {
	SetCompaction(p seglog.CompactPolicy) error
}

// MaxMessageBytesLimit bounds a pipeline's MaxMessageBytes: a batch is
// checked whole in memory, and never larger than a segment's default.
const MaxMessageBytesLimit = 64 << 20

// CheckMaxMessageBytes checks a pipeline's MaxMessageBytes (0: the node's
// event limit).
func CheckMaxMessageBytes(v int64) error {
	if v < 0 || v > MaxMessageBytesLimit {
		return fmt.Errorf("max message bytes %d is out of range; give 1 to %d bytes, or 0 for the node's event limit (router.max_event_bytes)", v, MaxMessageBytesLimit)
	}
	return nil
}

// MaxMessageBytes is the largest batch a Kafka producer may append to the
// pipeline spec describes: its MaxMessageBytes, else the node's event
// limit.
func (n *Node) MaxMessageBytes(spec PipelineSpec) int64 {
	if spec.MaxMessageBytes > 0 {
		return spec.MaxMessageBytes
	}
	return int64(n.opts.MaxEventBytes)
}

// alterableLocked returns the catalog's spec of pipeline name, or why its
// settings cannot change. Called with n.mu held.
func (n *Node) alterableLocked(name string) (*PipelineSpec, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	spec := n.cat.find(name)
	if spec == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPipeline, name)
	}
	if slices.ContainsFunc(n.opts.Pipelines, func(p PipelineSpec) bool { return p.Name == name }) {
		return nil, fmt.Errorf("%w: %q takes its retention, default jurisdiction and default priority from the config file (pipelines:) at every start; change them there and restart the node (every node, in a cluster)", ErrPipelineDeclared, name)
	}
	return spec, nil
}

// ValidateAlter returns the spec pipeline name would have after c, or why
// c would be refused, and changes nothing (Kafka's validate_only).
func (n *Node) ValidateAlter(name string, c PipelineChange) (PipelineSpec, error) {
	c, err := n.checkChange(name, c)
	if err != nil {
		return PipelineSpec{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	spec, err := n.alterableLocked(name)
	if err != nil {
		return PipelineSpec{}, err
	}
	return c.apply(*spec), nil
}

// AlterPipeline changes the run-time settings of pipeline name (see
// PipelineChange) and returns its spec after. Alone, the node applies the
// change durably at once; in a cluster (Options.Proposer) it proposes the
// change to every node and returns once this node has applied it. A
// pipeline of the config file is refused (ErrPipelineDeclared), as is a
// bad value (ErrInvalidSpec, naming it).
func (n *Node) AlterPipeline(name string, c PipelineChange) (PipelineSpec, error) {
	spec, err := n.ValidateAlter(name, c)
	if err != nil || c.Empty() {
		return spec, err
	}
	if n.opts.Proposer == nil {
		return n.applyAlter(name, c)
	}
	if err := n.opts.Proposer.AlterPipeline(name, c); err != nil {
		return PipelineSpec{}, err
	}
	spec, ok := n.Pipeline(name)
	if !ok {
		return PipelineSpec{}, fmt.Errorf("%w: %q (deleted while its settings changed)", ErrUnknownPipeline, name)
	}
	return spec, nil
}

// ApplyAlterPipeline changes, on this node, the settings of a pipeline as
// a cluster's metadata log says (c as AlterPipeline got it on the node
// that proposed it).
func (n *Node) ApplyAlterPipeline(name string, c PipelineChange) error {
	_, err := n.applyAlter(name, c)
	return err
}

// applyAlter changes the settings of pipeline name on this node: the
// catalog first (from then on the change stands, across a crash too), then
// the routing table and the buffers' retention.
func (n *Node) applyAlter(name string, c PipelineChange) (PipelineSpec, error) {
	c, err := n.checkChange(name, c)
	if err != nil {
		return PipelineSpec{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, err := n.alterableLocked(name)
	if err != nil {
		return PipelineSpec{}, err
	}
	spec := c.apply(*cur)
	// No longer declared by the running config (alterableLocked): a
	// pipeline of run time from now on.
	spec.Declared = false
	if spec.Retention == cur.Retention && spec.RetentionBytes == cur.RetentionBytes && spec.DefaultJurisdiction == cur.DefaultJurisdiction &&
		spec.DefaultPriority == cur.DefaultPriority && spec.MaxMessageBytes == cur.MaxMessageBytes && spec.Declared == cur.Declared &&
		spec.CleanupPolicy == cur.CleanupPolicy && spec.DeleteRetention == cur.DeleteRetention &&
		spec.MinCompactionLag == cur.MinCompactionLag && spec.MinCleanableDirtyRatio == cur.MinCleanableDirtyRatio {
		return spec, nil // as it is already (a cluster node replaying its metadata log at start)
	}
	if err := n.cat.update(spec); err != nil {
		return PipelineSpec{}, err
	}
	var refused *refusedBuffer
	if p := n.st.Load().pipeline(name); p != nil {
		refused = p.refused
	}
	if err := n.putLocked(spec, refused); err != nil {
		return PipelineSpec{}, fmt.Errorf("node: pipeline %q: the catalog holds its new settings, but the routing table could not be rebuilt: %w", name, err)
	}
	if c.Retention != nil || c.RetentionBytes != nil || c.CleanupPolicy != nil {
		age, size := spec.BufferRetention()
		for i, sl := range spec.Layout() {
			b, ok := n.bufs[n.bufferDir(name, sl.Hub, int32(i))].(RetentionSetter)
			if !ok {
				continue
			}
			if err := b.SetRetention(age, size); err != nil {
				n.log.Error("a buffer keeps its old retention", "pipeline", name, "partition", i, "err", err)
			}
		}
	}
	if c.compactionChanged() {
		for i, sl := range spec.Layout() {
			b, ok := n.bufs[n.bufferDir(name, sl.Hub, int32(i))].(CompactionSetter)
			if !ok {
				continue
			}
			if err := b.SetCompaction(spec.CompactPolicy()); err != nil {
				n.log.Error("a buffer keeps its old compaction policy", "pipeline", name, "partition", i, "err", err)
			}
		}
	}
	n.log.Info("pipeline settings changed", "pipeline", name, "change", c.String())
	return spec, nil
}
