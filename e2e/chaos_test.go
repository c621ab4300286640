package e2e

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/sensetest"
)

// chaosDuration is how long TestClusterChaos injects faults: a short run
// in `make test`, longer with SENSE_CHAOS_DURATION (e.g. 5m; `make chaos`).
func chaosDuration(t *testing.T) time.Duration {
	v := os.Getenv("SENSE_CHAOS_DURATION")
	if v == "" {
		return 8 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SENSE_CHAOS_DURATION=%q: give a duration such as 5m", v)
	}
	return d
}

// TestClusterChaos runs three `sense serve` processes, each dialing its
// peers through an in-process proxy, under a randomized workload and
// nemesis: an idempotent acks=all franz-go producer writes per-key
// numbered records to a 3-partition pipeline while, one at a time, a node
// is killed with SIGKILL and restarted, paused with SIGSTOP and resumed,
// cut off from the others, or a single link is cut, each for a random
// while. Then every fault is healed, the producer drains, and a checker
// reads every partition from every node and reports:
//
//   - lost: a record the producer saw acknowledged that a node lacks;
//   - duplicated: a record stored twice;
//   - reordered: a key's numbers out of order in its partition's offsets;
//   - inconsistent: two nodes holding different records at one offset.
//
// The seed is logged (SENSE_CHAOS_SEED replays it). For each duplicated
// record, the headers of the batches holding its copies are logged, as
// every node's segment files hold them (producer id, epoch, sequences,
// raft term), with what the producer logged about failed batches. With
// SENSE_CHAOS_LOGS=DIR every node's log (one file per start) and the
// producer's are kept in DIR.
func TestClusterChaos(t *testing.T) {
	dur := chaosDuration(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SENSE_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SENSE_CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("seed %d (SENSE_CHAOS_SEED), faults for %s", seed, dur)
	rng := rand.New(rand.NewPCG(seed, seed^0x5e45e))

	const n = 3
	links := make([][]*sensetest.Link, n)
	for i := range links {
		links[i] = make([]*sensetest.Link, n)
	}
	nodes, seeds := startProcessCluster(t, "chaos", func(i, j int, listen []string) string {
		if links[i][j] == nil {
			links[i][j] = sensetest.NewLink(t, fmt.Sprintf("n%d", i+1), fmt.Sprintf("n%d", j+1), listen[j])
		}
		return links[i][j].Addr()
	})
	// A paused node must not stay paused when the test fails.
	t.Cleanup(func() {
		for _, nd := range nodes {
			if nd.cmd.ProcessState == nil {
				nd.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), dur+4*time.Minute)
	defer cancel()
	clientLog, err := os.Create(filepath.Join(t.TempDir(), "franz-go.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer clientLog.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithLogger(kgo.BasicLogger(clientLog, kgo.LogLevelInfo, nil)), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond),
		kgo.RetryTimeout(3*time.Minute), kgo.RecordDeliveryTimeout(3*time.Minute), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	const keys = 16
	var mu sync.Mutex
	acked := map[string]bool{}
	var prodErrs []error
	sent := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := make([]int, keys)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := i % keys
			v := fmt.Sprintf("k%d:%d", k, next[k])
			next[k]++
			mu.Lock()
			sent++
			mu.Unlock()
			prod.Produce(ctx, &kgo.Record{Topic: "chaos", Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					prodErrs = append(prodErrs, fmt.Errorf("%s: %w", v, err))
					return
				}
				acked[v] = true
			})
			time.Sleep(time.Millisecond)
		}
	}()

	// The nemesis: one fault at a time, healed before the next.
	var faults []string
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		victim := rng.IntN(n)
		hold := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		switch f := rng.IntN(4); f {
		case 0:
			faults = append(faults, fmt.Sprintf("kill n%d", victim+1))
			nodes[victim].kill()
			time.Sleep(hold)
			nodes[victim].start()
		case 1:
			faults = append(faults, fmt.Sprintf("pause n%d %s", victim+1, hold))
			nodes[victim].cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(hold)
			nodes[victim].cmd.Process.Signal(syscall.SIGCONT)
		case 2:
			faults = append(faults, fmt.Sprintf("isolate n%d %s", victim+1, hold))
			for j := range n {
				if j != victim {
					links[victim][j].Cut()
					links[j][victim].Cut()
				}
			}
			time.Sleep(hold)
			for j := range n {
				if j != victim {
					links[victim][j].Heal()
					links[j][victim].Heal()
				}
			}
		case 3:
			to := (victim + 1 + rng.IntN(n-1)) % n
			faults = append(faults, fmt.Sprintf("cut n%d->n%d %s", victim+1, to+1, hold))
			links[victim][to].Cut()
			time.Sleep(hold)
			links[victim][to].Heal()
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("faults: %s", strings.Join(faults, "; "))
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	if len(prodErrs) > 0 {
		t.Errorf("%d records failed to produce (every fault was healed; retries should have stored them), first: %v", len(prodErrs), prodErrs[0])
	}
	nAcked, nSent := len(acked), sent
	mu.Unlock()

	// The checker. Nodes converge after the last fault; read until they
	// agree or a deadline passes, then report.
	type rec struct {
		partition int32
		offset    int64
	}
	var views []map[rec]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		views = views[:0]
		for _, nd := range nodes {
			v := map[rec]string{}
			for _, r := range nd.consumeAll("chaos") {
				v[rec{r.Partition, r.Offset}] = *r.Value
			}
			views = append(views, v)
		}
		missing := 0
		for _, v := range views {
			have := map[string]bool{}
			for _, val := range v {
				have[val] = true
			}
			for val := range acked {
				if !have[val] {
					missing++
				}
			}
		}
		if missing == 0 && len(views[0]) == len(views[1]) && len(views[1]) == len(views[2]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var lost, dup, reordered, inconsistent []string
	dupAt := map[int32][]int64{} // partition → offsets of duplicated records (n1's view)
	for i, v := range views {
		count := map[string]int{}
		byKey := map[string][]keyed{}
		for at, val := range v {
			count[val]++
			k, s, ok := strings.Cut(val, ":")
			if !ok {
				t.Fatalf("n%d holds a record %q at %d/%d that the producer did not write", i+1, val, at.partition, at.offset)
			}
			seq, _ := strconv.Atoi(s)
			byKey[k] = append(byKey[k], keyed{at.offset, seq})
		}
		for val, c := range count {
			if c > 1 {
				dup = append(dup, fmt.Sprintf("n%d %s x%d", i+1, val, c))
			}
		}
		if i == 0 {
			for at, val := range v {
				if count[val] > 1 {
					dupAt[at.partition] = append(dupAt[at.partition], at.offset)
				}
			}
		}
		for val := range acked {
			if count[val] == 0 {
				lost = append(lost, fmt.Sprintf("n%d %s", i+1, val))
			}
		}
		for k, rs := range byKey {
			// Offsets within one partition (a key stays on one).
			slices.SortFunc(rs, func(a, b keyed) int { return cmp.Compare(a.off, b.off) })
			for j := 1; j < len(rs); j++ {
				if rs[j].seq <= rs[j-1].seq {
					reordered = append(reordered, fmt.Sprintf("n%d %s: %d at offset %d after %d at %d", i+1, k, rs[j].seq, rs[j].off, rs[j-1].seq, rs[j-1].off))
				}
			}
		}
	}
	for at, val := range views[0] {
		for i := 1; i < n; i++ {
			if other, ok := views[i][at]; ok && other != val {
				inconsistent = append(inconsistent, fmt.Sprintf("partition %d offset %d: n1 %s, n%d %s", at.partition, at.offset, val, i+1, other))
			}
		}
	}
	for i := 1; i < n; i++ {
		if len(views[i]) != len(views[0]) {
			inconsistent = append(inconsistent, fmt.Sprintf("n1 holds %d records, n%d %d", len(views[0]), i+1, len(views[i])))
		}
	}
	report := func(what string, xs []string) {
		if len(xs) > 0 {
			if len(xs) > 10 {
				xs = append(xs[:10], fmt.Sprintf("... %d in all", len(xs)))
			}
			t.Errorf("%s: %s", what, strings.Join(xs, "; "))
		}
	}
	report("lost", lost)
	report("duplicated", dup)
	report("reordered", reordered)
	report("inconsistent", inconsistent)
	t.Logf("%d records sent, %d acknowledged, %d on each node; %d faults", nSent, nAcked, len(views[0]), len(faults))
	for _, nd := range nodes {
		nd.stop()
	}
	if len(dupAt) > 0 {
		explainDuplicates(t, nodes, dupAt, clientLog.Name())
	}
	if dir := os.Getenv("SENSE_CHAOS_LOGS"); dir != "" {
		keepChaosLogs(t, dir, nodes, clientLog.Name())
	}
}

// keyed is one record of a key: its offset and its number.
type keyed struct {
	off int64
	seq int
}
