// Package e2e runs the sense binary as a user would: a real server process
// on loopback, driven by the CLI and by the Go client, stopped with
// SIGTERM and killed with SIGKILL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/loopback"
)

var senseBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sense-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	senseBin = filepath.Join(dir, "sense")
	out, err := exec.Command("go", "build", "-o", senseBin, "github.com/sensehq/sense/cmd/sense").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build sense: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n loopback addresses whose ports differ.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	a, err := loopback.Addrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// node is a sense serve process.
type node struct {
	t          testing.TB
	cmd        *exec.Cmd
	data       string
	native     string
	http       string
	kafka      string
	extra      []string
	stdout     bytes.Buffer
	stderrPath string
	logs       []string // every start's stderrPath, oldest first
}

func startNode(t testing.TB, data string, extra ...string) *node {
	t.Helper()
	ports := freePorts(t, 3)
	n := &node{t: t, data: data, native: ports[0], http: ports[1], kafka: ports[2], extra: extra}
	n.start()
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	args := append([]string{"serve", "--data", n.data, "--native-addr", n.native, "--http-addr", n.http, "--kafka-addr", n.kafka, "--quic-addr", "off"}, n.extra...)
	n.cmd = exec.Command(senseBin, args...)
	n.stdout.Reset()
	n.cmd.Stdout = &n.stdout
	n.stderrPath = filepath.Join(t.TempDir(), "stderr.log")
	n.logs = append(n.logs, n.stderrPath)
	f, err := os.Create(n.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stderr = f
	n.cmd.Env = append(os.Environ(), "SENSE_CONFIG=")
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Kill()
			n.cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + n.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if n.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs, _ := os.ReadFile(n.stderrPath)
	t.Fatalf("sense serve did not become ready:\n%s", logs)
}

// noErrors fails the test when a run of the node (every start's log)
// logged an error or panicked.
func (n *node) noErrors() {
	n.t.Helper()
	for i, path := range n.logs {
		logs, err := os.ReadFile(path)
		if err != nil {
			n.t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(logs), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				n.t.Fatalf("run %d of the node logged an error or panicked:\n%s", i+1, logs)
			}
		}
	}
}

// stop sends SIGTERM and requires a clean exit.
func (n *node) stop() {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		logs, _ := os.ReadFile(n.stderrPath)
		n.t.Fatalf("sense serve exited with %v after SIGTERM:\n%s", err, logs)
	}
}

