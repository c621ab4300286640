package kafkaclients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/internal/loopback"
)

// The librdkafka clients against a cluster of three `sense serve`
// processes, whose nodes are killed with SIGKILL while the clients run:
// the clients must find the new leaders and coordinator by themselves,
// and lose or duplicate nothing.

// clusterBody is what every node's config holds besides its node and
// cluster sections: pipeline stream has one partition in one hub, so the
// Kafka topic stream has three partitions (one per priority lane), each a
// raft group of the three nodes, stream/tangier/0 to 2.
const clusterBody = `jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: stream, partitions: 1}]
kafka: {group_initial_rebalance_delay: 0s}
`

// senseCluster is three `sense serve` processes of one cluster on
// loopback, n1, n2, n3 (Kafka broker ids 0, 1, 2).
type senseCluster struct {
	t     *testing.T
	bin   string
	nodes []*senseNode
}

// senseNode is one node; its ports and data directory stay the same when
// it is killed and started again.
type senseNode struct {
	name                 string
	native, http, kafka  string
	config, data, stderr string
	cmd                  *exec.Cmd     // nil while the node is not running
	exited               chan struct{} // closed once cmd has been waited for
	started              bool          // it has been ready once
}

// buildSense builds the sense binary into the test's temporary directory.
func buildSense(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sense")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sensehq/sense/cmd/sense").CombinedOutput()
	if err != nil {
		t.Fatalf("build sense: %v\n%s", err, out)
	}
	return bin
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago: all are held open until all are picked, or the kernel may hand out
// one port twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := loopback.Addrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// startSenseCluster starts three nodes and waits until each is ready.
// Every node still running when the test ends is killed.
func startSenseCluster(t *testing.T) *senseCluster {
	t.Helper()
	return startSenseClusterOf(t, clusterBody)
}

// startSenseClusterOf starts three nodes whose configs share body.
func startSenseClusterOf(t *testing.T, body string) *senseCluster {
	t.Helper()
	c := &senseCluster{t: t, bin: buildSense(t)}
	root := t.TempDir()
	var peers []string
	addrs := freeAddrs(t, 3*4)
	for i := range 3 {
		a := addrs[4*i:]
		n := &senseNode{name: fmt.Sprintf("n%d", i+1), native: a[0], http: a[1], kafka: a[2]}
		n.config = filepath.Join(root, n.name+".yaml")
		n.data = filepath.Join(root, n.name+"-data")
		n.stderr = filepath.Join(root, n.name+".log")
		c.nodes = append(c.nodes, n)
		peers = append(peers, fmt.Sprintf("{id: %s, addr: %s}", n.name, a[3]))
	}
	for _, n := range c.nodes {
		yaml := fmt.Sprintf("node: {id: %s}\ncluster: {peers: [%s]}\n%s", n.name, strings.Join(peers, ", "), body)
		if err := os.WriteFile(n.config, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i, n := range c.nodes {
			if n.cmd != nil {
				c.kill(i)
			}
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	return c
}

// start starts node i and waits until it answers /readyz. A port picked
// by freeAddr may be taken by the time the node listens on it (by an
// outgoing connection of another node, say): at a node's first start, its
// client listeners move to other ports, up to three times; a restarted
// node keeps its addresses.
func (c *senseCluster) start(i int) {
	t := c.t
	t.Helper()
	n := c.nodes[i]
	for attempt := 1; ; attempt++ {
		logOffset := int64(0)
		if st, err := os.Stat(n.stderr); err == nil {
			logOffset = st.Size()
		}
		if c.tryStart(i) {
			n.started = true
			return
		}
		b, _ := os.ReadFile(n.stderr)
		clientPort := regexp.MustCompile(`listen for (HTTP|Kafka clients|the native protocol) .*address already in use`).Match(b[logOffset:])
		if n.started || !clientPort || attempt == 3 {
			t.Fatalf("%s exited at start:\n%s", n.name, c.logs(i))
		}
		a := freeAddrs(t, 3)
		n.native, n.http, n.kafka = a[0], a[1], a[2]
	}
}

// tryStart starts node i and reports whether it became ready; false if it
// exited first.
func (c *senseCluster) tryStart(i int) bool {
	t := c.t
	t.Helper()
	n := c.nodes[i]
	logf, err := os.OpenFile(n.stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "serve", "--config", n.config, "--data", n.data, "--native-addr", n.native,
		"--http-addr", n.http, "--kafka-addr", n.kafka, "--quic-addr", "off")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "SENSE_CONFIG=")
	// Its own process group, killed with it; and killed should the test
	// binary die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(n.exited) }()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case <-n.exited:
			n.cmd = nil
			return false
		default:
		}
		if resp, err := hc.Get("http://" + n.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s:\n%s", n.name, c.logs(i))
	return false
}

// kill sends SIGKILL to node i's process group and waits for it.
func (c *senseCluster) kill(i int) {
	n := c.nodes[i]
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

func (c *senseCluster) logs(i int) string {
	b, _ := os.ReadFile(c.nodes[i].stderr)
	return tail(string(b), 4000)
}

// bootstrap is every node's Kafka address, comma-separated.
func (c *senseCluster) bootstrap() string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.kafka)
	}
	return strings.Join(addrs, ",")
}

