package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
)

// Admin serves the admin API (package admin) on a node: the native
// protocol's ADMIN frames and POST /v1/admin both come here, through
// admin.Serve. It holds no state of its own.
type Admin struct {
	n  *node.Node
	cl *clusterRuntime // nil in dev mode
	// ledger is a node alone's migrator ledger, whose done steps are the
	// audit log of moves (nil in a cluster: the metadata's, through cl).
	ledger moveLedger
	// sec is the node's authentication (nil for NewAdmin): users, tokens,
	// the security audit log, and the authorizer of AdminContext.
	sec *securityRuntime
	// procs runs the processors (nil: none, as in NewAdmin).
	procs *processorRuntime
}

// NewAdmin returns the admin API of n, a node that runs alone without a
// migrator (it has no audit log of moves).
func NewAdmin(n *node.Node) Admin { return Admin{n: n} }

// Admin runs one typed administrative request. A refusal is a
// *result.Error whose code says why: UNKNOWN_PIPELINE, PIPELINE_EXISTS,
// INVALID_REQUEST (a bad argument, named in the message), INVALID_MASK,
// INVALID_PRIORITY, INVALID_PIPELINE_NAME, STORAGE_ERROR.
func (a Admin) Admin(req admin.Request) (admin.Response, error) {
	n := a.n
	var resp admin.Response
	switch req.(type) {
	case admin.ListProcessors, admin.DescribeProcessor, admin.PauseProcessor, admin.ResumeProcessor, admin.ResetProcessor, admin.CreateProcessor, admin.DeleteProcessor:
		if a.procs == nil {
			return resp, result.New(result.InvalidRequest, "this node runs no processors")
		}
		return a.procs.admin(req)
	}
	switch r := req.(type) {
	case admin.CreatePipeline:
		var ret time.Duration
		if r.Retention != "" {
			d, err := time.ParseDuration(r.Retention)
			if err != nil || d < 0 {
				return resp, result.New(result.InvalidRequest, fmt.Sprintf("retention %q is not a duration such as 24h", r.Retention))
			}
			ret = d
		}
		spec := node.PipelineSpec{Name: r.Pipeline, Partitions: r.Partitions, Retention: ret,
			DefaultPriority: r.DefaultPriority, DefaultJurisdiction: r.DefaultJurisdiction}
		if r.CleanupPolicy != "" {
			p, err := node.ParseCleanupPolicy(r.CleanupPolicy)
			if err != nil {
				return resp, result.New(result.InvalidRequest, err.Error())
			}
			spec.CleanupPolicy = p
		}
		if r.MaxMessageBytes != "" {
			b, err := maxMessageBytes(r.MaxMessageBytes)
			if err != nil {
				return resp, err
			}
			spec.MaxMessageBytes = b
		}
		if err := n.CreatePipeline(spec); err != nil {
			return resp, adminError(err)
		}
		return a.Admin(admin.DescribePipeline{Pipeline: r.Pipeline})
	case admin.AlterPipeline:
		ch, err := pipelineChange(r)
		if err != nil {
			return resp, err
		}
		if _, err := n.AlterPipeline(r.Pipeline, ch); err != nil {
			return resp, adminError(err)
		}
		return a.Admin(admin.DescribePipeline{Pipeline: r.Pipeline})
	case admin.ListPipelines:
		for _, p := range n.Pipelines() {
			resp.Pipelines = append(resp.Pipelines, pipelineInfo(n, p))
		}
		return resp, nil
	case admin.DescribePipeline:
		i := slices.IndexFunc(n.Pipelines(), func(p node.PipelineSpec) bool { return p.Name == r.Pipeline })
		if i < 0 {
			return resp, result.New(result.UnknownPipeline, fmt.Sprintf("unknown pipeline %q; create it with `sense pipeline create %s`", r.Pipeline, r.Pipeline))
		}
		resp.Pipelines = []admin.PipelineInfo{pipelineInfo(n, n.Pipelines()[i])}
		parts, _ := n.Partitions(r.Pipeline)
		for _, p := range parts {
			resp.Layout = append(resp.Layout, admin.PartitionInfo{Partition: p.Partition, Hub: p.Hub, Lane: p.Lane.String(),
				Index: p.Index, Start: p.Start, HighWatermark: p.HighWatermark})
		}
		return resp, nil
	case admin.ExplainRoute:
		mask, err := n.Registry().Parse(orDefault(r.Jurisdiction, "*"))
		if err != nil {
			return resp, result.New(result.InvalidMask, err.Error())
		}
		prio, err := event.ParsePriority(orDefault(r.Priority, "low"))
		if err != nil {
			return resp, result.New(result.InvalidPriority, err.Error())
		}
		vs, err := n.Table().Explain(r.Pipeline, mask, prio, n.Registry())
		if err != nil {
			return resp, result.New(result.UnknownPipeline, err.Error())
		}
		resp.TableVersion = a.tableVersion()
		for _, v := range vs {
			resp.Verdicts = append(resp.Verdicts, admin.VerdictInfo{Partition: v.Buffer.Partition, Hub: v.Buffer.Hub,
				Lane: v.Buffer.Lane.String(), Eligible: v.Eligible, Why: v.Why})
		}
		return resp, nil
	case admin.SetHubStatus:
		if r.Status == "" && r.Jurisdiction == "" {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("nothing to set on hub %q; give --status up|draining|down, --jurisdiction J, or both", r.Hub))
		}
		if r.Jurisdiction != "" {
			if err := a.designate(r.Hub, r.Jurisdiction); err != nil {
				return resp, err
			}
			if r.Status == "" {
				return a.Admin(admin.ListHubs{})
			}
		}
		st, err := router.ParseHubStatus(r.Status)
		if err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		if m := a.meta(); m != nil {
			if _, err := m.propose(meta.Command{Op: meta.OpHubStatus, Hub: r.Hub, Status: st.String()}); err != nil {
				return resp, metaError(err)
			}
		} else if err := n.SetHubStatus(r.Hub, st); err != nil {
			return resp, adminError(err)
		}
		return a.Admin(admin.ListHubs{})
	case admin.SetHubPolicy:
		if len(r.Deny) == 0 && len(r.Allow) == 0 {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("no pipeline to deny or allow in hub %q; give --deny P or --allow P", r.Hub))
		}
		if m := a.meta(); m != nil {
			if _, err := m.propose(meta.Command{Op: meta.OpHubPolicy, Hub: r.Hub, Deny: r.Deny, Allow: r.Allow}); err != nil {
				return resp, metaError(err)
			}
		} else if err := n.SetHubPolicy(r.Hub, r.Deny, r.Allow); err != nil {
			return resp, adminError(err)
		}
		return a.Admin(admin.ListHubs{})
	case admin.GetRegistry:
		reg := n.Registry()
		ri := &admin.RegistryInfo{Codes: reg.Codes(), Groups: map[string][]string{}}
		for _, g := range reg.Groups() {
			m, _ := reg.Group(g)
			for bit := 0; bit < 64; bit++ {
				if m.Has(bit) {
					c, _ := reg.Code(bit)
					ri.Groups[g] = append(ri.Groups[g], c)
				}
			}
		}
		resp.Registry = ri
		return resp, nil
	case admin.ClusterStatus:
		if a.cl == nil {
			return resp, result.New(result.InvalidRequest, "this node runs alone (dev mode: its config has no cluster section), so it has no cluster status; start a cluster with `sense cluster up --nodes 3`")
		}
		resp.Cluster = a.cl.status()
		return resp, nil
	case admin.Audit:
		ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
		defer cancel()
		hubs, err := n.Audit(ctx, r.Pipeline)
		if err != nil {
			return resp, adminError(err)
		}
		rep := &admin.AuditReport{Node: a.nodeID(), Hubs: []admin.AuditHub{}}
		for _, h := range hubs {
			rep.Hubs = append(rep.Hubs, admin.AuditHub{Hub: h.Hub, Jurisdiction: h.Jurisdiction, Buffers: h.Buffers, Records: h.Records,
				Bytes: h.Bytes, Masks: h.Masks, Violations: h.Violations, AwaitingMigration: h.AwaitingMigration, Corrupt: h.Corrupt, Examples: h.Examples})
		}
		resp.Audit = rep
		resp.TableVersion = a.tableVersion()
		return resp, nil
	case admin.AuditLog:
		l := a.moves()
		if l == nil {
			return resp, result.New(result.InvalidRequest, "this node runs no migrator, so it has no audit log of moves (a server started with `sense serve` has one)")
		}
		resp.Moves = []admin.Move{}
		for _, mv := range l.Moves() {
			reason := mv.Reason
			if reason == "" {
				reason = reasonPolicy // a step logged before reasons were
			}
			for _, r := range mv.Destinations() {
				if r.Records == 0 && len(mv.Destinations()) > 1 {
					continue // a route the step sent nothing
				}
				resp.Moves = append(resp.Moves, admin.Move{Pipeline: mv.Pipeline, Source: mv.Source, SourceHub: mv.Hub, From: mv.From, To: mv.To,
					Dest: r.Dest, DestHub: r.DestHub, DestFrom: r.DestFrom, DestTo: r.DestTo, Records: r.Records, Checksum: r.Checksum,
					Reason: reason, Cause: mv.Cause, Planned: time.Unix(0, mv.Planned).UTC().Format(time.RFC3339Nano), Finished: time.Unix(0, mv.Finished).UTC().Format(time.RFC3339Nano)})
			}
		}
		resp.TableVersion = a.tableVersion()
		return resp, nil
	case admin.CreateUser, admin.DeleteUser, admin.ListUsers, admin.CreateToken, admin.SecurityAudit:
		return a.securityAdmin(req)
	case admin.CreateACLs, admin.ListACLs, admin.DeleteACLs:
		return a.aclAdmin(context.Background(), req)
	case admin.ListHubs:
		resp.TableVersion = a.tableVersion()
		for _, h := range n.Hubs() {
			resp.Hubs = append(resp.Hubs, admin.HubInfo{Name: h.Name, Jurisdiction: h.Jurisdiction, Status: h.Status.String(), Deny: h.Deny, Former: h.Former})
		}
		return resp, nil
	}
	return resp, result.New(result.InvalidRequest, fmt.Sprintf("admin request %T is not known to this node", req))
}

