package node

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/router"
)

// AdminRequest is an administrative operation, carried as JSON by the
// native protocol's ADMIN frame and by POST /v1/admin on the HTTP listener.
//
//	{"op":"pipeline.create","pipeline":"payments","partitions":2,"default_jurisdiction":"MA,SN"}
//	{"op":"pipeline.list"}
//	{"op":"pipeline.describe","pipeline":"payments"}
//	{"op":"route.explain","pipeline":"payments","jurisdiction":"MA","priority":"critical"}
//	{"op":"hub.set_status","hub":"tangier","status":"down"}
//	{"op":"hub.list"}
//	{"op":"registry"}
type AdminRequest struct {
	Op                  string `json:"op"`
	Pipeline            string `json:"pipeline,omitempty"`
	Partitions          int    `json:"partitions,omitempty"`
	Retention           string `json:"retention,omitempty"`
	DefaultPriority     string `json:"default_priority,omitempty"`
	DefaultJurisdiction string `json:"default_jurisdiction,omitempty"`
	Jurisdiction        string `json:"jurisdiction,omitempty"`
	Priority            string `json:"priority,omitempty"`
	Hub                 string `json:"hub,omitempty"`
	Status              string `json:"status,omitempty"`
}

// AdminResponse is the answer: Error is set on failure.
type AdminResponse struct {
	Error     string          `json:"error,omitempty"`
	Pipelines []PipelineInfo  `json:"pipelines,omitempty"`
	Layout    []PartitionInfo `json:"layout,omitempty"`
	Verdicts  []VerdictInfo   `json:"verdicts,omitempty"`
	Hubs      []HubInfo       `json:"hubs,omitempty"`
	Registry  *RegistryInfo   `json:"registry,omitempty"`
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
	DefaultPriority     string `json:"default_priority"`
	DefaultJurisdiction string `json:"default_jurisdiction"`
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
}

// Admin runs one administrative operation given as JSON and returns the
// JSON answer.
func (n *Node) Admin(body []byte) []byte {
	var req AdminRequest
	var resp AdminResponse
	if err := json.Unmarshal(body, &req); err != nil {
		resp.Error = fmt.Sprintf("admin request is not valid JSON: %v", err)
	} else if err := n.admin(&req, &resp); err != nil {
		resp.Error = err.Error()
	}
	out, _ := json.Marshal(&resp)
	return out
}

func (n *Node) admin(req *AdminRequest, resp *AdminResponse) error {
	switch req.Op {
	case "pipeline.create":
		var ret time.Duration
		if req.Retention != "" {
			d, err := time.ParseDuration(req.Retention)
			if err != nil || d < 0 {
				return fmt.Errorf("retention %q is not a duration such as 24h", req.Retention)
			}
			ret = d
		}
		if err := n.CreatePipeline(PipelineSpec{Name: req.Pipeline, Partitions: req.Partitions, Retention: ret,
			DefaultPriority: req.DefaultPriority, DefaultJurisdiction: req.DefaultJurisdiction}); err != nil {
			return err
		}
		return n.admin(&AdminRequest{Op: "pipeline.describe", Pipeline: req.Pipeline}, resp)
	case "pipeline.list":
		for _, p := range n.Pipelines() {
			resp.Pipelines = append(resp.Pipelines, n.pipelineInfo(p))
		}
		return nil
	case "pipeline.describe":
		var spec *PipelineSpec
		for _, p := range n.Pipelines() {
			if p.Name == req.Pipeline {
				spec = &p
				break
			}
		}
		if spec == nil {
			return fmt.Errorf("unknown pipeline %q; create it with `sense pipeline create %s`", req.Pipeline, req.Pipeline)
		}
		resp.Pipelines = []PipelineInfo{n.pipelineInfo(*spec)}
		parts, _ := n.Partitions(req.Pipeline)
		for _, p := range parts {
			resp.Layout = append(resp.Layout, PartitionInfo{Partition: p.Partition, Hub: p.Hub, Lane: p.Lane.String(),
				Index: p.Index, Start: p.Start, HighWatermark: p.HighWatermark})
		}
		return nil
	case "route.explain":
		mask, err := n.reg.Parse(orDefault(req.Jurisdiction, "*"))
		if err != nil {
			return err
		}
		prio, err := event.ParsePriority(orDefault(req.Priority, "low"))
		if err != nil {
			return err
		}
		vs, err := n.Table().Explain(req.Pipeline, mask, prio, n.reg)
		if err != nil {
			return err
		}
		for _, v := range vs {
			resp.Verdicts = append(resp.Verdicts, VerdictInfo{Partition: v.Buffer.Partition, Hub: v.Buffer.Hub,
				Lane: v.Buffer.Lane.String(), Eligible: v.Eligible, Why: v.Why})
		}
		return nil
	case "hub.set_status":
		st, err := router.ParseHubStatus(req.Status)
		if err != nil {
			return err
		}
		if err := n.SetHubStatus(req.Hub, st); err != nil {
			return err
		}
		return n.admin(&AdminRequest{Op: "hub.list"}, resp)
	case "registry":
		ri := &RegistryInfo{Codes: n.reg.Codes(), Groups: map[string][]string{}}
		for _, g := range n.reg.Groups() {
			m, _ := n.reg.Group(g)
			for bit := 0; bit < 64; bit++ {
				if m.Has(bit) {
					c, _ := n.reg.Code(bit)
					ri.Groups[g] = append(ri.Groups[g], c)
				}
			}
		}
		resp.Registry = ri
		return nil
	case "hub.list":
		for _, h := range n.Hubs() {
			resp.Hubs = append(resp.Hubs, HubInfo{Name: h.Name, Jurisdiction: h.Jurisdiction, Status: h.Status.String(), Deny: h.Deny})
		}
		return nil
	}
	return fmt.Errorf("unknown admin op %q; known: pipeline.create, pipeline.list, pipeline.describe, route.explain, hub.set_status, hub.list, registry", req.Op)
}

func (n *Node) pipelineInfo(p PipelineSpec) PipelineInfo {
	ret := "forever"
	if p.Retention > 0 {
		ret = p.Retention.String()
	}
	return PipelineInfo{Name: p.Name, Partitions: p.Partitions, TotalPartitions: p.Partitions * 3 * len(p.Hubs),
		Retention: ret, DefaultPriority: p.DefaultPriority, DefaultJurisdiction: p.DefaultJurisdiction, Declared: p.Declared}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