// sense runs a CLI command against node i.
func (c *senseCluster) sense(i int, args ...string) ([]byte, error) {
	c.t.Helper()
	return run(c.t, 30*time.Second, "", []string{"SENSE_CONFIG="}, c.bin, append(args, "--addr", c.nodes[i].native)...)
}

// leader returns the node that leads buffer key (such as stream/tangier/0)
// according to `sense cluster status --json` on a running node.
func (c *senseCluster) leader(key string) int {
	t := c.t
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, n := range c.nodes {
			if n.cmd == nil {
				continue
			}
			out, err := c.sense(i, "cluster", "status", "--json")
			if err != nil {
				continue
			}
			var ci admin.ClusterInfo
			if err := json.Unmarshal(out, &ci); err != nil {
				t.Fatalf("cluster status --json printed %q: %v", out, err)
			}
			for _, b := range ci.Buffers {
				if b.Key != key || b.Leader == "" {
					continue
				}
				for j, m := range c.nodes {
					if m.name == b.Leader && m.cmd != nil {
						return j
					}
				}
			}
		}
	}
	t.Fatalf("no live leader of %s within 30s", key)
	return -1
}

// coordinator returns the node that coordinates group, as FindCoordinator
// on a running node names it (broker id = node index).
func (c *senseCluster) coordinator(group string) int {
	t := c.t
	t.Helper()
	var seeds []string
	for _, n := range c.nodes {
		if n.cmd != nil {
			seeds = append(seeds, n.kafka)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last kadm.FindCoordinatorResponses
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = adm.FindGroupCoordinators(ctx, group)
		cancel()
		if r, ok := last[group]; ok && r.Err == nil && r.NodeID >= 0 && int(r.NodeID) < len(c.nodes) {
			return int(r.NodeID)
		}
	}
	t.Fatalf("no coordinator for group %s within 30s: %+v", group, last)
	return -1
}

// nativeRecord is a line of `sense consume --output json`.
type nativeRecord struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Value     *string `json:"value"`
}

