package admin

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sensehq/sense/result"
)

var requests = []Request{
	CreatePipeline{Pipeline: "payments", Partitions: 2, Retention: "24h", DefaultPriority: "medium", DefaultJurisdiction: "MA,SN"},
	AlterPipeline{Pipeline: "payments", Retention: "72h", RetentionBytes: "10GiB", DefaultPriority: "critical", DefaultJurisdiction: "SN"},
	AlterPipeline{Pipeline: "payments", DefaultPriority: "medium"},
	ListPipelines{},
	DescribePipeline{Pipeline: "payments"},
	ExplainRoute{Pipeline: "payments", Jurisdiction: "MA", Priority: "critical"},
	SetHubStatus{Hub: "tangier", Status: "down"},
	SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}, Allow: []string{"audit"}},
	Audit{Pipeline: "payments"},
	Audit{},
	AuditLog{},
	ListHubs{},
	GetRegistry{},
	ClusterStatus{},
	CreateACLs{ACLs: []ACLInfo{{Principal: "User:alice", ResourceType: "pipeline", Pattern: "prefixed", Name: "pay", Operation: "read", Permission: "allow", Jurisdictions: []string{"SN"}}}},
	ListACLs{Filters: []ACLFilter{{Principal: "User:alice", Pattern: "match", Name: "payments"}}},
	ListACLs{},
	DeleteACLs{Filters: []ACLFilter{{ResourceType: "group", Operation: "read", Permission: "deny"}}},
	ListProcessors{},
	DescribeProcessor{Processor: "payments-to-pg"},
	PauseProcessor{Processor: "p"},
	ResumeProcessor{Processor: "p"},
	ResetProcessor{Processor: "p", To: "beginning"},
	CreateProcessor{Config: "processors:\n  - name: x\n"},
	DeleteProcessor{Processor: "x"},
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range requests {
		body, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(body)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("%s: %s decodes to %#v, %v", r.Op(), body, got, err)
		}
	}
	// The wire form is the one older clients send.
	got, err := Decode([]byte(`{"op":"route.explain","pipeline":"p","jurisdiction":"SN","priority":"low"}`))
	if err != nil || got != (ExplainRoute{Pipeline: "p", Jurisdiction: "SN", Priority: "low"}) {
		t.Fatalf("old wire form: %#v, %v", got, err)
	}
	if _, err := Decode([]byte(`{"op":"pipeline.drop"}`)); result.CodeOf(err) != result.InvalidRequest {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := Decode([]byte(`[1,2`)); result.CodeOf(err) != result.Malformed {
		t.Fatalf("bad JSON: %v", err)
	}
}

func TestResponseKeepsTheCode(t *testing.T) {
	refused := EncodeResponse(Response{Pipelines: []PipelineInfo{{Name: "x"}}}, result.New(result.UnknownPipeline, "no pipeline x"))
	resp, err := DecodeResponse(refused)
	if !errors.Is(err, result.ErrUnknownPipeline) || result.MessageOf(err) != "no pipeline x" || len(resp.Pipelines) != 0 {
		t.Fatalf("refusal: %+v, %v", resp, err)
	}
	// An error without a code is UNKNOWN; a code this version does not
	// know is UNKNOWN too.
	if _, err := DecodeResponse(EncodeResponse(Response{}, errors.New("disk on fire"))); result.CodeOf(err) != result.Unknown {
		t.Fatalf("plain error: %v", err)
	}
	if _, err := DecodeResponse([]byte(`{"error":"x","code":"FROM_THE_FUTURE"}`)); result.CodeOf(err) != result.Unknown {
		t.Fatalf("unknown code: %v", err)
	}
	ok, err := DecodeResponse(EncodeResponse(Response{Hubs: []HubInfo{{Name: "h"}}}, nil))
	if err != nil || len(ok.Hubs) != 1 {
		t.Fatalf("answer: %+v, %v", ok, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, r := range requests {
		b, _ := Encode(r)
		f.Add(b)
	}
	f.Add([]byte(`{"op":"pipeline.create","partitions":-9223372036854775808}`))
	f.Add([]byte(`{"op":1}`))
	f.Add([]byte(`{"error":"x","code":"UNKNOWN_PIPELINE","pipelines":[{}]}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := Decode(body); err == nil {
			again, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			if r2, err := Decode(again); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("re-encoded %#v does not decode back: %#v, %v", r, r2, err)
			}
		} else if c := result.CodeOf(err); c != result.Malformed && c != result.InvalidRequest {
			t.Fatalf("decode error with code %s: %v", c, err)
		}
		if _, err := DecodeResponse(body); err != nil && result.CodeOf(err) == result.OK {
			t.Fatal("an error with code OK")
		}
	})
}
