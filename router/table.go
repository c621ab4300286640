package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/internal/cow"
	"github.com/sensehq/sense/jurisdiction"
)

// Limits checked by Build.
const (
	// MaxPartitions is the largest Pipeline.Partitions.
	MaxPartitions = 1024
	// MaxBuffers is the most buffers a pipeline may have in all: hubs x 3
	// lanes x Partitions.
	MaxBuffers = 65535
	// Lanes is the number of priority lanes per hub: low, medium, critical.
	Lanes = 3
)

// maxHubName bounds the length of a hub name.
const maxHubName = 64

// ErrInvalidConfig is matched, via errors.Is, by every error of Build.
var ErrInvalidConfig = errors.New("router: invalid routing config")

// configError formats a Build error that wraps ErrInvalidConfig.
func configError(format string, args ...any) error {
	return &buildError{msg: "router: " + fmt.Sprintf(format, args...)}
}

type buildError struct{ msg string }

func (e *buildError) Error() string        { return e.msg }
func (e *buildError) Is(target error) bool { return target == ErrInvalidConfig }

// Table is an immutable routing snapshot. Build one with Build; publish it
// with a Holder. Its methods are safe for concurrent use.
type Table struct {
	version uint64
	hubs    []Hub
	routes  cow.Map[*Routes] // by pipeline name
}

// Routes is the routing of one pipeline within a Table.
type Routes struct {
	spec  Pipeline
	parts int32 // spec.Partitions

	// groups are the hubs that are up and allow the pipeline, in config
	// order: the candidates of Route.
	groups []group

	// Union of the masks of all hubs, of up hubs, of up hubs that allow
	// the pipeline, and of those that also hold buffers of it: a mask that
	// misses okMask has no eligible buffer, and the others tell why.
	anyMask, upMask, allowMask, okMask jurisdiction.Mask

	buffers []Buffer // every buffer, indexed by partition
	allowed []bool   // per hub index: the hub's policy allows the pipeline
	hubs    []Hub    // the table's hubs, shared

	// lane[p] is the lane events of priority p are stored in: p when the
	// pipeline has buffers of lane p, else its default priority's lane if
	// it has one, else its lowest lane.
	lane [Lanes]event.Priority
}

// group is one candidate hub of a pipeline.
type group struct {
	mask jurisdiction.Mask
	// parts[l] are the partitions of the hub's lane l, by index; seeds[l]
	// their rendezvous seeds.
	parts [Lanes][]int32
	seeds [Lanes][]uint64
}

// Build validates a routing config and returns its table. version labels
// the snapshot (for example the metadata log index it was built from). hubs
// are in config order, which fixes partition numbers; pipelines in any
// order. Build copies what it keeps, so the caller may reuse its slices.
//
// Build checks that there is at least one hub; that hub names are valid and
// unique, masks non-zero and statuses known; that pipeline names are valid
// and unique; that Partitions is in [1, MaxPartitions]; that each pipeline
// has at most MaxBuffers buffers in all; and that default priorities are
// valid. Every error matches ErrInvalidConfig and names the field at fault.
func Build(version uint64, hubs []Hub, pipelines []Pipeline) (*Table, error) {
	if len(hubs) == 0 {
		return nil, configError("no hubs configured; add at least one hub (the zero config uses hub %q of jurisdiction %q)", "local", "*")
	}
	t := &Table{
		version: version,
		hubs:    make([]Hub, len(hubs)),
	}
	routes := make(map[string]*Routes, len(pipelines))
	seen := make(map[string]int, len(hubs))
	for i, h := range hubs {
		if err := validHubName(h.Name); err != nil {
			return nil, configError("hub %d: %v", i, err)
		}
		if j, dup := seen[h.Name]; dup {
			return nil, configError("hub name %q is used twice (hubs %d and %d); give each hub its own name", h.Name, j, i)
		}
		seen[h.Name] = i
		if h.Mask == 0 {
			return nil, configError("hub %q: jurisdiction mask is 0; give the hub a registered jurisdiction or %q", h.Name, "*")
		}
		if !h.Status.Valid() {
			return nil, configError("hub %q: status is %d; use up (0), draining (1) or down (2)", h.Name, uint8(h.Status))
		}
		h.Deny = slices.Clone(h.Deny)
		t.hubs[i] = h
	}

	maxParts := 0
	for _, p := range pipelines {
		if _, dup := routes[p.Name]; dup {
			return nil, configError("pipeline %q is defined twice; merge the definitions or rename one", p.Name)
		}
		if err := validatePipeline(p, len(hubs)); err != nil {
			return nil, err
		}
		routes[p.Name] = nil // mark as seen; filled below
		maxParts = max(maxParts, p.Partitions)
		if p.Layout != nil {
			maxParts = max(maxParts, maxPerSlot(p.Layout))
		}
	}

	// Seeds depend on (hub, index) only, so every pipeline shares a prefix
	// of each hub's seed list.
	seeds := t.seeds(maxParts)
	for _, p := range pipelines {
		routes[p.Name] = t.build(p, seeds, maxParts)
	}
	t.routes = cow.From(routes)
	return t, nil
}

