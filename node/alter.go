package node

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sensehq/sense/event"
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
}

// Empty reports whether c changes nothing.
func (c PipelineChange) Empty() bool {
	return c.Retention == nil && c.RetentionBytes == nil && c.DefaultJurisdiction == nil && c.DefaultPriority == nil && c.MaxMessageBytes == nil
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
	return spec
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
		spec.DefaultPriority == cur.DefaultPriority && spec.MaxMessageBytes == cur.MaxMessageBytes && spec.Declared == cur.Declared {
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
	if c.Retention != nil || c.RetentionBytes != nil {
		for i, sl := range spec.Layout() {
			b, ok := n.bufs[n.bufferDir(name, sl.Hub, int32(i))].(RetentionSetter)
			if !ok {
				continue
			}
			if err := b.SetRetention(spec.Retention, spec.RetentionBytes); err != nil {
				n.log.Error("a buffer keeps its old retention", "pipeline", name, "partition", i, "err", err)
			}
		}
	}
	n.log.Info("pipeline settings changed", "pipeline", name, "change", c.String())
	return spec, nil
}