// kill sends SIGKILL: no shutdown at all.
func (n *node) kill() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// sense runs a CLI command against the node.
func (n *node) sense(stdin string, args ...string) (string, error) {
	cmd := exec.Command(senseBin, append(args, "--addr", n.native)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

type consumed struct {
	Pipeline      string            `json:"pipeline"`
	Partition     int32             `json:"partition"`
	Hub           string            `json:"hub"`
	Offset        int64             `json:"offset"`
	Key           *string           `json:"key"`
	Value         *string           `json:"value"`
	Jurisdictions []string          `json:"jurisdictions"`
	Priority      string            `json:"priority"`
	Timestamp     string            `json:"timestamp"`
	Headers       map[string]string `json:"headers"`
}

func (n *node) consumeAll(pipeline string) []consumed {
	n.t.Helper()
	out, err := n.sense("", "consume", "--pipeline", pipeline, "--from", "beginning", "--output", "json")
	if err != nil {
		n.t.Fatal(err)
	}
	var recs []consumed
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r consumed
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			n.t.Fatalf("consume printed a line that is not JSON: %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestProduceConsumeRestart: the CLI produces lines, consumes them back as
// JSON, the node restarts (SIGTERM, exit 0), and they are all still there.
func TestProduceConsumeRestart(t *testing.T) {
	n := startNode(t, t.TempDir())
	var lines []string
	for i := 0; i < 200; i++ {
		lines = append(lines, fmt.Sprintf("user%d:event-%d", i%7, i))
	}
	out, err := n.sense(strings.Join(lines, "\n")+"\n", "produce", "--pipeline", "orders", "--key-sep", ":", "--priority", "medium")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "acknowledged: 200") {
		t.Fatalf("produce printed %q", out)
	}
	check := func() {
		recs := n.consumeAll("orders")
		if len(recs) != 200 {
			t.Fatalf("consumed %d events, want 200", len(recs))
		}
		seen := map[string]bool{}
		keyPart := map[string]int32{}
		for _, r := range recs {
			if r.Value == nil || r.Key == nil || r.Priority != "medium" || r.Hub != "local" || r.Pipeline != "orders" {
				t.Fatalf("record %+v", r)
			}
			seen[*r.Value] = true
			if p, ok := keyPart[*r.Key]; ok && p != r.Partition {
				t.Fatalf("key %s in partitions %d and %d", *r.Key, p, r.Partition)
			}
			keyPart[*r.Key] = r.Partition
		}
		for i := 0; i < 200; i++ {
			if !seen[fmt.Sprintf("event-%d", i)] {
				t.Fatalf("event-%d missing", i)
			}
		}
	}
	check()
	n.stop()
	n.start()
	check()
	// A refused event makes produce exit non-zero and say why.
	out, err = n.sense("x\n", "produce", "--pipeline", "bad name!")
	if err == nil || !strings.Contains(strings.ToLower(out+err.Error()), "invalid pipeline name") {
		t.Fatalf("produce to an invalid pipeline name: %q, %v", out, err)
	}
	n.stop()
}

// TestKillDuringProduce: a producer streams events, the server is killed
// with SIGKILL mid-stream, restarted, and every acknowledged event is there.
func TestKillDuringProduce(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: n.native})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "stream", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	enough := make(chan struct{})
	var once sync.Once
	sent := 0
	for sent < 200000 {
		v := fmt.Sprintf("ev-%d", sent)
		prod.Send(client.Event{Value: []byte(v)}, func(r client.Result) {
			if r.Err == nil {
				mu.Lock()
				acked[v] = true
				if len(acked) >= 20000 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
		sent++
		if sent == 30000 {
			// Kill once enough are acknowledged, while more are in flight.
			select {
			case <-enough:
			case <-time.After(60 * time.Second):
				t.Fatal("no acknowledgements")
			}
			n.kill()
			break
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	prod.Flush(fctx)
	fcancel()
	c.Close()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	n.start()
	recs := n.consumeAll("stream")
	got := map[string]bool{}
	for _, r := range recs {
		if got[*r.Value] {
			t.Fatalf("%s stored twice", *r.Value)
		}
		got[*r.Value] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for v := range acked {
		if !got[v] {
			t.Fatalf("acknowledged event %s lost after SIGKILL (%d acknowledged, %d stored)", v, want, len(got))
		}
	}
	t.Logf("%d events acknowledged before the kill, %d stored after restart", want, len(got))
	n.stop()
}

const threeHubs = `
jurisdictions: [MA, SN, NG]
groups: {ECOWAS: [SN, NG]}
hubs:
  - {name: tangier, jurisdiction: MA, status: %s}
  - {name: dakhla,  jurisdiction: MA, status: %s}
  - {name: dakar,   jurisdiction: SN}
pipelines:
  - {name: payments, partitions: 2}
`

// TestJurisdictionAndReload: on three hubs (MA, MA, SN) events land only in
// hubs of their mask, events with no hub in their mask are refused with
// NO_COMPLIANT_HUB, and a SIGHUP that takes the MA hubs down reroutes new
// events at once, without dropping the connection's node.
func TestJurisdictionAndReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sense.yaml")
	write := func(st1, st2 string) {
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(threeHubs, st1, st2)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("up", "up")
	n := startNode(t, filepath.Join(dir, "data"), "--config", cfgPath)
	hubCode := map[string]string{"tangier": "MA", "dakhla": "MA", "dakar": "SN"}
	for _, j := range []string{"MA", "SN", "MA,SN", "ECOWAS", "*"} {
		if out, err := n.sense("a-"+j+"\nb-"+j+"\n", "produce", "--pipeline", "payments", "--jurisdiction", j); err != nil {
			t.Fatalf("produce %s: %v %s", j, err, out)
		}
	}
	out, err := n.sense("ng\n", "produce", "--pipeline", "payments", "--jurisdiction", "NG")
	if err == nil || !strings.Contains(out, "refused NO_COMPLIANT_HUB: 1") {
		t.Fatalf("produce with mask NG (no hub): %q, %v", out, err)
	}
	recs := n.consumeAll("payments")
	if len(recs) != 10 {
		t.Fatalf("%d events stored, want 10", len(recs))
	}
	for _, r := range recs {
		ok := false
		for _, j := range r.Jurisdictions {
			ok = ok || j == hubCode[r.Hub]
		}
		if !ok {
			t.Fatalf("event %s with jurisdictions %v stored in hub %s (%s)", *r.Value, r.Jurisdictions, r.Hub, hubCode[r.Hub])
		}
	}
	// Take both MA hubs down and reload.
	write("down", "down")
	n.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := n.sense("", "route", "explain", "--pipeline", "payments", "--jurisdiction", "MA")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "no buffer is eligible") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not take the MA hubs down:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err = n.sense("ma-after\n", "produce", "--pipeline", "payments", "--jurisdiction", "MA")
	if err == nil || !strings.Contains(out, "refused NO_COMPLIANT_HUB: 1") {
		t.Fatalf("MA event after the MA hubs went down: %q, %v", out, err)
	}
	if out, err := n.sense("both-after\n", "produce", "--pipeline", "payments", "--jurisdiction", "MA,SN"); err != nil {
		t.Fatalf("MA,SN event after reload: %v %s", err, out)
	}
	for _, r := range n.consumeAll("payments") {
		if *r.Value == "both-after" && r.Hub != "dakar" {
			t.Fatalf("MA,SN event stored in %s after the MA hubs went down", r.Hub)
		}
		if *r.Value == "ma-after" {
			t.Fatal("refused event was stored")
		}
	}
	n.stop()
}