// seeds returns the rendezvous seeds of the first maxParts buffers of
// each hub's lanes, hub after hub.
func (t *Table) seeds(maxParts int) []uint64 {
	seeds := make([]uint64, len(t.hubs)*maxParts)
	for i := range t.hubs {
		for j := 0; j < maxParts; j++ {
			seeds[i*maxParts+j] = BufferSeed(t.hubs[i].Name, j)
		}
	}
	return seeds
}

// With returns a table holding t's pipelines and p (added, or replacing
// the pipeline of its name), labelled version. It validates p as Build
// does and builds p's routes only: the other pipelines' routes are shared
// with t, and the map of routes is copied one shard of cow.Shards, so its
// cost hardly grows with the number of pipelines.
func (t *Table) With(version uint64, p Pipeline) (*Table, error) {
	if err := validatePipeline(p, len(t.hubs)); err != nil {
		return nil, err
	}
	stride := p.Partitions
	if p.Layout != nil {
		stride = maxPerSlot(p.Layout)
	}
	nt := &Table{version: version, hubs: t.hubs}
	nt.routes = t.routes.With(p.Name, nt.build(p, nt.seeds(stride), stride))
	return nt, nil
}

// Without returns a table holding t's pipelines but name, labelled
// version; the others' routes are shared with t.
func (t *Table) Without(version uint64, name string) *Table {
	return &Table{version: version, hubs: t.hubs, routes: t.routes.Without(name)}
}

// validatePipeline checks one pipeline of a table of nhubs hubs.
func validatePipeline(p Pipeline, nhubs int) error {
	if err := event.ValidatePipelineName(p.Name); err != nil {
		return configError("pipeline: %v", err)
	}
	if p.Layout != nil {
		if len(p.Layout) < 1 || len(p.Layout) > MaxBuffers {
			return configError("pipeline %q: %d partitions; a pipeline has 1 to %d", p.Name, len(p.Layout), MaxBuffers)
		}
		for i, sl := range p.Layout {
			if sl.Hub < 0 || sl.Hub >= nhubs || !sl.Lane.Valid() {
				return configError("pipeline %q: partition %d is placed in hub %d lane %d; the table has %d hubs and lanes 0 to 2",
					p.Name, i, sl.Hub, uint8(sl.Lane), nhubs)
			}
		}
	} else {
		if p.Partitions < 1 || p.Partitions > MaxPartitions {
			return configError("pipeline %q: partitions is %d; set it between 1 and %d (buffers per hub per lane)",
				p.Name, p.Partitions, MaxPartitions)
		}
		if total := nhubs * Lanes * p.Partitions; total > MaxBuffers {
			return configError("pipeline %q: %d hubs x %d lanes x %d partitions = %d buffers, more than %d; lower partitions to at most %d or use fewer hubs",
				p.Name, nhubs, Lanes, p.Partitions, total, MaxBuffers, MaxBuffers/(nhubs*Lanes))
		}
	}
	if !p.DefaultPriority.Valid() {
		return configError("pipeline %q: default priority is %d; use low (0), medium (1) or critical (2)",
			p.Name, uint8(p.DefaultPriority))
	}
	return nil
}

