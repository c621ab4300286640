package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/sensetest"
)

// auditUntil polls the audit of payments on every node of c until done
// holds for each node's hubs, or fails after timeout, or at once when a
// node's audit finds a violation or a damaged buffer.
func auditUntil(t *testing.T, c *sensetest.Cluster, timeout time.Duration, what string, done func(hubs map[string]admin.AuditHub) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := range c.Nodes {
		for {
			resp, err := adminAt(t, c, i, admin.Audit{Pipeline: "payments"})
			if err != nil {
				t.Fatal(err)
			}
			hubs := map[string]admin.AuditHub{}
			for _, h := range resp.Audit.Hubs {
				if h.Violations != 0 || h.Corrupt != 0 {
					t.Fatalf("n%d hub %s: %+v", i+1, h.Hub, h)
				}
				hubs[h.Hub] = h
			}
			if done(hubs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d: not %s after %v: %+v", i+1, what, timeout, hubs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestClusterMigrationOtherJurisdiction: records move to a hub of another
// jurisdiction their mask allows when no hub of their source's jurisdiction
// can take them, and those whose mask allows none stay, awaiting, until
// one can. tangier (MA) holds MA,SN events, then MA events; dakhla (MA) is
// down when tangier's policy denies payments: the MA,SN events move to
// dakar (SN), the MA events stay (flagged) until dakhla is up again, then
// move there.
func TestClusterMigrationOtherJurisdiction(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	for _, h := range []string{"dakhla", "dakar"} {
		if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: h, Status: "draining"}); err != nil {
			t.Fatal(err)
		}
	}
	want := produceMasked(t, c, 0, "both", "MA,SN", 300)
	want = append(want, produceMasked(t, c, 1, "ma", "MA", 300)...)
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakar", Status: "up"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "down"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adminAt(t, c, 2, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	auditUntil(t, c, 60*time.Second, "MA,SN events out of tangier", func(hubs map[string]admin.AuditHub) bool {
		return hubs["tangier"].Records == 300 && hubs["tangier"].AwaitingMigration == 300 && hubs["dakar"].Records == 300
	})
	// The MA events have nowhere to go: they stay while dakhla is down.
	time.Sleep(time.Second)
	for i, s := range c.Nodes {
		for v, rs := range storedOn(t, s) {
			if len(rs) != 1 {
				t.Fatalf("n%d stores %s %d times", i+1, v, len(rs))
			}
			switch r := rs[0]; {
			case strings.HasPrefix(v, "both-") && (r.hub != "dakar" || !strings.HasPrefix(r.from, "payments/tangier/")):
				t.Fatalf("n%d: %s in %s from %q, want moved to dakar", i+1, v, r.hub, r.from)
			case strings.HasPrefix(v, "ma-") && r.hub != "tangier":
				t.Fatalf("n%d: %s in %s while dakhla is down", i+1, v, r.hub)
			}
		}
	}
	if _, err := adminAt(t, c, 1, admin.SetHubStatus{Hub: "dakhla", Status: "up"}); err != nil {
		t.Fatal(err)
	}
	auditUntil(t, c, 60*time.Second, "tangier emptied", func(hubs map[string]admin.AuditHub) bool {
		return hubs["tangier"].Records == 0 && hubs["dakhla"].Records == 300
	})
	for i, s := range c.Nodes {
		got := storedOn(t, s)
		if len(got) != len(want) {
			t.Fatalf("n%d stores %d distinct values, %d were acknowledged", i+1, len(got), len(want))
		}
		for _, v := range want {
			rs := got[v]
			if len(rs) != 1 {
				t.Fatalf("n%d stores %s %d times", i+1, v, len(rs))
			}
			if hub := map[bool]string{true: "dakar", false: "dakhla"}[strings.HasPrefix(v, "both-")]; rs[0].hub != hub {
				t.Fatalf("n%d: %s in %s, want %s", i+1, v, rs[0].hub, hub)
			}
		}
	}
	resp, err := adminAt(t, c, 0, admin.AuditLog{})
	if err != nil {
		t.Fatal(err)
	}
	perDest := map[string]int64{}
	for _, m := range resp.Moves {
		if m.SourceHub != "tangier" || m.Reason != "policy" || m.Records <= 0 {
			t.Fatalf("audit log entry %+v", m)
		}
		perDest[m.DestHub] += m.Records
	}
	if perDest["dakar"] != 300 || perDest["dakhla"] != 300 || len(perDest) != 2 {
		t.Fatalf("the audit log of moves has %v records by destination hub, want 300 to dakar and 300 to dakhla", perDest)
	}
}

