package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sensehq/sense/admin"
)

// TestHubCommands: `sense hub list|set|policy` and `sense jurisdiction list`
// on a dev node of three hubs: a policy that denies a pipeline in a hub
// sends its MA events to the other MA hub, a status of down there leaves
// none eligible, an unknown hub is refused with the hubs named, and every
// change moves the routing table version.
func TestHubCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sense.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(threeHubs, "up", "up")), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, filepath.Join(dir, "data"), "--config", cfgPath)
	version := func(out string) string {
		m := regexp.MustCompile(`routing table version (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no routing table version in %q", out)
		}
		return m[1]
	}
	out, err := n.sense("", "hub", "list")
	if err != nil || !regexp.MustCompile(`tangier\s+MA\s+up\s+-`).MatchString(out) || !strings.Contains(out, "dakar") {
		t.Fatalf("hub list: %q %v", out, err)
	}
	v0 := version(out)
	out, err = n.sense("", "hub", "policy", "tangier", "--deny", "payments")
	if err != nil || !regexp.MustCompile(`tangier\s+MA\s+up\s+payments`).MatchString(out) || version(out) == v0 {
		t.Fatalf("hub policy --deny: %q %v", out, err)
	}
	if out, err := n.sense("a\nb\nc\nd\n", "produce", "--pipeline", "payments", "--jurisdiction", "MA"); err != nil {
		t.Fatalf("produce MA: %v %s", err, out)
	}
	for _, r := range n.consumeAll("payments") {
		if r.Hub != "dakhla" {
			t.Fatalf("an MA event went to %s while tangier denies payments", r.Hub)
		}
	}
	out, err = n.sense("", "audit", "--output", "json")
	var rep struct {
		Nodes []admin.AuditReport `json:"nodes"`
		OK    bool                `json:"ok"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || len(rep.Nodes) != 1 {
		t.Fatalf("audit: %q %v", out, err)
	}
	for _, h := range rep.Nodes[0].Hubs {
		if h.Violations != 0 || (h.Hub == "dakhla") != (h.Records == 4) || h.Hub == "dakhla" && h.Masks["MA"] != 4 {
			t.Fatalf("audit of hub %s: %+v", h.Hub, h)
		}
	}
	if out, err := n.sense("", "audit"); err != nil || !regexp.MustCompile(`-\s+dakhla\s+MA\s+\d+\s+4\s+\d+\s+0\s+0\s+0\s+MA=4`).MatchString(out) {
		t.Fatalf("audit (text): %q %v", out, err)
	}
	if out, err := n.sense("", "hub", "set", "dakhla", "--status", "down"); err != nil || !regexp.MustCompile(`dakhla\s+MA\s+down`).MatchString(out) {
		t.Fatalf("hub set dakhla down: %q %v", out, err)
	}
	out, err = n.sense("e\n", "produce", "--pipeline", "payments", "--jurisdiction", "MA")
	if err == nil || !strings.Contains(out, "refused NO_COMPLIANT_HUB: 1") {
		t.Fatalf("MA event with tangier denying and dakhla down: %q %v", out, err)
	}
	out, err = n.sense("", "hub", "set", "nope", "--status", "down")
	if err == nil || !strings.Contains(err.Error(), `"nope"; the hubs are [tangier dakhla dakar]`) {
		t.Fatalf("hub set of an unknown hub: %q %v", out, err)
	}
	out, err = n.sense("", "hub", "policy", "tangier")
	if err == nil || !strings.Contains(err.Error(), "--deny") {
		t.Fatalf("hub policy without --deny or --allow: %q %v", out, err)
	}
	out, err = n.sense("", "jurisdiction", "list")
	if err != nil || !regexp.MustCompile(`MA\s+0\s+-\s+tangier,dakhla`).MatchString(out) || !regexp.MustCompile(`NG\s+2\s+ECOWAS\s+-`).MatchString(out) {
		t.Fatalf("jurisdiction list: %q %v", out, err)
	}
	out, err = n.sense("", "route", "explain", "--pipeline", "payments", "--jurisdiction", "MA")
	if err != nil || !strings.Contains(out, "routing table version") || !strings.Contains(out, "no buffer is eligible") {
		t.Fatalf("route explain: %q %v", out, err)
	}
	n.stop()
}