// maxPerSlot returns the most partitions any (hub, lane) of a layout has.
func maxPerSlot(layout []Slot) int {
	counts := map[Slot]int{}
	m := 0
	for _, sl := range layout {
		counts[sl]++
		m = max(m, counts[sl])
	}
	return m
}

// build precomputes the routes of one validated pipeline.
func (t *Table) build(p Pipeline, seeds []uint64, stride int) *Routes {
	layout := p.Layout
	if layout == nil {
		layout = StandardLayout(len(t.hubs), p.Partitions)
	}
	r := &Routes{
		spec:    p,
		parts:   int32(p.Partitions),
		buffers: make([]Buffer, len(layout)),
		allowed: make([]bool, len(t.hubs)),
		hubs:    t.hubs,
	}
	// Per hub and lane, the partitions in partition order.
	slots := make([][Lanes][]int32, len(t.hubs))
	var hasLane [Lanes]bool
	for i, sl := range layout {
		idx := len(slots[sl.Hub][sl.Lane])
		slots[sl.Hub][sl.Lane] = append(slots[sl.Hub][sl.Lane], int32(i))
		r.buffers[i] = Buffer{Partition: int32(i), Hub: t.hubs[sl.Hub].Name, HubIndex: sl.Hub, Lane: sl.Lane, Index: idx}
		hasLane[sl.Lane] = true
	}
	lowest := event.Critical
	for l := event.Critical; ; l-- {
		if hasLane[l] {
			lowest = l
		}
		if l == event.Low {
			break
		}
	}
	for prio := event.Low; prio <= event.Critical; prio++ {
		switch {
		case hasLane[prio]:
			r.lane[prio] = prio
		case hasLane[p.DefaultPriority]:
			r.lane[prio] = p.DefaultPriority
		default:
			r.lane[prio] = lowest
		}
	}
	for hi := range t.hubs {
		h := &t.hubs[hi]
		r.allowed[hi] = !h.Denies(p.Name)
		r.anyMask |= h.Mask
		if h.Status != Up {
			continue
		}
		r.upMask |= h.Mask
		if !r.allowed[hi] {
			continue
		}
		r.allowMask |= h.Mask
		g := group{mask: h.Mask, parts: slots[hi]}
		empty := true
		for l := range Lanes {
			n := len(g.parts[l])
			g.seeds[l] = seeds[hi*stride : hi*stride+n : hi*stride+n]
			empty = empty && n == 0
		}
		if empty {
			continue // the hub holds no buffer of this pipeline
		}
		r.okMask |= h.Mask
		r.groups = append(r.groups, g)
	}
	return r
}

// validHubName checks a hub name: 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-'.
func validHubName(name string) error {
	if name == "" || len(name) > maxHubName {
		return fmt.Errorf("hub name %.70q is %d bytes long; use 1 to %d of a-z, A-Z, 0-9, '.', '_', '-'", name, len(name), maxHubName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("hub name %q has %q at byte %d; use only a-z, A-Z, 0-9, '.', '_', '-'", name, c, i)
		}
	}
	return nil
}

// Version returns the version Build was given.
func (t *Table) Version() uint64 { return t.version }

// Pipeline returns the routes of the named pipeline, or nil if the table has
// no such pipeline. It does not allocate.
func (t *Table) Pipeline(name string) *Routes {
	r, _ := t.routes.Get(name)
	return r
}

