package server_test

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/server"
)

// threeHubs is a node of hubs tangier and dakhla (MA) and dakar (SN) with
// the declared pipeline payments of 2 partitions per hub and lane.
func threeHubs(t *testing.T) *node.Node {
	t.Helper()
	reg, err := jurisdiction.New([]string{"MA", "SN", "NG", "KE"}, map[string][]string{"ECOWAS": {"SN", "NG"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{
		DataDir:  t.TempDir(),
		Registry: reg,
		Hubs: []node.HubSpec{
			{Name: "tangier", Jurisdiction: "MA"},
			{Name: "dakhla", Jurisdiction: "MA"},
			{Name: "dakar", Jurisdiction: "SN"},
		},
		Pipelines:  []node.PipelineSpec{{Name: "payments", Partitions: 2, DefaultPriority: "low", DefaultJurisdiction: "*"}},
		Durability: seglog.Durability{Mode: seglog.SyncNever},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestAdmin runs typed requests, and the wire form through admin.Serve:
// every refusal keeps its code.
func TestAdmin(t *testing.T) {
	n := threeHubs(t)
	a := server.NewAdmin(n)
	run := func(req admin.Request) admin.Response {
		t.Helper()
		r, err := a.Admin(req)
		if err != nil {
			t.Fatalf("%s: %v", req.Op(), err)
		}
		return r
	}
	if r := run(admin.CreatePipeline{Pipeline: "audit", Partitions: 2, DefaultJurisdiction: "ECOWAS"}); len(r.Layout) != 18 {
		t.Fatalf("create: %+v", r)
	}
	if r := run(admin.ListPipelines{}); len(r.Pipelines) != 2 || r.Pipelines[0].Name != "audit" {
		t.Fatalf("list: %+v", r.Pipelines)
	}
	r := run(admin.ExplainRoute{Pipeline: "payments", Jurisdiction: "SN", Priority: "critical"})
	eligible := 0
	for _, v := range r.Verdicts {
		if v.Eligible {
			eligible++
			if v.Hub != "dakar" || v.Lane != "critical" {
				t.Fatalf("eligible buffer %+v", v)
			}
		}
	}
	if eligible != 2 {
		t.Fatalf("%d eligible buffers for SN/critical, want 2: %+v", eligible, r.Verdicts)
	}
	r = run(admin.AlterPipeline{Pipeline: "audit", Retention: "72h", RetentionBytes: "1GiB", DefaultPriority: "critical"})
	if p := r.Pipelines[0]; p.Retention != "72h0m0s" || p.RetentionBytes != "1GiB" || p.DefaultPriority != "critical" || p.DefaultJurisdiction != "ECOWAS" || len(r.Layout) != 18 {
		t.Fatalf("alter: %+v", r)
	}
	r = run(admin.AlterPipeline{Pipeline: "audit", Retention: "forever", RetentionBytes: "none"})
	if p := r.Pipelines[0]; p.Retention != "forever" || p.RetentionBytes != "none" || p.DefaultPriority != "critical" {
		t.Fatalf("alter back to no limits: %+v", r.Pipelines[0])
	}
	if r := run(admin.GetRegistry{}); r.Registry == nil || len(r.Registry.Codes) != 4 || len(r.Registry.Groups["ECOWAS"]) != 2 {
		t.Fatalf("registry: %+v", r.Registry)
	}
	for _, tc := range []struct {
		req  admin.Request
		want result.Code
	}{
		{admin.CreatePipeline{Pipeline: "audit"}, result.PipelineExists},
		{admin.CreatePipeline{Pipeline: "bad/name"}, result.InvalidPipelineName},
		{admin.CreatePipeline{Pipeline: "x", Retention: "soon"}, result.InvalidRequest},
		{admin.CreatePipeline{Pipeline: "x", Partitions: 100000}, result.InvalidRequest},
		{admin.CreatePipeline{Pipeline: "x", DefaultJurisdiction: "ZZ"}, result.InvalidMask},
		{admin.CreatePipeline{Pipeline: "x", DefaultPriority: "urgent"}, result.InvalidPriority},
		{admin.DescribePipeline{Pipeline: "nope"}, result.UnknownPipeline},
		{admin.ExplainRoute{Pipeline: "payments", Jurisdiction: "ZZ"}, result.InvalidMask},
		{admin.SetHubStatus{Hub: "nowhere", Status: "down"}, result.InvalidRequest},
		{admin.SetHubStatus{Hub: "dakar", Status: "sideways"}, result.InvalidRequest},
		{admin.ClusterStatus{}, result.InvalidRequest}, // a node alone has no cluster
		{admin.AlterPipeline{Pipeline: "audit"}, result.InvalidRequest},
		{admin.AlterPipeline{Pipeline: "audit", Retention: "soon"}, result.InvalidRequest},
		{admin.AlterPipeline{Pipeline: "audit", RetentionBytes: "10GB"}, result.InvalidRequest},
		{admin.AlterPipeline{Pipeline: "audit", DefaultJurisdiction: "ZZ"}, result.InvalidMask},
		{admin.AlterPipeline{Pipeline: "audit", DefaultPriority: "urgent"}, result.InvalidPriority},
		{admin.AlterPipeline{Pipeline: "nope", DefaultPriority: "low"}, result.UnknownPipeline},
		{admin.AlterPipeline{Pipeline: "payments", DefaultPriority: "low"}, result.InvalidRequest}, // declared in the config
	} {
		_, err := a.Admin(tc.req)
		if result.CodeOf(err) != tc.want {
			t.Fatalf("%+v: %v (code %s), want %s", tc.req, err, result.CodeOf(err), tc.want)
		}
		// The wire form keeps the code and the message.
		body, _ := admin.Encode(tc.req)
		_, werr := admin.DecodeResponse(admin.Serve(a, body))
		if !errors.Is(werr, tc.want.Err()) || result.MessageOf(werr) != result.MessageOf(err) {
			t.Fatalf("%+v over the wire: %v, want %v", tc.req, werr, err)
		}
	}
	for body, want := range map[string]result.Code{`{"op":"nope"}`: result.InvalidRequest, `{"op":`: result.Malformed} {
		if _, err := admin.DecodeResponse(admin.Serve(a, []byte(body))); result.CodeOf(err) != want {
			t.Fatalf("%s: %v, want %s", body, err, want)
		}
	}
}
