package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
)

// devMigrationHubs is a node alone of three hubs; tangier's policy and
// dakhla's status are filled in.
const devMigrationHubs = `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA, policy: {deny_pipelines: [%s]}}
  - {name: dakhla,  jurisdiction: MA, status: %s}
  - {name: dakar,   jurisdiction: SN}
pipelines:
  - {name: payments, partitions: 2}
`

// TestDevMigrationSurvivesKill: a node alone holds 5,000 events of 1 KiB
// in tangier when tangier's policy comes to deny their pipeline; while the
// migrator moves them to dakhla (at its pace, a few seconds), the process
// is killed with SIGKILL three times, each time just after a step was
// recorded, and started again on the same data. In the end tangier is
// empty, every acknowledged event is stored exactly once, in dakhla, the
// audit finds nothing wrong or awaiting, and the audit log of moves counts
// each moved event once.
func TestDevMigrationSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sense.yaml")
	writeCfg := func(deny, dakhla string) {
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(devMigrationHubs, deny, dakhla)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("", "draining")
	n := startNode(t, filepath.Join(dir, "data"), "--config", cfgPath)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adminCall := func(req admin.Request) admin.Response {
		t.Helper()
		c, err := client.Dial(ctx, client.Options{Addr: n.native})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Admin(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", req.Op(), err)
		}
		return resp
	}

	const total = 5000
	c, err := client.Dial(ctx, client.Options{Addr: n.native})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := reg.Parse("MA")
	prod, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments", MaxRetries: 10})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	pad := strings.Repeat("x", 1024)
	for i := range total {
		v := fmt.Sprintf("ev-%d-%s", i, pad)
		prod.Send(client.Event{Key: []byte(v[:8]), Value: []byte(v), Mask: ma}, func(r client.Result) {
			if r.Err != nil {
				mu.Lock()
				errs = append(errs, r.Err)
				mu.Unlock()
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	c.Close()
	if len(errs) > 0 {
		t.Fatalf("%d events refused: %v", len(errs), errs[0])
	}

	// The policy changes at run time, and in the file, which a node alone
	// reads again at each start.
	writeCfg("payments", "up")
	adminCall(admin.SetHubStatus{Hub: "dakhla", Status: "up"})
	adminCall(admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	steps := 0
	for kill := 0; kill < 3; kill++ {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if len(adminCall(admin.AuditLog{}).Moves) > steps {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no migration step recorded within a minute after %d kills", kill)
			}
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		n.kill()
		n.start()
		steps = len(adminCall(admin.AuditLog{}).Moves)
		t.Logf("kill %d: %d steps recorded", kill+1, steps)
	}

	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		rep := adminCall(admin.Audit{Pipeline: "payments"}).Audit
		done := true
		for _, h := range rep.Hubs {
			if h.Violations != 0 || h.Corrupt != 0 {
				t.Fatalf("audit of %s: %+v", h.Hub, h)
			}
			done = done && h.AwaitingMigration == 0 && (h.Hub != "tangier" || h.Records == 0)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tangier not emptied within a minute of the last restart: %+v", rep.Hubs)
		}
	}
	got := map[string]int{}
	for _, r := range n.consumeAll("payments") {
		if r.Hub != "dakhla" {
			t.Fatalf("%.12s... is in %s", *r.Value, r.Hub)
		}
		got[*r.Value]++
	}
	for i := range total {
		if v := fmt.Sprintf("ev-%d-%s", i, pad); got[v] != 1 {
			t.Fatalf("ev-%d stored %d times", i, got[v])
		}
	}
	if len(got) != total {
		t.Fatalf("%d distinct events stored, %d acknowledged", len(got), total)
	}
	moved := int64(0)
	log := adminCall(admin.AuditLog{}).Moves
	for _, m := range log {
		moved += m.Records
	}
	if moved != total {
		t.Fatalf("the audit log of moves counts %d records; %d moved", moved, total)
	}
	t.Logf("%d events moved in %d steps across three SIGKILLs", total, len(log))
	n.stop()
}