// TestClusterRedesignation: tangier is re-designated from MA to SN while a
// producer goes on. The MA events it stored move to dakhla (MA); its MA,SN
// events stored before them stay in tangier, re-appended (with a
// sense.from header) as the start of the buffer moves past them; those
// stored after the last MA event stay where they are; no node routes an
// MA-only event to tangier once every node routes with the change; the
// audit finds no violation at any time (the MA events count as awaiting
// migration until they move), and the audit log says why each moved.
func TestClusterRedesignation(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	for _, h := range []string{"dakhla", "dakar"} {
		if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: h, Status: "draining"}); err != nil {
			t.Fatal(err)
		}
	}
	want := produceMasked(t, c, 1, "both", "MA,SN", 100)
	want = append(want, produceMasked(t, c, 0, "ma", "MA", 300)...)
	want = append(want, produceMasked(t, c, 2, "late", "MA,SN", 100)...)
	for _, h := range []string{"dakhla", "dakar"} {
		if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: h, Status: "up"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := adminAt(t, c, 2, admin.SetHubStatus{Hub: "tangier", Jurisdiction: "SN"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(resp.Hubs, func(h admin.HubInfo) bool { return h.Name == "tangier" })
	if i < 0 || resp.Hubs[i].Jurisdiction != "SN" || !slices.Equal(resp.Hubs[i].Former, []string{"MA"}) {
		t.Fatalf("hubs after the re-designation: %+v", resp.Hubs)
	}
	// Ingest goes on: once every node routes with the change (a node
	// that has not applied it yet may still route an MA event to tangier,
	// which the campaign then moves, re-appending the late events before
	// it: docs/sovereignty.md), MA events no longer go to tangier.
	waitTables(t, c, resp.TableVersion)
	want = append(want, produceMasked(t, c, 0, "after", "MA", 200)...)
	auditUntil(t, c, 60*time.Second, "MA events out of tangier", func(hubs map[string]admin.AuditHub) bool {
		tg := hubs["tangier"]
		return tg.Jurisdiction == "SN" && tg.AwaitingMigration == 0 && tg.Records == 200 && tg.Masks["MA,SN"] == 200
	})
	for i, s := range c.Nodes {
		got := storedOn(t, s)
		if len(got) != len(want) {
			t.Fatalf("n%d stores %d distinct values, %d were acknowledged", i+1, len(got), len(want))
		}
		for _, v := range want {
			rs := got[v]
			if len(rs) != 1 {
				t.Fatalf("n%d stores %s %d times", i+1, v, len(rs))
			}
			r := rs[0]
			switch {
			case strings.HasPrefix(v, "ma-") && (r.hub != "dakhla" || !strings.HasPrefix(r.from, "payments/tangier/")):
				t.Fatalf("n%d: %s in %s from %q, want moved to dakhla", i+1, v, r.hub, r.from)
			case strings.HasPrefix(v, "both-") && (r.hub != "tangier" || !strings.HasPrefix(r.from, "payments/tangier/")):
				t.Fatalf("n%d: %s in %s from %q, want re-appended to tangier", i+1, v, r.hub, r.from)
			case strings.HasPrefix(v, "late-") && (r.hub != "tangier" || r.from != ""):
				t.Fatalf("n%d: %s in %s from %q, want left in place in tangier", i+1, v, r.hub, r.from)
			case strings.HasPrefix(v, "after-") && r.hub != "dakhla":
				t.Fatalf("n%d: %s (MA, produced after the change) in %s", i+1, v, r.hub)
			}
		}
	}
	log, err := adminAt(t, c, 1, admin.AuditLog{})
	if err != nil {
		t.Fatal(err)
	}
	perDest := map[string]int64{}
	for _, m := range log.Moves {
		if m.SourceHub != "tangier" || m.Reason != "designation" {
			t.Fatalf("audit log entry %+v", m)
		}
		perDest[m.DestHub] += m.Records
	}
	if perDest["dakhla"] != 300 || perDest["tangier"] != 100 || len(perDest) != 2 {
		t.Fatalf("the audit log of moves has %v records by destination hub, want 300 to dakhla and 100 kept in tangier", perDest)
	}
}

// TestClusterMigrationNoByteOutsideMask: tangier and dakhla (MA) are on n1
// and n2, dakar (SN) on n3 alone. 3 MiB of MA events stored in tangier are
// moved to dakhla when tangier's policy denies the pipeline: n3, outside
// their jurisdiction, receives none of their bytes over the whole run
// (the copies, their verification, the audit), while dakhla's follower
// (n1 or n2) receives them again from its leader.
func TestClusterMigrationNoByteOutsideMask(t *testing.T) {
	c := sensetest.StartCluster(t, 3, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA, nodes: [n1, n2]}
  - {name: dakhla, jurisdiction: MA, nodes: [n1, n2]}
  - {name: dakar, jurisdiction: SN, nodes: [n3]}
pipelines: [{name: payments, partitions: 1}]
`)
	recv := func(at int, from ...string) uint64 {
		var sum uint64
		for _, ps := range c.Nodes[at].PeerStats() {
			if slices.Contains(from, ps.ID) {
				sum += ps.RecvBytes
			}
		}
		return sum
	}
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "draining"}); err != nil {
		t.Fatal(err)
	}
	want := produceSized(t, c, 0, "ma", "MA", 3000, 1024)
	if _, err := adminAt(t, c, 0, admin.SetHubStatus{Hub: "dakhla", Status: "up"}); err != nil {
		t.Fatal(err)
	}
	// Between n1 and n2, whichever leads: dakhla's follower receives the
	// copies from its leader.
	ma := func() uint64 { return recv(0, "n2") + recv(1, "n1") }
	n3Before, maBefore := recv(2, "n1", "n2"), ma()
	if _, err := adminAt(t, c, 1, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	auditUntil(t, c, 90*time.Second, "tangier emptied", func(hubs map[string]admin.AuditHub) bool {
		return hubs["tangier"].Records == 0
	})
	for i := range 2 {
		got := storedOn(t, c.Nodes[i])
		for _, v := range want {
			if rs := got[v]; len(rs) != 1 || rs[0].hub != "dakhla" {
				t.Fatalf("n%d stores %.12s... as %+v; want once, in dakhla", i+1, v, rs)
			}
		}
	}
	moved := uint64(3000 * 1024 * 2) // keys and values of 1 KiB each
	n3, n12 := recv(2, "n1", "n2")-n3Before, ma()-maBefore
	if n12 < moved {
		t.Fatalf("n1 and n2 received %d bytes from each other during the migration, less than the %d bytes of the events dakhla's follower holds again", n12, moved)
	}
	if n3 > moved/20 {
		t.Fatalf("n3 (SN) received %d bytes from n1 and n2 during the migration of %d bytes of MA events", n3, moved)
	}
	t.Logf("during the migration n1 and n2 received %d bytes from each other, n3 %d", n12, n3)
}