// checkStored reads pipeline stream from every node with `sense consume`
// until each holds exactly the records whose values are values: each
// once, at offsets that grow in the order of values (control batches take
// offsets too, so there may be gaps), and at the offset the producer was
// told where reported has it. A value stored twice fails at once. A
// follower may lag: it is read again for up to 30 s.
func (c *senseCluster) checkStored(values []string, reported map[string]int64) {
	t := c.t
	t.Helper()
	index := map[string]int{}
	for i, v := range values {
		index[v] = i
	}
	for i, n := range c.nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := c.sense(i, "consume", "--pipeline", "stream", "--from", "beginning", "--output", "json")
			if err != nil {
				t.Fatal(err)
			}
			at := make([]int64, len(values))
			got := 0
			for _, r := range jsonLines[nativeRecord](t, out) {
				if r.Value == nil {
					t.Fatalf("%s: record %+v without a value", n.name, r)
				}
				j, ok := index[*r.Value]
				if !ok {
					t.Fatalf("%s: %+v stored, not produced (or not reported delivered)", n.name, r)
				}
				if at[j] != 0 {
					t.Fatalf("%s: %q stored twice, at offsets %d and %d", n.name, *r.Value, at[j]-1, r.Offset)
				}
				if off, ok := reported[*r.Value]; ok && off != r.Offset {
					t.Fatalf("%s: %q stored at offset %d, the producer was told %d", n.name, *r.Value, r.Offset, off)
				}
				at[j] = r.Offset + 1
				got++
			}
			if got == len(values) {
				for j := 1; j < len(at); j++ {
					if at[j] <= at[j-1] {
						t.Fatalf("%s: %q at offset %d, after %q at %d: not in the order produced", n.name, values[j], at[j]-1, values[j-1], at[j-1]-1)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				missing := slices.Index(at, 0)
				t.Fatalf("%s holds %d of the %d records after 30s; %q is missing", n.name, got, len(values), values[missing])
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// runStream is runWatched for a client that runs while the test acts:
// stdin comes from r (nil for none), line is called with each line of
// stdout as it comes (from one goroutine at a time), and the process is
// killed when ctx is done. It may be called from a goroutine other than
// the test's.
func runStream(ctx context.Context, t *testing.T, timeout time.Duration, r io.Reader, env []string, fatal func(string) bool, line func(string), name string, args ...string) ([]byte, error) {
	t.Helper()
	tctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = r
	cmd.Env = append(os.Environ(), env...)
	stdout := &lineWriter{line: line}
	stderr := &stderrWatch{fatal: fatal, stop: cancel}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmdline := filepath.Base(name) + " " + strings.Join(args, " ")
	if errors.Is(tctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed after %v: %v", timeout, err)
	} else if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("killed: %v", cause)
	}
	if err != nil {
		return stdout.buf.Bytes(), fmt.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", cmdline, err, tail(stdout.buf.String(), 4000), tail(stderr.buf.String(), 4000))
	}
	if s := stderr.buf.String(); s != "" {
		t.Logf("%s: stderr:\n%s", cmdline, tail(s, 4000))
	}
	return stdout.buf.Bytes(), nil
}

// lineWriter keeps a process's stdout and calls line with each line.
type lineWriter struct {
	buf     bytes.Buffer
	partial []byte
	line    func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if w.line == nil {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}

// librdkafkaFailure is librdkafkaError except for FAIL lines: a broker
// connection lost or refused, which a client of a cluster whose nodes are
// killed must expect ("%3|<time>|FAIL|<client>| ...").
func librdkafkaFailure(line string) bool {
	if !librdkafkaError(line) {
		return false
	}
	f := strings.SplitN(line, "|", 4)
	return len(f) < 4 || f[2] != "FAIL"
}

// kcatFailure is librdkafkaFailure for kcat, which also reports the
// errors librdkafka hands it ("% ERROR: ...": again, only a lost broker
// connection is expected) and every delivery that failed.
func kcatFailure(line string) bool {
	if strings.HasPrefix(line, "% ERROR: ") {
		return !strings.HasPrefix(line, "% ERROR: Local: Broker transport failure: ")
	}
	return strings.HasPrefix(line, "% Delivery failed") || librdkafkaFailure(line)
}

// progress counts lines and lets the test wait until there are enough.
type progress struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// wait waits until the count reaches n and reports true, or until done is
// closed or 30 s pass and reports false.
func (p *progress) wait(n int, done <-chan struct{}) bool {
	timeout := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		ok, ch := p.n >= n, p.changed
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return p.count() >= n
		case <-timeout:
			return false
		}
	}
}

// killLeaderAt kills the leader of stream/tangier/0 when p reaches each of
// the counts at, and starts it again once another node leads and p has
// moved on by after. It returns the kills made while the client still
// ran; at least one is required.
func (c *senseCluster) killLeaderAt(p *progress, done <-chan struct{}, after int, at ...int) []string {
	t := c.t
	t.Helper()
	var kills []string
	for _, n := range at {
		if !p.wait(n, done) {
			break
		}
		select {
		case <-done:
		default:
			victim := c.leader("stream/tangier/0")
			c.kill(victim)
			kills = append(kills, fmt.Sprintf("%s at %d", c.nodes[victim].name, p.count()))
			next := c.leader("stream/tangier/0") // a live one
			if !p.wait(p.count()+after, done) {
				select {
				case <-done:
				default:
					t.Errorf("the client made no progress within 30s of killing the leader %s (%s leads now)", c.nodes[victim].name, c.nodes[next].name)
				}
			}
			c.start(victim)
			continue
		}
		break // not mid-stream any more
	}
	if len(kills) == 0 {
		t.Errorf("no leader killed while the client ran (it got to %d)", p.count())
	}
	return kills
}

// pythonLine is a line of cluster.py's output.
type pythonLine struct {
	Type      string `json:"type"`
	Index     int    `json:"index"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Count     int    `json:"count"`
}

func clusterPython(ctx context.Context, t *testing.T, line func(string), args ...string) ([]byte, error) {
	t.Helper()
	return runStream(ctx, t, scriptTimeout*time.Second+killAfter, nil, []string{"PYTHONDONTWRITEBYTECODE=1"}, nil, line, systemPython,
		append([]string{filepath.Join("testdata", "python", "cluster.py")}, args...)...)
}

// TestClusterPythonProducerKillLeader: a confluent-kafka-python producer
// (idempotent, acks=all, bootstrapped with all three nodes) streams 2000
// records to partition 0 of stream while the node leading it is killed
// with SIGKILL and restarted, twice. Every record is reported delivered,
// at offset = its index (stored once, in the order produced, nothing
// lost before it), and every node holds exactly those records at those
// offsets.
func TestClusterPythonProducerKillLeader(t *testing.T) {
	needPython(t)
	c := startSenseCluster(t)
	const n = 2000
	delivered := newProgress()
	done := make(chan struct{})
	var out []byte
	var err error
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		out, err = clusterPython(ctx, t, func(l string) {
			if strings.Contains(l, `"delivered"`) {
				delivered.add()
			}
		}, "produce", c.bootstrap(), "stream", "0", strconv.Itoa(n), "py", "2", strconv.Itoa(scriptTimeout))
	}()
	kills := c.killLeaderAt(delivered, done, 50, n/4, n/2)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("py-%d", i)
	}
	reported := map[string]int64{}
	lost := 0
	for _, l := range jsonLines[pythonLine](t, out) {
		switch l.Type {
		case "delivered":
			if l.Index < 0 || l.Index >= n || l.Value != values[l.Index] || l.Partition != 0 {
				t.Fatalf("delivery report %+v for a record not produced", l)
			}
			if _, ok := reported[l.Value]; ok {
				t.Fatalf("record %d reported delivered twice", l.Index)
			}
			reported[l.Value] = l.Offset
		case "lost_broker":
			lost = l.Count
		default:
			t.Fatalf("unexpected output line %+v", l)
		}
	}
	if len(reported) != n {
		t.Fatalf("%d of %d records reported delivered", len(reported), n)
	}
	c.checkStored(values, reported)
	t.Logf("%d records delivered and stored once on every node; leaders killed: %v; broker connections lost: %d", n, kills, lost)
}

// TestClusterKcatKillLeader: kcat -P (idempotent, acks=all, every node as
// a bootstrap broker) reads 2000 lines from a stdin fed slowly and
// produces them to partition 0 of stream while its leader is killed with
// SIGKILL and restarted, twice; kcat exits 0 with no error logged but for
// the lost connections. Every node holds each line exactly once, in the
// order fed, and kcat -C -o beginning -e reads exactly those lines back
// from the cluster.
func TestClusterKcatKillLeader(t *testing.T) {
	kcat := needKcat(t)
	c := startSenseCluster(t)
	const n = 2000
	fed := newProgress()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var err error
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer pw.Close()
		for i := range n {
			if _, err := fmt.Fprintf(pw, "kcat-%d\n", i); err != nil {
				return // kcat is gone
			}
			fed.add()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() {
		defer close(done)
		_, err = runStream(ctx, t, kcatTimeout, pr, nil, kcatFailure, nil, kcat, "-b", c.bootstrap(), "-P", "-t", "stream", "-p", "0",
			"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "topic.metadata.refresh.fast.interval.ms=50")
		pr.Close()
	}()
	kills := c.killLeaderAt(fed, done, 50, n/4, n/2)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if fed.count() != n {
		t.Fatalf("kcat exited after %d of %d lines", fed.count(), n)
	}
	values := make([]string, n)
	index := map[string]int{}
	for i := range values {
		values[i] = fmt.Sprintf("kcat-%d", i)
		index[values[i]] = i
	}
	c.checkStored(values, nil)

	out, err := kcatRun(t, kcat, "", "-b", c.bootstrap(), "-C", "-t", "stream", "-o", "beginning", "-e", "-J")
	if err != nil {
		t.Fatalf("kcat -C -e: %v", err)
	}
	got := map[string]bool{}
	last := -1
	for _, m := range jsonLines[kcatMessage](t, out) {
		if m.Topic != "stream" || m.Payload == nil || m.Partition != 0 {
			t.Fatalf("kcat -C: message %+v, want partition 0 of stream with a payload", m)
		}
		i, ok := index[*m.Payload]
		if !ok || got[*m.Payload] {
			t.Fatalf("kcat -C: message %+v not produced, or read twice", m)
		}
		if i < last {
			t.Fatalf("kcat -C: %q (offset %d) read after %q", *m.Payload, m.Offset, values[last])
		}
		last = i
		got[*m.Payload] = true
	}
	if len(got) != n {
		t.Fatalf("kcat -C read %d of the %d lines", len(got), n)
	}
	t.Logf("%d lines produced by kcat, stored once on every node and read back by kcat; leaders killed: %v", n, kills)
}

// TestClusterPythonConsumerGroupCoordinatorKill: 60 records in the three
// partitions of stream; a confluent-kafka-python consumer in a group
// processes 25 of them, committing each synchronously, and closes. The
// group's coordinator (the leader of __offsets, found with
// FindCoordinator) is killed with SIGKILL; a new consumer of the group,
// bootstrapped with all three nodes while that node is down, resumes
// exactly after the committed offsets and processes the other 35, each
// once, in order. The node is started again, and a third consumer finds
// nothing left.
func TestClusterPythonConsumerGroupCoordinatorKill(t *testing.T) {
	needPython(t)
	c := startSenseCluster(t)
	const n, first = 60, 25
	byPart := produceKgo(t, c.nodes[0].kafka, "stream", newWant("grp", n))
	group := "py-cluster-group"

	consume := func(name, stop string) consumerRun {
		t.Helper()
		out, err := clusterPython(context.Background(), t, nil, "consume", c.bootstrap(), "stream", group, stop, strconv.Itoa(scriptTimeout))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// parseConsumer knows consume.py's lines; lost_broker is cluster.py's.
		var kept [][]byte
		for _, l := range bytes.Split(out, []byte("\n")) {
			if !bytes.Contains(l, []byte(`"lost_broker"`)) {
				kept = append(kept, l)
			}
		}
		run := parseConsumer(t, bytes.Join(kept, []byte("\n")))
		// checkResume counts a partition's records, and offsets have gaps
		// here (a new leader's control batch takes one): a committed
		// offset, which must be right after a record, becomes the number
		// of records up to that one.
		for p, off := range run.committed {
			if off < 0 {
				continue // never committed
			}
			k := slices.IndexFunc(byPart[p], func(r record) bool { return r.Offset+1 == off })
			if k < 0 {
				t.Fatalf("%s: partition %d committed at %d, which is not right after a record (offsets %v)", name, p, off, offsets(byPart[p]))
			}
			run.committed[p] = int64(k + 1)
		}
		if !slices.Equal(run.assigned, []int32{0, 1, 2}) {
			t.Fatalf("%s: assigned %v, want all three partitions [0 1 2]", name, run.assigned)
		}
		return run
	}

	run1 := consume("first run", strconv.Itoa(first))
	if len(run1.records) != first {
		t.Fatalf("first run processed %d records, want %d", len(run1.records), first)
	}
	pos := checkResume(t, "first run", byPart, map[int32]int64{}, run1)

	coord := c.coordinator(group)
	c.kill(coord)
	run2 := consume("second run, coordinator "+c.nodes[coord].name+" killed", "eof")
	if len(run2.records) != n-first {
		t.Fatalf("second run processed %d records, want the %d left", len(run2.records), n-first)
	}
	pos = checkResume(t, "second run", byPart, pos, run2)
	for p, rs := range byPart {
		if pos[p] != int64(len(rs)) {
			t.Fatalf("after two runs partition %d is at %d, want its end %d", p, pos[p], len(rs))
		}
	}
	next := c.coordinator(group)

	c.start(coord)
	run3 := consume("third run", "eof")
	if len(run3.records) != 0 {
		t.Fatalf("third run processed %v, want nothing: every record was committed", run3.records)
	}
	checkResume(t, "third run", byPart, pos, run3)
	t.Logf("first run: %d records; coordinator %s killed, %s took over; second run: %d records; third: none",
		len(run1.records), c.nodes[coord].name, c.nodes[next].name, len(run2.records))
}