// Pipelines returns the pipeline names, sorted. The slice is a copy.
func (t *Table) Pipelines() []string {
	names := make([]string, 0, t.routes.Len())
	for name := range t.routes.All() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Hubs returns the hubs in config order. The result is a deep copy.
func (t *Table) Hubs() []Hub {
	hubs := slices.Clone(t.hubs)
	for i := range hubs {
		hubs[i].Deny = slices.Clone(hubs[i].Deny)
	}
	return hubs
}

// Route picks the buffer for an event of this pipeline with the given mask,
// priority and key, and returns its partition and OK. The caller resolves
// the pipeline's defaults first: Route does not replace a zero mask by
// Spec().DefaultMask.
//
// A non-nil key (even an empty one) selects a buffer by rendezvous hashing,
// so a key stays on one buffer while the eligible set is stable; see the
// package documentation. A nil key selects the (spread mod n)-th of the n
// eligible buffers in partition order.
//
// With no eligible buffer Route returns -1 and why: InvalidMask for a zero
// mask, InvalidPriority for an unknown priority (checked in that order),
// otherwise NoHubInMask, HubsUnavailable or PolicyDenied.
//
// Route does not allocate.
func (r *Routes) Route(mask jurisdiction.Mask, prio event.Priority, key []byte, spread uint64) (partition int32, reason Reason) {
	if mask == 0 {
		return -1, InvalidMask
	}
	if prio > event.Critical {
		return -1, InvalidPriority
	}
	if mask&r.okMask == 0 {
		return -1, r.refusal(mask)
	}
	lane := r.lane[prio]
	if key != nil {
		h := HashKey(key)
		var best uint64
		part := int32(-1)
		for gi := range r.groups {
			g := &r.groups[gi]
			if g.mask&mask == 0 {
				continue
			}
			for i, s := range g.seeds[lane] {
				// Seeds are distinct and mix is a bijection, so weights
				// tie only if two seeds collide (a 64-bit hash collision);
				// then the first in config order wins.
				if w := mix(h ^ s); w > best || part < 0 {
					best, part = w, g.parts[lane][i]
				}
			}
		}
		if part < 0 {
			return -1, NoBufferInMask
		}
		return part, OK
	}
	// Keyless: count the matching buffers, then take the chosen one.
	matching := uint64(0)
	for gi := range r.groups {
		if g := &r.groups[gi]; g.mask&mask != 0 {
			matching += uint64(len(g.parts[lane]))
		}
	}
	if matching == 0 {
		return -1, NoBufferInMask
	}
	pick := spread % matching
	for gi := range r.groups {
		g := &r.groups[gi]
		if g.mask&mask == 0 {
			continue
		}
		if n := uint64(len(g.parts[lane])); pick < n {
			return g.parts[lane][pick], OK
		} else {
			pick -= n
		}
	}
	panic("router: no matching buffer after counting them") // unreachable
}

// refusal returns why a valid mask that misses okMask has no buffer.
func (r *Routes) refusal(mask jurisdiction.Mask) Reason {
	switch {
	case mask&r.anyMask == 0:
		return NoHubInMask
	case mask&r.upMask == 0:
		return HubsUnavailable
	case mask&r.allowMask == 0:
		return PolicyDenied
	default:
		return NoBufferInMask
	}
}

// Spec returns the pipeline as Build was given it.
func (r *Routes) Spec() Pipeline { return r.spec }

// Partitions returns every buffer of the pipeline, indexed by partition.
// The slice is a copy.
func (r *Routes) Partitions() []Buffer { return slices.Clone(r.buffers) }

// NumPartitions returns the number of buffers of the pipeline, what a
// Kafka client sees as the partition count.
func (r *Routes) NumPartitions() int { return len(r.buffers) }

// Buffer returns the buffer with the given partition number, or false if
// there is none. It does not allocate.
func (r *Routes) Buffer(partition int32) (Buffer, bool) {
	if partition < 0 || int(partition) >= len(r.buffers) {
		return Buffer{}, false
	}
	return r.buffers[partition], true
}

// Allowed reports whether the policy of the hub at hubIndex allows the
// pipeline. It reports false for an index out of range.
func (r *Routes) Allowed(hubIndex int) bool {
	return hubIndex >= 0 && hubIndex < len(r.allowed) && r.allowed[hubIndex]
}

// Eligible reports whether buffer b of this pipeline is eligible for an
// event with the given mask and priority. It is the definition Route obeys,
// one buffer at a time.
func (r *Routes) Eligible(b Buffer, mask jurisdiction.Mask, prio event.Priority) bool {
	if b.HubIndex < 0 || b.HubIndex >= len(r.hubs) {
		return false
	}
	h := &r.hubs[b.HubIndex]
	return h.Mask&mask != 0 && h.Status == Up && r.allowed[b.HubIndex] && prio.Valid() && b.Lane == r.lane[prio]
}

// LaneFor returns the lane events of priority prio are stored in: prio
// itself when the pipeline has buffers of that lane, otherwise the default
// priority's lane (or the pipeline's lowest lane). A pipeline laid out in
// one lane (as a Kafka-created topic is) holds every priority in it.
func (r *Routes) LaneFor(prio event.Priority) event.Priority {
	if !prio.Valid() {
		return prio
	}
	return r.lane[prio]
}

// Verdict is Explain's finding for one buffer.
type Verdict struct {
	Buffer   Buffer
	Eligible bool
	// Why is "eligible", or every reason the buffer is not, joined by
	// "; ", such as "hub dakar (SN) not in mask MA; lane low, event is
	// critical".
	Why string
}

// Explain says, for every buffer of the pipeline in partition order,
// whether it is eligible for an event with the given mask and priority, and
// why not. reg, which may be nil, spells masks as codes (MA,SN) rather than
// in hex. Explain is for tools and logs, not the hot path: it allocates.
func (t *Table) Explain(pipeline string, mask jurisdiction.Mask, prio event.Priority, reg *jurisdiction.Registry) ([]Verdict, error) {
	r := t.Pipeline(pipeline)
	if r == nil {
		return nil, fmt.Errorf("router: unknown pipeline %q in routing table version %d; known pipelines: %s",
			pipeline, t.version, strings.Join(t.Pipelines(), ", "))
	}
	if mask == 0 {
		return nil, fmt.Errorf("router: the mask is 0, so no buffer is eligible; give at least one jurisdiction")
	}
	if !prio.Valid() {
		return nil, fmt.Errorf("router: priority %d is invalid; use low (0), medium (1) or critical (2)", uint8(prio))
	}
	maskText := formatMask(mask, reg)
	// The hub-level findings are the same for every buffer of a hub.
	hubWhy := make([][]string, len(t.hubs))
	for i := range t.hubs {
		h := &t.hubs[i]
		var why []string
		if h.Mask&mask == 0 {
			why = append(why, fmt.Sprintf("hub %s (%s) not in mask %s", h.Name, hubJurisdiction(h, reg), maskText))
		}
		if h.Status != Up {
			why = append(why, fmt.Sprintf("hub %s is %s", h.Name, h.Status))
		}
		if !r.allowed[i] {
			why = append(why, fmt.Sprintf("policy of hub %s denies pipeline %s", h.Name, pipeline))
		}
		hubWhy[i] = why
	}
	out := make([]Verdict, len(r.buffers))
	for i, b := range r.buffers {
		why := hubWhy[b.HubIndex]
		if lane := r.lane[prio]; b.Lane != lane {
			if lane == prio {
				why = append(slices.Clip(why), fmt.Sprintf("lane %s, event is %s", b.Lane, prio))
			} else {
				why = append(slices.Clip(why), fmt.Sprintf("lane %s, event is %s (the pipeline has no %s lane; its %s events go to the %s lane)", b.Lane, prio, prio, prio, lane))
			}
		}
		v := Verdict{Buffer: b, Eligible: len(why) == 0, Why: "eligible"}
		if !v.Eligible {
			v.Why = strings.Join(why, "; ")
		}
		out[i] = v
	}
	return out, nil
}

// hubJurisdiction returns the hub's jurisdiction for display.
func hubJurisdiction(h *Hub, reg *jurisdiction.Registry) string {
	if h.Jurisdiction != "" {
		return h.Jurisdiction
	}
	if reg != nil && h.Mask == reg.All() && reg.Len() > 1 {
		return jurisdiction.Wildcard
	}
	return formatMask(h.Mask, reg)
}

func formatMask(m jurisdiction.Mask, reg *jurisdiction.Registry) string {
	if reg != nil {
		return reg.Format(m)
	}
	return fmt.Sprintf("%#x", uint64(m))
}

// Hub returns the i-th hub (a Buffer's HubIndex), or the zero Hub when i is
// out of range.
func (t *Table) Hub(i int) Hub {
	if i < 0 || i >= len(t.hubs) {
		return Hub{}
	}
	return t.hubs[i]
}
