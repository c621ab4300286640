package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/sensetest"
)

// alterHubs: two hubs and a pipeline of the config file.
const alterHubs = consumeHubs + `
pipelines:
  - {name: declared, partitions: 1}
`

// TestPipelineAlter: sense pipeline alter changes a pipeline's settings
// on the node, prints them, and events produced without a jurisdiction
// or priority take the new defaults; what cannot change is refused with
// what to do.
func TestPipelineAlter(t *testing.T) {
	srv := sensetest.Start(t, alterHubs)
	addr := srv.NativeAddr().String()
	if out, err := execute(t, newPipelineCmd(), "", "create", "orders", "--addr", addr); err != nil {
		t.Fatalf("create: %q, %v", out, err)
	}
	out, err := execute(t, newPipelineCmd(), "", "alter", "orders", "--addr", addr,
		"--retention", "72h", "--retention-bytes", "10GiB", "--default-jurisdiction", "SN", "--default-priority", "medium")
	if err != nil || !strings.Contains(out, "retention 72h0m0s, retention bytes 10GiB, default priority medium, default jurisdiction SN") {
		t.Fatalf("alter: %q, %v", out, err)
	}
	spec, _ := srv.Node.Pipeline("orders")
	if spec.Retention != 72*time.Hour || spec.RetentionBytes != 10<<30 || spec.DefaultPriority != "medium" || spec.DefaultJurisdiction != "SN" {
		t.Fatalf("the node's spec after alter: %+v", spec)
	}
	// Flags not given stay as they are.
	out, err = execute(t, newPipelineCmd(), "", "alter", "orders", "--addr", addr, "--retention", "forever")
	if err != nil || !strings.Contains(out, "retention forever, retention bytes 10GiB, default priority medium") {
		t.Fatalf("alter --retention forever: %q, %v", out, err)
	}

	// The Kafka message size, and compaction (on another pipeline: a
	// compacted one refuses events without a key).
	out, err = execute(t, newPipelineCmd(), "", "alter", "orders", "--addr", addr, "--max-message-bytes", "64KiB")
	if err != nil || !strings.Contains(out, "cleanup policy delete, max message bytes 65536") {
		t.Fatalf("alter --max-message-bytes: %q, %v", out, err)
	}
	out, err = execute(t, newPipelineCmd(), "", "create", "keyed", "--addr", addr, "--cleanup-policy", "compact")
	if err != nil || !strings.Contains(out, "cleanup policy compact, max message bytes 1048576") {
		t.Fatalf("create --cleanup-policy compact: %q, %v", out, err)
	}
	out, err = execute(t, newPipelineCmd(), "", "alter", "keyed", "--addr", addr, "--cleanup-policy", "compact,delete")
	if err != nil || !strings.Contains(out, "cleanup policy compact,delete") {
		t.Fatalf("alter --cleanup-policy compact,delete: %q, %v", out, err)
	}
	if a, b := func() (node.PipelineSpec, node.PipelineSpec) {
		a, _ := srv.Node.Pipeline("orders")
		b, _ := srv.Node.Pipeline("keyed")
		return a, b
	}(); a.MaxMessageBytes != 64<<10 || b.CleanupPolicy != "compact,delete" {
		t.Fatalf("the node's specs after alter: %+v, %+v", a, b)
	}

	if out, err := execute(t, newProduceCmd(), "bare\n", "--pipeline", "orders", "--addr", addr); err != nil {
		t.Fatalf("produce: %q, %v", out, err)
	}
	got := consumeJSON(t, addr, "orders")
	if len(got) != 1 {
		t.Fatalf("consumed %v, want one event", got)
	}
	for p, r := range got {
		if r["jurisdiction"] != "SN" || r["priority"] != "medium" {
			t.Fatalf("partition %d: %v; want the new defaults, jurisdiction SN and priority medium", p, r)
		}
	}

	for _, tc := range []struct {
		args  []string
		words []string
	}{
		{[]string{"alter", "orders"}, []string{"nothing to change", "--retention"}},
		{[]string{"alter", "orders", "--partitions", "4"}, []string{"--partitions 4", "CreatePartitions"}},
		{[]string{"alter", "orders", "--default-priority", "urgent"}, []string{`"urgent"`, "critical"}},
		{[]string{"alter", "orders", "--retention-bytes", "10GB"}, []string{`"10GB"`, "none"}},
		{[]string{"alter", "declared", "--retention", "1h"}, []string{"config file", "restart"}},
		{[]string{"alter", "nope", "--retention", "1h"}, []string{`"nope"`}},
		{[]string{"alter", "orders", "--cleanup-policy", "shred"}, []string{`"shred"`, "compact"}},
		{[]string{"alter", "orders", "--max-message-bytes", "1TiB"}, []string{`"1TiB"`, "default"}},
	} {
		out, err := execute(t, newPipelineCmd(), "", append(tc.args, "--addr", addr)...)
		if err == nil {
			t.Errorf("%v: %q, want an error", tc.args, out)
			continue
		}
		for _, w := range tc.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not say %q", tc.args, err, w)
			}
		}
	}
	if spec, _ := srv.Node.Pipeline("orders"); spec.DefaultPriority != "medium" {
		t.Errorf("refused alters changed the default priority to %q", spec.DefaultPriority)
	}
}
