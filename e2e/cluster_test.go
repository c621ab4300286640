package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
)

// startProcessCluster starts three `sense serve` processes, n1 to n3, of one
// cluster holding pipeline (one hub tangier, jurisdiction MA, one partition
// per lane). dial(i, j) is the address node i is told to reach node j's
// cluster transport at, given node j listens at listen[j]: the address
// itself, or a proxy's. It returns the nodes and their Kafka addresses.
func startProcessCluster(t *testing.T, pipeline string, dial func(i, j int, listen []string) string) ([]*node, []string) {
	t.Helper()
	return startProcessClusterOf(t, fmt.Sprintf("jurisdictions: [MA]\nhubs: [{name: tangier, jurisdiction: MA}]\npipelines: [{name: %s, partitions: 1}]\n", pipeline), dial)
}

// startProcessClusterOf is startProcessCluster with body as what every
// node's config holds besides its node and cluster sections.
func startProcessClusterOf(t *testing.T, body string, dial func(i, j int, listen []string) string) ([]*node, []string) {
	t.Helper()
	root := t.TempDir()
	// Every port at once, so that they differ (loopback.Addrs holds each
	// until all are picked): three cluster listeners, then each node's
	// native, HTTP and Kafka ones.
	ports := freePorts(t, 12)
	listen, ports := ports[:3], ports[3:]
	var nodes []*node
	var seeds []string
	for i := range 3 {
		var peers []string
		for j := range 3 {
			addr := listen[j]
			if dial != nil && i != j {
				addr = dial(i, j, listen)
			}
			peers = append(peers, fmt.Sprintf("{id: n%d, addr: %s}", j+1, addr))
		}
		cfg := filepath.Join(root, fmt.Sprintf("n%d.yaml", i+1))
		yaml := fmt.Sprintf("node: {id: n%d}\ncluster: {listen: %s, peers: [%s]}\n%s", i+1, listen[i], strings.Join(peers, ", "), body)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, data: filepath.Join(root, fmt.Sprintf("data%d", i+1)), native: ports[3*i], http: ports[3*i+1], kafka: ports[3*i+2],
			extra: []string{"--config", cfg}}
		n.start()
		nodes = append(nodes, n)
		seeds = append(seeds, n.kafka)
	}
	return nodes, seeds
}

