package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/movelog"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
	"github.com/sensehq/sense/vfs"
)

// devHubs is sovereignHubs on a node alone; %s is tangier's policy.
const devHubs = `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA%s}
  - {name: dakhla, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
pipelines: [{name: payments, partitions: 1}]
`

const denyPayments = ", policy: {deny_pipelines: [payments]}"

// startDev starts a node alone from yaml on the data directory dir (which
// a test may start again), on loopback ports. The caller shuts it down.
func startDev(t *testing.T, yaml, dir string) *server.Server {
	t.Helper()
	cfg, err := config.Parse("dev.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node.DataDir = dir
	cfg.Listeners.Native, cfg.Listeners.HTTP, cfg.Listeners.Kafka = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Listeners.QUIC = config.ListenerOff
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func shutdown(t *testing.T, s *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// adminTo runs one admin request on the node alone s.
func adminTo(t *testing.T, s *server.Server, req admin.Request) admin.Response {
	t.Helper()
	resp, err := tryAdmin(t, s, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Op(), err)
	}
	return resp
}

func tryAdmin(t *testing.T, s *server.Server, req admin.Request) (admin.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: s.NativeAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return cl.Admin(ctx, req)
}

// waitAudit polls s's audit until ok says its hubs are as wanted, failing
// on any violation or damage, or after a minute.
func waitAudit(t *testing.T, s *server.Server, what string, ok func(hubs map[string]admin.AuditHub) bool) map[string]admin.AuditHub {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp := adminTo(t, s, admin.Audit{Pipeline: "payments"})
		hubs := map[string]admin.AuditHub{}
		for _, h := range resp.Audit.Hubs {
			if h.Violations != 0 || h.Corrupt != 0 {
				t.Fatalf("audit of %s: %+v", h.Hub, h)
			}
			hubs[h.Hub] = h
		}
		if ok(hubs) {
			return hubs
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within a minute: %+v", what, hubs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ingest produces events prefix-i of mask juris to s, one every 2 ms,
// until the function it returns is called; that returns the values
// acknowledged. Any refusal fails the test.
func ingest(t *testing.T, s *server.Server, prefix, juris string) func() []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, p, mask := maskedProducer(t, ctx, s.NativeAddr().String(), juris)
	var mu sync.Mutex
	var acked []string
	var errs []error
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v := fmt.Sprintf("%s-%d", prefix, i)
			p.Send(client.Event{Key: []byte(v), Value: []byte(v), Mask: mask}, func(r client.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", v, r.Err))
					return
				}
				acked = append(acked, v)
			})
		}
	}()
	return func() []string {
		t.Helper()
		close(stop)
		<-stopped
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
		cl.Close()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("%d %s events refused during the migration: %v", len(errs), prefix, errs[0])
		}
		return acked
	}
}

// checkMoveLog checks the audit log of moves of s: every entry moves
// records out of tangier for its policy, to hub dest of each record, the
// steps of a source follow one another without overlap, and the records
// they count are those stored with a sense.from header, hub by hub.
func checkMoveLog(t *testing.T, s *server.Server, got map[string][]storedRec) int64 {
	t.Helper()
	movedTo := map[string]int64{}
	for _, rs := range got {
		for _, r := range rs {
			if r.from != "" {
				movedTo[r.hub]++
			}
		}
	}
	resp := adminTo(t, s, admin.AuditLog{})
	logged := map[string]int64{}
	var total int64
	type span struct{ from, to int64 }
	steps := map[string][]span{}
	for _, m := range resp.Moves {
		if m.SourceHub != "tangier" || m.Reason != "policy" || m.Records <= 0 || m.To <= m.From || m.DestTo-m.DestFrom < m.Records { // new events may land between copies
			t.Fatalf("audit log entry %+v", m)
		}
		logged[m.DestHub] += m.Records
		total += m.Records
		sp := span{m.From, m.To}
		if ss := steps[m.Source]; len(ss) == 0 || ss[len(ss)-1] != sp { // a step of two routes has two entries
			if len(ss) > 0 && sp.from < ss[len(ss)-1].to {
				t.Fatalf("steps of %s overlap: %+v then %+v", m.Source, ss[len(ss)-1], sp)
			}
			steps[m.Source] = append(ss, sp)
		}
	}
	for hub, n := range movedTo {
		if logged[hub] != n {
			t.Fatalf("%d records moved to %s are stored; the audit log of moves accounts for %d (%+v)", n, hub, logged[hub], resp.Moves)
		}
	}
	if len(logged) != len(movedTo) {
		t.Fatalf("the audit log of moves names destinations %v; records moved are in %v", logged, movedTo)
	}
	return total
}