// designate re-designates a hub: through the cluster metadata, whose
// migrator then moves what the hub stored that the new jurisdiction does
// not allow. A node alone refuses: it keeps no designation state (the
// former jurisdictions a re-designation must be remembered with across
// restarts, which the cluster metadata keeps), so its migrator would
// never know what to move.
func (a Admin) designate(hub, j string) error {
	n := a.n
	if _, ok := n.Registry().Bit(j); !ok && j != "*" {
		return result.New(result.InvalidMask, fmt.Sprintf("hub %s cannot be designated %q: a hub's jurisdiction is one registered code (`sense jurisdiction list`) or *", hub, j))
	}
	i := slices.IndexFunc(n.Hubs(), func(h node.HubSpec) bool { return h.Name == hub })
	if i < 0 {
		return result.New(result.InvalidRequest, fmt.Sprintf("unknown hub %q; `sense hub list` names the hubs", hub))
	}
	m := a.meta()
	if m == nil {
		return result.New(result.InvalidRequest, fmt.Sprintf("hub %s cannot be re-designated on a node alone (dev mode): only the cluster metadata keeps a hub's former jurisdictions, by which the migrator moves what the hub stored under them; re-designate hubs in a cluster (`sense cluster up`)", hub))
	}
	if _, err := m.propose(meta.Command{Op: meta.OpDesignate, Hub: hub, Jurisdiction: j, From: n.Hubs()[i].Jurisdiction}); err != nil {
		return metaError(err)
	}
	return nil
}

