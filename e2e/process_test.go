package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
)

func produceN(t *testing.T, addr, pipeline string, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errs := make(chan error, n)
	for i := from; i < from+n; i++ {
		p.Send(client.Event{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf(`{"i":%d}`, i))}, func(r client.Result) { errs <- r.Err })
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestProcessorCLI: sense processor create, list, describe, pause, resume,
// reset and delete against a running node; a created processor runs again
// after the node is killed and started; a deleted one does not, and one
// created again under its name starts from the beginning (its group's
// offsets went with it); a processor of the config file cannot be deleted.
func TestProcessorCLI(t *testing.T) {
	cf := filepath.Join(t.TempDir(), "sense.yaml")
	os.WriteFile(cf, []byte(fmt.Sprintf("processors:\n  - {name: from-config, from: {pipeline: clicks}, sink: {type: file, dir: %q}}\n", t.TempDir())), 0o644)
	n := startNode(t, t.TempDir(), "--config", cf)
	files := t.TempDir()
	pf := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pf, []byte(fmt.Sprintf("processors:\n  - {name: to-files, from: {pipeline: clicks}, sink: {type: file, dir: %q}, batch: {linger: 2ms}}\n", files)), 0o644)
	if out, err := n.sense("", "processor", "create", "--config", pf); err != nil || !strings.Contains(out, "to-files") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if _, err := n.sense("", "processor", "create", "--config", pf); err == nil || !strings.Contains(err.Error(), "runs already") {
		t.Fatalf("a second create of the same name: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("processors:\n  - {name: x, from: {pipeline: clicks}, sink: {type: webhook}}\n"), 0o644)
	if _, err := n.sense("", "processor", "create", "--config", bad); err == nil || !strings.Contains(err.Error(), "processors[0].sink.url is missing") {
		t.Fatalf("a bad config: %v", err)
	}
	produceN(t, n.native, "clicks", 0, 500)
	describe := func() admin.ProcessorInfo {
		out, err := n.sense("", "processor", "describe", "to-files", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var ps []admin.ProcessorInfo
		if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 1 {
			t.Fatalf("describe --json: %v\n%s", err, out)
		}
		return ps[0]
	}
	waitUntil(t, "500 delivered", func() bool { return describe().Delivered == 500 })
	if out, err := n.sense("", "processor", "describe", "to-files"); err != nil || !strings.Contains(out, "PARTITION") || !strings.Contains(out, "running") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	if out, err := n.sense("", "processor", "pause", "to-files"); err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	produceN(t, n.native, "clicks", 500, 100)
	time.Sleep(300 * time.Millisecond) // a running processor would deliver meanwhile
	if d := describe(); d.Delivered != 500 || d.LagEvents != 100 {
		t.Fatalf("paused, yet: delivered %d, lag %d", d.Delivered, d.LagEvents)
	}
	if _, err := n.sense("", "processor", "reset", "to-files", "--to", "end"); err != nil {
		t.Fatal(err)
	}
	if d := describe(); d.State != "paused" {
		t.Fatalf("reset resumed a paused processor: %+v", d)
	}
	if out, err := n.sense("", "processor", "resume", "to-files"); err != nil || !strings.Contains(out, "running") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	produceN(t, n.native, "clicks", 600, 50)
	waitUntil(t, "the 50 after the reset delivered", func() bool { return describe().Delivered == 550 })
	if out, err := n.sense("", "processor", "list"); err != nil || !strings.Contains(out, "to-files") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := n.sense("", "processor", "describe", "nope"); err == nil || !strings.Contains(err.Error(), `no processor "nope"`) {
		t.Fatalf("describe of an unknown processor: %v", err)
	}
	// A created processor outlives the node: it is kept in the
	// committed-offsets log, and runs again after a kill -9 and a start,
	// from its committed offsets.
	n.kill()
	n.start()
	waitUntil(t, "the created processor running again", func() bool {
		out, err := n.sense("", "processor", "list")
		return err == nil && strings.Contains(out, "to-files")
	})
	produceN(t, n.native, "clicks", 650, 50)
	waitUntil(t, "the 50 after the restart delivered", func() bool {
		d := describe()
		return d.State == "running" && d.LagEvents == 0 && d.Delivered >= 50
	})

	// Delete: refused for an unknown name and for the config file's
	// processor; a created one stops, and stays deleted after a kill -9.
	if _, err := n.sense("", "processor", "delete", "nope"); err == nil || !strings.Contains(err.Error(), `no processor "nope"`) {
		t.Fatalf("delete of an unknown processor: %v", err)
	}
	if _, err := n.sense("", "processor", "delete", "from-config"); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("delete of the config file's processor: %v", err)
	}
	if out, err := n.sense("", "processor", "delete", "to-files"); err != nil || !strings.Contains(out, "deleted processor to-files") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	gone := func(when string) {
		t.Helper()
		out, err := n.sense("", "processor", "list")
		if err != nil || strings.Contains(out, "to-files") || !strings.Contains(out, "from-config") {
			t.Fatalf("list %s: %v\n%s", when, err, out)
		}
		if _, err := n.sense("", "processor", "describe", "to-files"); err == nil {
			t.Fatalf("describe %s: the deleted processor is still there", when)
		}
	}
	gone("after the delete")
	if _, err := n.sense("", "processor", "delete", "to-files"); err == nil || !strings.Contains(err.Error(), `no processor "to-files"`) {
		t.Fatalf("a second delete: %v", err)
	}
	before := len(fileOffsets(t, files))
	produceN(t, n.native, "clicks", 700, 50)
	n.kill()
	n.start()
	waitUntil(t, "the config file's processor running again", func() bool {
		out, err := n.sense("", "processor", "list")
		return err == nil && strings.Contains(out, "from-config")
	})
	gone("after a kill -9 and a start")
	time.Sleep(300 * time.Millisecond) // a processor that came back would deliver meanwhile
	if after := len(fileOffsets(t, files)); after != before {
		t.Fatalf("the deleted processor wrote %d events after its deletion", after-before)
	}
	// The same name again starts from the beginning of clicks: its group's
	// offsets were deleted with it.
	files2 := t.TempDir()
	os.WriteFile(pf, []byte(fmt.Sprintf("processors:\n  - {name: to-files, from: {pipeline: clicks}, sink: {type: file, dir: %q}, batch: {linger: 2ms}}\n", files2)), 0o644)
	if out, err := n.sense("", "processor", "create", "--config", pf); err != nil || !strings.Contains(out, "to-files") {
		t.Fatalf("create after delete: %v\n%s", err, out)
	}
	want := map[string]bool{}
	for _, r := range n.consumeAll("clicks") {
		want[fmt.Sprintf("%s/%d/%d", r.Pipeline, r.Partition, r.Offset)] = true
	}
	if len(want) != 750 {
		t.Fatalf("clicks holds %d events, want 750", len(want))
	}
	waitUntil(t, "every event of clicks in the new processor's files", func() bool { return len(fileOffsets(t, files2)) >= len(want) })
	checkOnce(t, "the processor created again", fileOffsets(t, files2), want)
	n.stop()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessStandaloneKill9: sense process runs a file processor against
// a remote node; it is killed with SIGKILL twice mid-stream and started
// again on the same state directory; the files hold every event once.
func TestProcessStandaloneKill9(t *testing.T) {
	n := startNode(t, t.TempDir())
	files, state := t.TempDir(), t.TempDir()
	pf := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pf, []byte(fmt.Sprintf("processors:\n  - {name: standalone, from: {pipeline: feed}, sink: {type: file, dir: %q}, rate: 3000/s, batch: {max_events: 200, linger: 2ms}}\n", files)), 0o644)
	const total = 12000
	produceN(t, n.native, "feed", 0, total)
	start := func() *exec.Cmd {
		cmd := exec.Command(senseBin, "process", "--config", pf, "--addr", n.native, "--state-dir", state)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	for i := 0; i < 2; i++ {
		cmd := start()
		time.Sleep(time.Duration(800+400*i) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("killed sense process with %d events in files", len(fileOffsets(t, files)))
	}
	cmd := start()
	waitUntil(t, "every event in the files", func() bool { return len(fileOffsets(t, files)) >= total })
	want := map[string]bool{}
	for _, r := range n.consumeAll("feed") {
		want[fmt.Sprintf("%s/%d/%d", r.Pipeline, r.Partition, r.Offset)] = true
	}
	checkOnce(t, "standalone file", fileOffsets(t, files), want)
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sense process after SIGINT: %v", err)
	}
	n.stop()
}

// TestProcessStandaloneShared: two sense process instances run the same
// file processor against one node, as members of one group at the node's
// coordinator (--kafka-addr): they share the partitions; one is killed
// with SIGKILL mid-stream and the other takes its partitions over; the
// files hold every event once.
func TestProcessStandaloneShared(t *testing.T) {
	n := startNode(t, t.TempDir())
	files := t.TempDir()
	pf := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pf, []byte(fmt.Sprintf("processors:\n  - {name: shared, from: {pipeline: feed}, sink: {type: file, dir: %q}, rate: 2000/s, batch: {max_events: 200, linger: 2ms}}\n", files)), 0o644)
	// Writes feed's three lanes: events of every priority.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: n.native})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "feed"})
	if err != nil {
		t.Fatal(err)
	}
	const total = 12000
	errs := make(chan error, total)
	for i := 0; i < total; i++ {
		p.Send(client.Event{Value: []byte(fmt.Sprintf("e%d", i)), HasPriority: true, Priority: event.Priority(i % 3)}, func(r client.Result) { errs <- r.Err })
	}
	for i := 0; i < total; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	c.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(senseBin, "process", "--config", pf, "--addr", n.native, "--kafka-addr", n.kafka)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	a, b := start(), start()
	// The group at the node has both as members, each with partitions.
	kc, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	waitUntil(t, "two members sharing the partitions", func() bool {
		dg, err := kadm.NewClient(kc).DescribeGroups(ctx, "processor.shared")
		if err != nil {
			return false
		}
		g := dg["processor.shared"]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if raw, _ := m.Assigned.Raw(); len(raw) == 0 {
				return false
			}
		}
		return true
	})
	waitUntil(t, "a third of the events in the files", func() bool { return len(fileOffsets(t, files)) >= total/3 })
	a.Process.Kill()
	a.Wait()
	t.Logf("killed one sense process with %d events in files", len(fileOffsets(t, files)))
	waitUntil(t, "every event in the files", func() bool { return len(fileOffsets(t, files)) >= total })
	want := map[string]bool{}
	for _, r := range n.consumeAll("feed") {
		want[fmt.Sprintf("%s/%d/%d", r.Pipeline, r.Partition, r.Offset)] = true
	}
	checkOnce(t, "shared standalone file", fileOffsets(t, files), want)
	b.Process.Signal(os.Interrupt)
	if err := b.Wait(); err != nil {
		t.Fatalf("sense process after SIGINT: %v", err)
	}
	n.stop()
}