// TestDevMigration: on a node alone of three hubs, events stored in
// tangier (MA) must leave it once its policy denies their pipeline. With
// dakhla (MA) down, only the MA,SN ones, stored first, can: they move to
// dakar (SN), while the MA ones stay, awaiting; once dakhla is up they
// move there.
// Producers go on throughout. In the end every acknowledged event is
// stored exactly once, none in tangier, each moved one with a sense.from
// header naming its source; the audit finds no violation and nothing
// awaiting; the audit log of moves accounts for every moved record.
func TestDevMigration(t *testing.T) {
	s := sensetest.Start(t, fmt.Sprintf(devHubs, ""))
	addr := s.NativeAddr().String()
	if resp := adminTo(t, s, admin.AuditLog{}); len(resp.Moves) != 0 {
		t.Fatalf("the audit log of moves of a new node: %+v", resp.Moves)
	}
	// A node alone keeps no former designations: it refuses to
	// re-designate a hub.
	if _, err := tryAdmin(t, s, admin.SetHubStatus{Hub: "tangier", Jurisdiction: "SN"}); err == nil || !strings.Contains(err.Error(), "cannot be re-designated on a node alone") {
		t.Fatalf("re-designation on a node alone: %v", err)
	}
	// Only tangier takes events at first.
	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "draining"})
	adminTo(t, s, admin.SetHubStatus{Hub: "dakar", Status: "draining"})
	want := produceTo(t, addr, "both", "MA,SN", 200)
	want = append(want, produceTo(t, addr, "ma", "MA", 600)...)
	adminTo(t, s, admin.SetHubStatus{Hub: "dakar", Status: "up"})
	want = append(want, produceTo(t, addr, "sn", "SN", 100)...)
	before := storedOn(t, s)
	for v, rs := range before {
		if len(rs) != 1 || rs[0].hub != map[bool]string{true: "dakar", false: "tangier"}[strings.HasPrefix(v, "sn-")] {
			t.Fatalf("%s stored as %+v", v, rs)
		}
	}

	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "down"})
	adminTo(t, s, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
	during := ingest(t, s, "during", "MA,SN")
	onlyMA := func(hubs map[string]admin.AuditHub) bool {
		h := hubs["tangier"]
		return h.Records == 600 && h.AwaitingMigration == 600 && len(h.Masks) == 1 && h.Masks["MA"] == 600
	}
	waitAudit(t, s, "tangier holding its 600 MA events only", onlyMA)
	// The MA events have nowhere to go: they stay, and go on awaiting.
	time.Sleep(500 * time.Millisecond)
	waitAudit(t, s, "tangier still holding its 600 MA events", onlyMA)

	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "up"})
	late := ingest(t, s, "late", "MA")
	waitAudit(t, s, "tangier empty, nothing awaiting migration", func(hubs map[string]admin.AuditHub) bool {
		awaiting := int64(0)
		for _, h := range hubs {
			awaiting += h.AwaitingMigration
		}
		return hubs["tangier"].Records == 0 && awaiting == 0
	})
	want = append(want, during()...)
	want = append(want, late()...)

	got := storedOn(t, s)
	moved := 0
	for _, v := range want {
		rs := got[v]
		if len(rs) != 1 {
			t.Fatalf("%s stored %d times", v, len(rs))
		}
		r, was := rs[0], before[v]
		switch {
		case r.hub == "tangier":
			t.Fatalf("%s still in tangier", v)
		case strings.HasPrefix(v, "ma-") || strings.HasPrefix(v, "late-"):
			if r.hub != "dakhla" {
				t.Fatalf("MA event %s in %s", v, r.hub)
			}
		case strings.HasPrefix(v, "both-"):
			if r.hub != "dakar" {
				t.Fatalf("MA,SN event %s moved to %s while dakhla was down", v, r.hub)
			}
		case strings.HasPrefix(v, "sn-") && r.hub != "dakar":
			t.Fatalf("SN event %s in %s", v, r.hub)
		}
		inTangier := len(was) > 0 && was[0].hub == "tangier"
		if inTangier != (r.from != "") || inTangier && !strings.HasPrefix(r.from, "payments/tangier/") {
			t.Fatalf("%s, stored in %v before, has sense.from %q", v, was, r.from)
		}
		if r.from != "" {
			moved++
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d distinct values stored, %d were acknowledged", len(got), len(want))
	}
	if moved != 800 {
		t.Fatalf("%d events moved; 800 were in tangier", moved)
	}
	if logged := checkMoveLog(t, s, got); logged != int64(moved) {
		t.Fatalf("the audit log of moves accounts for %d records, %d moved", logged, moved)
	}
}