// auditTimeout bounds one node's audit.
const auditTimeout = 10 * time.Minute

// nodeID is this node's id ("" in dev mode).
func (a Admin) nodeID() string {
	if a.cl == nil {
		return ""
	}
	return a.cl.cfg.Node.ID
}

// moves returns the ledger of this node's migrator: the cluster
// metadata's, or a node alone's move log; nil when it runs none.
func (a Admin) moves() moveLedger {
	if m := a.meta(); m != nil {
		return metaLedger{m}
	}
	return a.ledger
}

// meta returns the cluster metadata runtime, or nil in dev mode.
func (a Admin) meta() *metaRuntime {
	if a.cl == nil {
		return nil
	}
	return a.cl.meta
}

// tableVersion is the version of the routing table this node routes with:
// in a cluster, the metadata log's applied offset.
func (a Admin) tableVersion() uint64 {
	if m := a.meta(); m != nil {
		return m.routed.Load()
	}
	return a.n.Table().Version()
}

// metaError gives an error of a metadata change its result code.
func metaError(err error) error {
	code := result.NotReady
	switch {
	case errors.Is(err, meta.ErrInvalid):
		code = result.InvalidRequest
	case errors.Is(err, context.DeadlineExceeded):
		code = result.Timeout
	case result.CodeOf(err) != result.Unknown:
		return err
	}
	return result.New(code, err.Error())
}

