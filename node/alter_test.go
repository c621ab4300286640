package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// alterNode is a node on fs with two hubs (tangier MA, dakar SN), a
// pipeline of the config file (declared) and small segments, so that a
// few events fill sealed segments retention can delete.
func alterNode(t *testing.T, fs vfs.FS) *Node {
	t.Helper()
	reg, err := jurisdiction.New([]string{"MA", "SN"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{
		DataDir:      "/data",
		FS:           fs,
		Registry:     reg,
		Hubs:         []HubSpec{{Name: "tangier", Jurisdiction: "MA"}, {Name: "dakar", Jurisdiction: "SN"}},
		Pipelines:    []PipelineSpec{{Name: "declared", Partitions: 1, DefaultPriority: "low", DefaultJurisdiction: "*"}},
		Durability:   seglog.Durability{Mode: seglog.SyncAlways},
		SegmentBytes: 4 << 10,
		Logger:       quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// slotOf returns the hub and lane of a pipeline's partition.
func slotOf(t *testing.T, n *Node, pipeline string, partition int32) Slot {
	t.Helper()
	spec, ok := n.Pipeline(pipeline)
	if !ok {
		t.Fatalf("no pipeline %q", pipeline)
	}
	return spec.Layout()[partition]
}

// TestAlterPipeline: a node alone applies a change of settings at once:
// an event naming no jurisdiction or priority is routed by the new
// defaults, a buffer's retention shrinks to the new limit without a roll,
// validation changes nothing, and bad values, layouts, unknown and
// declared pipelines are refused with what to do. The change is durable:
// it is there after a power cut and a reopen.
func TestAlterPipeline(t *testing.T) {
	mem := vfs.NewMem()
	n := alterNode(t, mem)
	if err := n.CreatePipeline(PipelineSpec{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	bare := Event{Value: []byte("no jurisdiction, no priority")}
	if r := produceOne(t, n, "orders", bare); r.Code != result.OK || slotOf(t, n, "orders", r.Partition).Lane != event.Low {
		t.Fatalf("before the change: %+v, want the low lane", r)
	}

	// Validation only: nothing changes.
	want, err := n.ValidateAlter("orders", PipelineChange{DefaultPriority: ptr("critical")})
	if err != nil || want.DefaultPriority != "critical" {
		t.Fatalf("ValidateAlter: %+v, %v", want, err)
	}
	if spec, _ := n.Pipeline("orders"); spec.DefaultPriority != "low" {
		t.Fatalf("ValidateAlter changed the default priority to %q", spec.DefaultPriority)
	}

	spec, err := n.AlterPipeline("orders", PipelineChange{DefaultPriority: ptr("Critical"), DefaultJurisdiction: ptr("SN")})
	if err != nil {
		t.Fatal(err)
	}
	if spec.DefaultPriority != "critical" || spec.DefaultJurisdiction != "SN" || spec.Retention != 0 {
		t.Fatalf("spec after the change: %+v", spec)
	}
	r := produceOne(t, n, "orders", bare)
	if got := slotOf(t, n, "orders", r.Partition); r.Code != result.OK || got != (Slot{Hub: "dakar", Lane: event.Critical}) {
		t.Fatalf("after the change: %+v in %+v, want dakar's critical lane", r, got)
	}
	// An event that names its own keeps them.
	named := Event{Value: []byte("MA, medium"), Mask: 1, HasPriority: true, Priority: event.Medium}
	if r := produceOne(t, n, "orders", named); slotOf(t, n, "orders", r.Partition) != (Slot{Hub: "tangier", Lane: event.Medium}) {
		t.Fatalf("an event naming MA and medium: %+v", r)
	}

	// A Kafka batch without routing headers takes the new default
	// jurisdiction too: tangier (MA) refuses it.
	if _, code, why := n.AppendRaw(context.Background(), "orders", 0, rawBatch()); code != result.PolicyViolation || !strings.Contains(why, "SN") {
		t.Fatalf("a raw batch without headers to tangier with default jurisdiction SN: %v (%s)", code, why)
	}

	// Retention: fill dakar's low lane past a few segments, then limit
	// it; the buffer deletes its oldest segments without another append.
	low := int32(3)
	if slotOf(t, n, "orders", low) != (Slot{Hub: "dakar", Lane: event.Low}) {
		t.Fatalf("partition 3 is %+v", slotOf(t, n, "orders", low))
	}
	appendN(t, n, "orders", low, 200)
	buf, _ := n.buffer("orders", low)
	if buf.StartOffset() != 0 {
		t.Fatalf("start %d before any retention", buf.StartOffset())
	}
	if _, err := n.AlterPipeline("orders", PipelineChange{Retention: ptr(time.Hour), RetentionBytes: ptr(int64(8 << 10))}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for buf.StartOffset() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the buffer kept its oldest segment 10s after retention bytes became 8 KiB")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Refusals, each naming what to do; none changes anything.
	for _, tc := range []struct {
		name   string
		change PipelineChange
		is     []error
		words  []string
	}{
		{"orders", PipelineChange{Retention: ptr(-time.Second)}, []error{ErrInvalidSpec}, []string{"retention", "-1s", "24h"}},
		{"orders", PipelineChange{RetentionBytes: ptr(int64(-5))}, []error{ErrInvalidSpec}, []string{"-5", "0 for no limit"}},
		{"orders", PipelineChange{DefaultJurisdiction: ptr("ZZ")}, []error{ErrInvalidSpec, jurisdiction.ErrUnknownCode}, []string{`"ZZ"`}},
		{"orders", PipelineChange{DefaultPriority: ptr("urgent")}, []error{ErrInvalidSpec, event.ErrInvalidPriority}, []string{`"urgent"`, "critical"}},
		{"nope", PipelineChange{DefaultPriority: ptr("low")}, []error{ErrUnknownPipeline}, []string{`"nope"`}},
		{"declared", PipelineChange{DefaultPriority: ptr("critical")}, []error{ErrPipelineDeclared}, []string{"config file", "restart"}},
	} {
		_, err := n.AlterPipeline(tc.name, tc.change)
		for _, is := range tc.is {
			if !errors.Is(err, is) {
				t.Errorf("%s %v: %v, want %v", tc.name, tc.change, err, is)
			}
		}
		for _, w := range tc.words {
			if err != nil && !strings.Contains(err.Error(), w) {
				t.Errorf("%s %v: %q does not say %q", tc.name, tc.change, err, w)
			}
		}
	}
	if spec, _ := n.Pipeline("declared"); spec.DefaultPriority != "low" {
		t.Errorf("the declared pipeline's priority became %q", spec.DefaultPriority)
	}

	// Back to the defaults with empty values; an empty change is a no-op.
	if spec, err := n.AlterPipeline("orders", PipelineChange{DefaultJurisdiction: ptr(""), DefaultPriority: ptr("")}); err != nil ||
		spec.DefaultJurisdiction != "*" || spec.DefaultPriority != "low" {
		t.Fatalf("back to the defaults: %+v, %v", spec, err)
	}
	if _, err := n.AlterPipeline("orders", PipelineChange{DefaultPriority: ptr("medium")}); err != nil {
		t.Fatal(err)
	}
	if spec, err := n.AlterPipeline("orders", PipelineChange{}); err != nil || spec.DefaultPriority != "medium" {
		t.Fatalf("empty change: %+v, %v", spec, err)
	}

	// A power cut right after the acknowledgement, then a reopen.
	mem.Crash(rand.New(rand.NewPCG(1, 2)))
	n.Close()
	n = alterNode(t, mem)
	defer n.Close()
	spec, ok := n.Pipeline("orders")
	if !ok || spec.DefaultPriority != "medium" || spec.DefaultJurisdiction != "*" || spec.Retention != time.Hour || spec.RetentionBytes != 8<<10 {
		t.Fatalf("after a crash and reopen: %+v", spec)
	}
	if r := produceOne(t, n, "orders", bare); slotOf(t, n, "orders", r.Partition).Lane != event.Medium {
		t.Fatalf("after reopen, an event without a priority went to %+v", slotOf(t, n, "orders", r.Partition))
	}
}

// TestPipelineChangeThen: merged changes keep the later value of each
// setting and the earlier one of a setting the later change leaves alone.
func TestPipelineChangeThen(t *testing.T) {
	a := PipelineChange{Retention: ptr(time.Hour), DefaultPriority: ptr("critical")}
	b := PipelineChange{Retention: ptr(time.Duration(0)), DefaultJurisdiction: ptr("SN")}
	m := a.Then(b)
	if *m.Retention != 0 || *m.DefaultPriority != "critical" || *m.DefaultJurisdiction != "SN" || m.RetentionBytes != nil {
		t.Fatalf("merged: %v", m)
	}
	if !(PipelineChange{}).Then(PipelineChange{}).Empty() {
		t.Fatal("two empty changes merged into a non-empty one")
	}
}
