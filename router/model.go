package router

import (
	"fmt"
	"strings"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// HubStatus says whether a hub takes new events. The zero value is Up.
type HubStatus uint8

// The hub statuses. Only an Up hub takes new events; a Draining hub still
// serves what it stores while its events are moved away, a Down hub serves
// nothing.
const (
	Up HubStatus = iota
	Draining
	Down
)

var hubStatusNames = [...]string{"up", "draining", "down"}

// String returns "up", "draining" or "down", or "status(N)" for a value that
// is none of them.
func (s HubStatus) String() string {
	if s.Valid() {
		return hubStatusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Valid reports whether s is Up, Draining or Down.
func (s HubStatus) Valid() bool { return int(s) < len(hubStatusNames) }

// ParseHubStatus returns the status named by s: "up", "draining" or "down",
// in any case.
func ParseHubStatus(s string) (HubStatus, error) {
	for i, name := range hubStatusNames {
		if strings.EqualFold(s, name) {
			return HubStatus(i), nil
		}
	}
	return Up, fmt.Errorf("router: unknown hub status %q; use up, draining or down", s)
}

// MarshalText encodes s as its name, for JSON and YAML.
func (s HubStatus) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("router: invalid hub status %d; valid values are 0 (up), 1 (draining) and 2 (down)", uint8(s))
	}
	return []byte(hubStatusNames[s]), nil
}

// UnmarshalText decodes a name accepted by ParseHubStatus.
func (s *HubStatus) UnmarshalText(text []byte) error {
	v, err := ParseHubStatus(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Hub is a site that holds buffers, as the routing table sees it.
type Hub struct {
	// Name identifies the hub, such as "tangier": 1 to 64 of a-z, A-Z,
	// 0-9, '.', '_', '-'. It names the hub's buffers in rendezvous hashing
	// (see BufferSeed), so renaming a hub moves its keys.
	Name string
	// Jurisdiction is the hub's jurisdiction as configured, such as "MA" or
	// "*". It is only displayed (by Explain); Mask is what routing uses.
	Jurisdiction string
	// Mask is the hub's jurisdiction: one bit, or every bit for a hub of
	// jurisdiction "*". It must not be 0.
	Mask jurisdiction.Mask
	// Status says whether the hub takes new events.
	Status HubStatus
	// Deny lists the pipelines the hub's policy forbids it to hold, by
	// exact name. Names of unknown pipelines are allowed, so a policy may
	// precede the pipeline.
	Deny []string
}

// Denies reports whether h's policy forbids the pipeline.
func (h *Hub) Denies(pipeline string) bool {
	for _, d := range h.Deny {
		if d == pipeline {
			return true
		}
	}
	return false
}

// Pipeline is a named stream, a Kafka topic, as the routing table sees it.
type Pipeline struct {
	// Name is the pipeline's name; see event.ValidatePipelineName.
	Name string
	// Partitions is the number of buffers per hub per lane, 1 to
	// MaxPartitions, of the standard layout: used when Layout is nil.
	Partitions int
	// Layout, when not nil, places every partition explicitly: partition
	// i lives in Layout[i] (a hub index and a lane). Any count from 1 to
	// MaxBuffers, any mix of hubs and lanes.
	Layout []Slot
	// DefaultMask is the mask of events that carry none; 0 means events
	// must carry one. Route does not apply it: the caller resolves the
	// event's mask first.
	DefaultMask jurisdiction.Mask
	// DefaultPriority is the priority of events that carry none.
	DefaultPriority event.Priority
}

// Slot is where one partition lives: a hub (its index in the table's hub
// list) and a lane.
type Slot struct {
	Hub  int
	Lane event.Priority
}

// StandardLayout returns the layout of perLane buffers per hub and lane
// over hubs hubs: partition (hub*3 + lane)*perLane + index.
func StandardLayout(hubs, perLane int) []Slot {
	out := make([]Slot, 0, hubs*Lanes*perLane)
	for h := range hubs {
		for lane := event.Low; lane <= event.Critical; lane++ {
			for range perLane {
				out = append(out, Slot{Hub: h, Lane: lane})
			}
		}
	}
	return out
}

// Buffer is one partition of a pipeline: a log in one hub and one lane.
type Buffer struct {
	// Partition is the buffer's number within the pipeline, as a Kafka
	// partition: (HubIndex*3 + Lane)*Partitions + Index in the standard
	// layout, the position in Pipeline.Layout otherwise.
	Partition int32
	// Hub is the name of the hub that holds the buffer.
	Hub string
	// HubIndex is the hub's position in the table's hub list.
	HubIndex int
	// Lane is the priority class of the events the buffer holds.
	Lane event.Priority
	// Index is the buffer's number within its hub and lane (the buffers
	// of one hub and lane are numbered from 0 in partition order).
	Index int
}

// Reason says why Route chose no buffer. OK means it chose one.
type Reason uint8

// The reasons. NoHubInMask, HubsUnavailable, PolicyDenied and
// NoBufferInMask are the kinds of NO_COMPLIANT_HUB (retriable: a hub may
// come up, change its policy, or the pipeline gain partitions);
// InvalidMask and InvalidPriority are bad input.
const (
	// OK: a buffer was chosen.
	OK Reason = iota
	// NoHubInMask: no hub's jurisdiction is in the event's mask.
	NoHubInMask
	// HubsUnavailable: some hub's jurisdiction is in the mask, but none of
	// those hubs is up.
	HubsUnavailable
	// PolicyDenied: every up hub whose jurisdiction is in the mask denies
	// the pipeline.
	PolicyDenied
	// InvalidMask: the mask is 0.
	InvalidMask
	// InvalidPriority: the priority is not low, medium or critical.
	InvalidPriority
	// NoBufferInMask: the up hubs of the mask that allow the pipeline
	// hold none of its buffers of the event's lane (the pipeline has fewer
	// partitions than hubs and lanes).
	NoBufferInMask
)

var reasonNames = [...]string{
	OK:              "ok",
	NoHubInMask:     "no_hub_in_mask",
	HubsUnavailable: "hubs_unavailable",
	PolicyDenied:    "policy_denied",
	InvalidMask:     "invalid_mask",
	InvalidPriority: "invalid_priority",
	NoBufferInMask:  "no_buffer_in_mask",
}

// String returns the reason in snake_case, such as "no_hub_in_mask", fit
// for a metric label or a log field; "reason(N)" for an unknown value.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// NoCompliantHub reports whether r is one of the refusals the producer sees
// as NO_COMPLIANT_HUB: NoHubInMask, HubsUnavailable or PolicyDenied.
func (r Reason) NoCompliantHub() bool {
	return r == NoHubInMask || r == HubsUnavailable || r == PolicyDenied || r == NoBufferInMask
}