// TestDevMigrationResumesAfterRestart stops a node alone in the middle of
// a migration step, at two places, as a crash would leave it: after the
// step's first copied batch (planned, partly copied, not done), and after
// the step is recorded done but before its source is trimmed. The node is
// started again on the same data directory (its config file now denying
// payments in tangier, as the admin API did): it resumes the step, and
// every event ends stored exactly once, in dakhla, with the audit log of
// moves accounting for each once.
func TestDevMigrationResumesAfterRestart(t *testing.T) {
	for _, stage := range []string{"copied", "trim"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			var fired atomic.Int32
			undo := server.SetMigrateHook(func(s string) error {
				if s == stage {
					fired.Add(1)
					return errors.New("simulated crash")
				}
				return nil
			})
			defer undo()
			s := startDev(t, fmt.Sprintf(devHubs, ""), dir)
			adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "draining"})
			// 1 KiB values: a step's megabyte makes many destination
			// batches.
			want := produceTo(t, s.NativeAddr().String(), "big"+strings.Repeat("x", 1024), "MA", 800)
			adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "up"})
			adminTo(t, s, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"payments"}})
			for deadline := time.Now().Add(30 * time.Second); fired.Load() == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("the migrator did not reach %q within 30s", stage)
				}
				time.Sleep(5 * time.Millisecond)
			}
			shutdown(t, s)
			undo()

			// What the node left: a step of tangier's low lane planned,
			// not done (copied), or done (trim); tangier untrimmed.
			ml, err := movelog.Open(vfs.Default, filepath.Join(dir, "moves.log"), movelog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mv, ok := ml.Move("payments/tangier/0")
			ml.Close()
			if !ok || mv.From != 0 || mv.Done != (stage == "trim") {
				t.Fatalf("the step left by the stop: %+v (found %v)", mv, ok)
			}

			s = startDev(t, fmt.Sprintf(devHubs, denyPayments), dir)
			defer shutdown(t, s)
			waitAudit(t, s, "tangier empty", func(hubs map[string]admin.AuditHub) bool {
				return hubs["tangier"].Records == 0 && hubs["tangier"].AwaitingMigration == 0
			})
			got := storedOn(t, s)
			for _, v := range want {
				if rs := got[v]; len(rs) != 1 || rs[0].hub != "dakhla" || !strings.HasPrefix(rs[0].from, "payments/tangier/0/") {
					t.Fatalf("%.10s... stored as %+v; want once, in dakhla, from tangier", v, rs)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d distinct values stored, %d were acknowledged", len(got), len(want))
			}
			if logged := checkMoveLog(t, s, got); logged != 800 {
				t.Fatalf("the audit log of moves accounts for %d records; 800 moved", logged)
			}
		})
	}
}

// TestDevMigrationForgetsDeletedPipeline: a pipeline whose events moved
// out of tangier is deleted and created again; the new one's offsets start
// at 0 again, and none of its events, in a tangier that allows it again,
// is taken for a step of the old one (trimmed, or moved).
func TestDevMigrationForgetsDeletedPipeline(t *testing.T) {
	s := sensetest.Start(t, fmt.Sprintf(devHubs, ""))
	n := s.Node
	ma, err := n.Registry().Parse("MA")
	if err != nil {
		t.Fatal(err)
	}
	produce := func(prefix string, count int) {
		t.Helper()
		req := &node.ProduceRequest{Pipeline: "orders", ProducerID: -1}
		for i := range count {
			req.Events = append(req.Events, node.Event{Value: fmt.Appendf(nil, "%s-%d", prefix, i), Mask: ma})
		}
		res := make([]node.Result, count)
		if err := n.Produce(context.Background(), req, res); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Code != result.OK || r.Partition != 0 {
				t.Fatalf("produce %s: %+v; want stored in tangier's low lane (partition 0)", prefix, r)
			}
		}
	}
	create := func() {
		t.Helper()
		if err := n.CreatePipeline(node.PipelineSpec{Name: "orders", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "draining"})
	create()
	produce("old", 50)
	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "up"})
	adminTo(t, s, admin.SetHubPolicy{Hub: "tangier", Deny: []string{"orders"}})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if start, _, _ := n.Offsets("orders", 0); start == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 50 events did not leave tangier within 30s")
		}
	}
	if err := n.DeletePipeline("orders"); err != nil {
		t.Fatal(err)
	}
	adminTo(t, s, admin.SetHubPolicy{Hub: "tangier", Allow: []string{"orders"}})
	adminTo(t, s, admin.SetHubStatus{Hub: "dakhla", Status: "draining"})
	create()
	// A batch ends where the old pipeline's step did.
	produce("new0", 50)
	produce("new1", 40)
	time.Sleep(time.Second) // five rounds of the migrator
	if start, hw, code := n.Offsets("orders", 0); code != result.OK || start != 0 || hw != 90 {
		t.Fatalf("the new pipeline's tangier partition holds [%d, %d) (%s); want its 90 events, from 0", start, hw, code)
	}
	if log := adminTo(t, s, admin.AuditLog{}).Moves; len(log) != 1 || log[0].Records != 50 {
		t.Fatalf("the audit log of moves: %+v; want the old pipeline's step", log)
	}
}