// TestClusterKillDuringProduce: three `sense serve` processes replicate a
// pipeline; a producer connected to n1 streams events while n2 and n3 are
// killed with SIGKILL and restarted in turn (one of them leads the buffer
// some of the time; n1 forwards to whichever does). Afterwards every
// acknowledged event is readable exactly once from every node.
func TestClusterKillDuringProduce(t *testing.T) {
	nodes, _ := startProcessCluster(t, "stream", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: nodes[0].native})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "stream", MaxRetries: 50})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprintf("ev-%d", i)
			prod.Send(client.Event{Value: []byte(v)}, func(r client.Result) {
				if r.Err == nil {
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				}
			})
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	sent := 0
	for round := range 3 {
		victim := nodes[1+round%2]
		send(sent, sent+500)
		sent += 500
		victim.kill()
		send(sent, sent+500)
		sent += 500
		victim.start()
	}
	fctx, fcancel := context.WithTimeout(ctx, time.Minute)
	if err := prod.Flush(fctx); err != nil {
		t.Logf("flush: %v", err)
	}
	fcancel()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("nothing was acknowledged")
	}
	// Every node converges on the same events; give followers a moment.
	for _, n := range nodes {
		var got map[string]bool
		deadline := time.Now().Add(30 * time.Second)
		for {
			got = map[string]bool{}
			dup := ""
			for _, r := range n.consumeAll("stream") {
				if got[*r.Value] {
					dup = *r.Value
				}
				got[*r.Value] = true
			}
			if dup != "" {
				t.Fatalf("%s stored twice (read from %s)", dup, n.native)
			}
			missing := 0
			mu.Lock()
			for v := range acked {
				if !got[v] {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d acknowledged events missing on the node at %s", missing, want, n.native)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("%d of %d events acknowledged across 3 kills; all readable once on every node", want, sent)
	for _, n := range nodes {
		n.stop()
	}
}

// TestClusterKillLeaderKafka: three `sense serve` processes; a franz-go
// producer (acks=all, idempotent, bootstrapped with every node) streams
// records to one partition while the node that leads it, found with
// `sense cluster status --json`, is killed with SIGKILL and restarted, five
// times in a row, then stopped with SIGTERM and restarted, three times. Afterwards every acknowledged record is stored exactly
// once and readable from every node, and nothing is stored twice. The time
// from each kill to the first acknowledgement of a record sent after it is
// logged (the failover time).
func TestClusterKillLeaderKafka(t *testing.T) {
	nodes, seeds := startProcessCluster(t, "stream", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// leaderOf asks a live node who leads stream's partition 0.
	leaderOf := func(skip int) int {
		t.Helper()
		return leaderIn(t, nodes, "stream/tangier/0", skip)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(2*time.Minute), kgo.RecordDeliveryTimeout(2*time.Minute),
		// franz-go refreshes metadata at most every 5 s by default; the
		// failover logged is the cluster's, not that wait.
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	type ackAt struct{ sent, acked time.Time }
	var ackTimes []ackAt
	var prodErrs []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	sent := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				mu.Lock()
				sent = i
				mu.Unlock()
				return
			default:
			}
			v := fmt.Sprintf("ev-%d", i)
			sentAt := time.Now()
			prod.Produce(ctx, &kgo.Record{Topic: "stream", Partition: 0, Value: []byte(v)}, func(_ *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					prodErrs = append(prodErrs, err)
					return
				}
				acked[v] = true
				ackTimes = append(ackTimes, ackAt{sentAt, time.Now()})
			})
			time.Sleep(time.Millisecond)
		}
	}()
	// Five SIGKILLs of the leader, then three SIGTERMs (a clean stop hands
	// the lead over first).
	var failovers, handovers []time.Duration
	for round := range 8 {
		time.Sleep(500 * time.Millisecond)
		victim := leaderOf(-1)
		mu.Lock()
		before := len(ackTimes)
		mu.Unlock()
		hit := time.Now()
		graceful := round >= 5
		if graceful {
			nodes[victim].cmd.Process.Signal(syscall.SIGTERM)
		} else {
			nodes[victim].kill()
		}
		// The first acknowledgement of a record sent after the signal.
		for deadline := time.Now().Add(30 * time.Second); ; {
			mu.Lock()
			var first time.Time
			for _, at := range ackTimes[before:] {
				if at.sent.After(hit) {
					first = at.acked
					break
				}
			}
			mu.Unlock()
			if !first.IsZero() {
				if graceful {
					handovers = append(handovers, first.Sub(hit))
				} else {
					failovers = append(failovers, first.Sub(hit))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no record acknowledged within 30s of stopping the leader n%d", round+1, victim+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if graceful {
			if err := nodes[victim].cmd.Wait(); err != nil {
				t.Fatalf("n%d exited with %v after SIGTERM", victim+1, err)
			}
		}
		nodes[victim].start()
	}
	close(stop)
	wg.Wait()
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	if len(prodErrs) > 0 {
		t.Fatalf("%d records failed to produce, first: %v", len(prodErrs), prodErrs[0])
	}
	want := len(acked)
	mu.Unlock()
	if want != sent {
		t.Fatalf("%d of %d records acknowledged", want, sent)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := map[string]int{}
			for _, r := range n.consumeAll("stream") {
				got[*r.Value]++
			}
			dup, missing := "", 0
			for v, c := range got {
				if c > 1 {
					dup = v
				}
			}
			if dup != "" {
				t.Fatalf("%s stored %d times (read from %s)", dup, got[dup], n.native)
			}
			for v := range acked {
				if got[v] == 0 {
					missing++
				}
			}
			if missing == 0 && len(got) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the node at %s holds %d records; %d of the %d acknowledged are missing", n.native, len(got), missing, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("%d records acknowledged across 5 kills and 3 clean stops of the leader, each stored once on every node; from SIGKILL to the first ack of a record sent after it: %v; from SIGTERM: %v", want, failovers, handovers)
	for _, n := range nodes {
		n.stop()
	}
}

// TestClusterUp: `sense cluster up --nodes 3` starts three nodes that form
// one cluster and prints their addresses; `sense cluster status` against
// one of them shows all three up and a leader for every buffer; SIGTERM to
// cluster up stops every node it started.
func TestClusterUp(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(senseBin, "cluster", "up", "--nodes", "3", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM) // it stops its nodes
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill() // its nodes get SIGTERM (Pdeathsig)
				<-done
			}
		}
	})
	// The table: NODE PID NATIVE KAFKA HTTP CLUSTER DIR.
	type row struct {
		pid    int
		native string
	}
	var rows []row
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(rows) < 3 {
		f := strings.Fields(sc.Text())
		if len(f) == 7 && strings.HasPrefix(f[0], "n") {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("cluster up printed %q", sc.Text())
			}
			rows = append(rows, row{pid, f[2]})
		}
	}
	if len(rows) != 3 {
		t.Fatalf("cluster up printed %d node rows before ending (%v)", len(rows), sc.Err())
	}
	go io.Copy(io.Discard, out)
	n := &node{t: t, native: rows[0].native}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := n.sense("", "cluster", "status", "--json")
		var ci admin.ClusterInfo
		// Three buffers of events, the committed offsets, the metadata;
		// every node routes with the seeded table.
		ok := err == nil && json.Unmarshal([]byte(s), &ci) == nil && len(ci.Nodes) == 3 && len(ci.Buffers) == 5
		for _, nd := range ci.Nodes {
			ok = ok && nd.Up && nd.TableVersion > 0 && nd.TableVersion == ci.Nodes[0].TableVersion
		}
		for _, b := range ci.Buffers {
			ok = ok && b.Leader != ""
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status after 30s: %s %v", s, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	text, err := n.sense("", "cluster", "status")
	if err != nil || !strings.Contains(text, "events/local/0") || !strings.Contains(text, "__offsets") || !strings.Contains(text, "__meta") || !strings.Contains(text, "TABLE VERSION") {
		t.Fatalf("cluster status printed %q, %v", text, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cluster up after SIGTERM: %v", err)
	}
	for _, r := range rows {
		if err := syscall.Kill(r.pid, 0); err == nil {
			t.Fatalf("node pid %d still runs after cluster up stopped", r.pid)
		}
	}
}
