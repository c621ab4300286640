package kafkaclients

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
)

// threeHubsBody: two hubs of MA and one of SN, each on the three nodes.
const threeHubsBody = `jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakhla, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
pipelines: [{name: payments, partitions: 1}]
`

// TestClusterKcatJurisdictionView: kcat, which knows nothing of hubs,
// produces keyed and keyless lines to the jurisdiction view payments.MA of
// a three-hub cluster with librdkafka's default partitioner; every line is
// acknowledged, read back through the view, and `sense audit` on every
// node finds them all in the MA hubs with the mask MA, none in dakar (SN),
// and no violation.
func TestClusterKcatJurisdictionView(t *testing.T) {
	kcat := needKcat(t)
	c := startSenseClusterOf(t, threeHubsBody)
	const n = 200
	var in strings.Builder
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&in, "k%d:view-%d\n", i, i)
		} else {
			fmt.Fprintf(&in, ":view-%d\n", i)
		}
	}
	if out, err := kcatRun(t, kcat, in.String(), "-b", c.bootstrap(), "-P", "-t", "payments.MA", "-K", ":",
		"-X", "enable.idempotence=true", "-X", "acks=all"); err != nil {
		t.Fatalf("kcat -P -t payments.MA: %v\n%s", err, out)
	}
	out, err := kcatRun(t, kcat, "", "-b", c.bootstrap(), "-C", "-t", "payments.MA", "-o", "beginning", "-e", "-J")
	if err != nil {
		t.Fatalf("kcat -C -t payments.MA: %v", err)
	}
	got := map[string]bool{}
	for _, m := range jsonLines[kcatMessage](t, out) {
		if m.Topic != "payments.MA" || m.Payload == nil || got[*m.Payload] || m.Partition < 0 || m.Partition >= 6 {
			t.Fatalf("kcat -C: message %+v: not of payments.MA's 6 partitions, or read twice", m)
		}
		got[*m.Payload] = true
	}
	if len(got) != n {
		t.Fatalf("kcat -C read %d of the %d lines back through payments.MA", len(got), n)
	}
	// Every replica holds every line (acks=all), once its high watermark
	// has caught up: a follower learns the last commit a message later.
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, err := c.sense(0, "audit", "--pipeline", "payments", "--output", "json")
		if err != nil {
			t.Fatalf("sense audit: %v\n%s", err, raw)
		}
		var rep struct {
			Nodes []admin.AuditReport `json:"nodes"`
			OK    bool                `json:"ok"`
		}
		if err := json.Unmarshal(raw, &rep); err != nil || !rep.OK || len(rep.Nodes) != 3 {
			t.Fatalf("sense audit: %v\n%s", err, raw)
		}
		complete := true
		for _, node := range rep.Nodes {
			ma := int64(0)
			for _, h := range node.Hubs {
				if h.Violations != 0 || h.Hub == "dakar" && h.Records != 0 {
					t.Fatalf("node %s, hub %s: %+v", node.Node, h.Hub, h)
				}
				if h.Jurisdiction == "MA" {
					ma += h.Masks["MA"]
				}
			}
			complete = complete && ma == n
		}
		if complete {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15s, not every node holds the %d lines with mask MA in its MA hubs:\n%s", n, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
