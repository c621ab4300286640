package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/bench"
)

// runBench runs sense bench with args and returns its output and the
// results it wrote; the command must succeed.
func runBench(t *testing.T, args ...string) (string, *bench.Results, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, senseBin, append([]string{"bench", "--out", out}, args...)...)
	cmd.Env = append(os.Environ(), "SENSE_CONFIG=")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sense bench %v: %v\n%s", args, err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return string(b), &res, out
}

// ownServerGone checks that the bench's own server, named in its first
// line, has exited and that its data directory was removed.
func ownServerGone(t *testing.T, output string) {
	t.Helper()
	m := regexp.MustCompile(`own server \(pid (\d+)\) on \S+, data in (\S+),`).FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("no own-server line in the output:\n%s", output)
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the bench's server pid %d is still there (kill 0: %v)", pid, err)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := os.Stat(m[2]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bench's data directory %s was not removed (%v)", m[2], err)
	}
}

// TestBenchFailureProfile runs the failure profile of the real binary: its
// own server is SIGKILLed and restarted mid-run, and every acknowledged
// event must still be consumed exactly once.
func TestBenchFailureProfile(t *testing.T) {
	output, res, dir := runBench(t, "--profile", "failure", "--rate", "2000", "--duration", "4s", "--producers", "1")
	if len(res.Faults) != 1 {
		t.Fatalf("faults %+v, want one kill and restart", res.Faults)
	}
	if res.Acknowledged == 0 || res.Lost != 0 || res.Duplicated != 0 || res.Consumed != res.Acknowledged {
		t.Fatalf("acknowledged %d consumed %d lost %d duplicated %d", res.Acknowledged, res.Consumed, res.Lost, res.Duplicated)
	}
	if res.Profile != "failure" || res.Fsync != "always" || res.Protocol != "native" {
		t.Fatalf("results header: profile %q fsync %q protocol %q", res.Profile, res.Fsync, res.Protocol)
	}
	if !strings.Contains(output, "PASS: every acknowledged event consumed exactly once") {
		t.Errorf("no PASS line in the output:\n%s", output)
	}
	for _, f := range []string{"report.md", "timeline.json", "ack_latency.hgrm", "e2e_latency.hgrm",
		"latency_over_time.png", "latency_distribution.png", "throughput_over_time.png", "server.log"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The server log shows two starts: the first and the restart.
	logs, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	if n := strings.Count(string(logs), "serving"); n != 2 {
		t.Errorf("server started %d times, want 2:\n%s", n, logs)
	}
	ownServerGone(t, output)
}

// TestBenchClusterFailure runs the failure profile against the bench's own
// cluster of three processes (--cluster 3): a node other than the clients'
// is SIGKILLed and restarted mid-run, every acknowledged event is consumed
// exactly once, and every node the bench started is gone afterwards.
func TestBenchClusterFailure(t *testing.T) {
	output, res, dir := runBench(t, "--cluster", "3", "--profile", "failure", "--rate", "2000", "--duration", "4s", "--producers", "1")
	if len(res.Faults) != 1 {
		t.Fatalf("faults %+v, want one kill and restart", res.Faults)
	}
	if res.Acknowledged == 0 || res.Lost != 0 || res.Duplicated != 0 || res.Consumed != res.Acknowledged {
		t.Fatalf("acknowledged %d consumed %d lost %d duplicated %d", res.Acknowledged, res.Consumed, res.Lost, res.Duplicated)
	}
	m := regexp.MustCompile(`own cluster of 3 nodes \(pids \[(\d+) (\d+) (\d+)\]\)`).FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("no own-cluster line in the output:\n%s", output)
	}
	for i, p := range m[1:] {
		pid, _ := strconv.Atoi(p)
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node n%d (pid %d) is still there after the bench", i+1, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// One of n2 and n3 started twice (the kill and restart), n1 once.
	starts := 0
	for i := 1; i <= 3; i++ {
		logs, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("server-n%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		starts += strings.Count(string(logs), "serving")
	}
	if starts != 4 {
		t.Errorf("the nodes started %d times in all, want 4 (three, and one restart)", starts)
	}
}

// TestBenchKafkaMaxRate searches for the maximum rate over the Kafka
// protocol, then runs at half of it.
func TestBenchKafkaMaxRate(t *testing.T) {
	output, res, _ := runBench(t, "--protocol", "kafka", "--rate", "0", "--fraction", "0.5",
		"--trial", "500ms", "--duration", "1s", "--producers", "1")
	if res.Search == nil || len(res.Search.Trials) == 0 || res.Search.Max <= 0 {
		t.Fatalf("no maximum-rate search in the results: %+v", res.Search)
	}
	var best float64
	for _, tr := range res.Search.Trials {
		if tr.Sustained {
			best = max(best, tr.Rate)
		}
	}
	if best != res.Search.Max || res.TargetRate != float64(int64(res.Search.Max*0.5)) {
		t.Fatalf("max %v (best sustained trial %v), target rate %v: want the target at half the max", res.Search.Max, best, res.TargetRate)
	}
	if res.Protocol != "kafka" || res.Lost != 0 || res.Duplicated != 0 || res.Consumed != res.Acknowledged {
		t.Fatalf("protocol %s acknowledged %d consumed %d lost %d duplicated %d", res.Protocol, res.Acknowledged, res.Consumed, res.Lost, res.Duplicated)
	}
	ownServerGone(t, output)
}

// TestBenchRefusesBadFlags checks that bad options are refused before
// anything starts, with a message naming the value.
func TestBenchRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "spiky"}, `--profile "spiky"`},
		{[]string{"--protocol", "amqp"}, `--protocol "amqp"`},
		{[]string{"--size", "10"}, "--size 10"},
		{[]string{"--profile", "failure", "--addr", "127.0.0.1:1"}, "drop --addr"},
		{[]string{"--cluster", "1"}, "--cluster 1"},
		{[]string{"--cluster", "3", "--addr", "127.0.0.1:1"}, "drop --addr"},
	} {
		b, err := exec.Command(senseBin, append([]string{"bench", "--out", t.TempDir()}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(b), c.want) {
			t.Errorf("sense bench %v: err %v, output %q; want a failure naming %q", c.args, err, b, c.want)
		}
	}
}