// adminError gives a node error its result code.
func adminError(err error) error {
	code := result.StorageError
	switch {
	case result.CodeOf(err) != result.Unknown:
		return err
	case errors.Is(err, node.ErrPipelineExists):
		code = result.PipelineExists
	case errors.Is(err, node.ErrUnknownPipeline):
		code = result.UnknownPipeline
	case errors.Is(err, event.ErrInvalidPipeline):
		code = result.InvalidPipelineName
	case errors.Is(err, event.ErrInvalidPriority):
		code = result.InvalidPriority
	case errors.Is(err, jurisdiction.ErrEmpty), errors.Is(err, jurisdiction.ErrUnknownCode), errors.Is(err, jurisdiction.ErrUnknownBit):
		code = result.InvalidMask
	case errors.Is(err, node.ErrInvalidSpec), errors.Is(err, node.ErrPipelineDeclared), errors.Is(err, node.ErrUnknownHub):
		code = result.InvalidRequest
	case errors.Is(err, context.DeadlineExceeded):
		code = result.Timeout
	case errors.Is(err, node.ErrClosed):
		code = result.NotReady
	}
	return result.New(code, err.Error())
}

func pipelineInfo(n *node.Node, p node.PipelineSpec) admin.PipelineInfo {
	ret := "forever"
	if p.Retention > 0 {
		ret = p.Retention.String()
	}
	retBytes := "none"
	if p.RetentionBytes > 0 {
		retBytes = config.Size(p.RetentionBytes).String()
	}
	return admin.PipelineInfo{Name: p.Name, Partitions: p.Partitions, TotalPartitions: p.NumPartitions(), Retention: ret,
		RetentionBytes: retBytes, DefaultPriority: p.DefaultPriority, DefaultJurisdiction: p.DefaultJurisdiction,
		CleanupPolicy: orDefault(p.CleanupPolicy, node.CleanupDelete), MaxMessageBytes: n.MaxMessageBytes(p), Declared: p.Declared}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// pipelineChange reads the settings an admin alter names.
func pipelineChange(r admin.AlterPipeline) (node.PipelineChange, error) {
	var ch node.PipelineChange
	switch r.Retention {
	case "":
	case "forever":
		ch.Retention = new(time.Duration)
	default:
		d, err := time.ParseDuration(r.Retention)
		if err != nil || d < 0 {
			return ch, result.New(result.InvalidRequest, fmt.Sprintf("retention %q is not a duration such as 72h; give one, or forever", r.Retention))
		}
		ch.Retention = &d
	}
	switch r.RetentionBytes {
	case "":
	case "none", "0", "-1":
		ch.RetentionBytes = new(int64)
	default:
		sz, err := config.ParseSize(r.RetentionBytes)
		if err != nil {
			return ch, result.New(result.InvalidRequest, fmt.Sprintf("retention bytes %q is not a size such as 10GiB or 1073741824; give one, or none for no limit", r.RetentionBytes))
		}
		b := int64(sz)
		ch.RetentionBytes = &b
	}
	if r.DefaultJurisdiction != "" {
		ch.DefaultJurisdiction = &r.DefaultJurisdiction
	}
	if r.DefaultPriority != "" {
		ch.DefaultPriority = &r.DefaultPriority
	}
	if r.CleanupPolicy != "" {
		p, err := node.ParseCleanupPolicy(r.CleanupPolicy)
		if err != nil {
			return ch, result.New(result.InvalidRequest, err.Error())
		}
		ch.CleanupPolicy = &p
	}
	if r.MaxMessageBytes != "" {
		b, err := maxMessageBytes(r.MaxMessageBytes)
		if err != nil {
			return ch, err
		}
		ch.MaxMessageBytes = &b
	}
	if ch.Empty() {
		return ch, result.New(result.InvalidRequest, fmt.Sprintf("nothing to change in pipeline %q: give a retention, retention bytes, default jurisdiction, default priority, cleanup policy or max message bytes", r.Pipeline))
	}
	return ch, nil
}

// maxMessageBytes reads an admin request's max message bytes: a size, or
// "default" (0: the node's event limit).
func maxMessageBytes(v string) (int64, error) {
	if v == "default" {
		return 0, nil
	}
	sz, err := config.ParseSize(v)
	if err == nil {
		err = node.CheckMaxMessageBytes(int64(sz))
	}
	if err != nil {
		return 0, result.New(result.InvalidRequest, fmt.Sprintf("max message bytes %q: %v; give a size such as 4MiB, or default for the node's event limit", v, err))
	}
	return int64(sz), nil
}
