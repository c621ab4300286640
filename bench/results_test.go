package bench

import (
	"bufio"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
)

func keys(t *testing.T, m any) []string {
	t.Helper()
	obj, ok := m.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", m)
	}
	var ks []string
	for k := range obj {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestResultsJSONContract(t *testing.T) {
	rec := NewRecorder("ack")
	rec.Record(event.Critical, 3*time.Millisecond)
	r := &Results{Profile: "uniform", Protocol: "native", Fsync: "batch", EventSize: 256, DurationS: 1,
		AckLatencyMs: rec.Report(), Machine: ThisMachine()}
	dir := t.TempDir() + "/out"
	path, err := r.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	want := []string{"ack_latency_ms", "acknowledged", "consume_rate", "consumed", "duplicated", "duration_s",
		"e2e_latency_ms", "errors", "event_size", "fsync", "lost", "machine", "profile", "protocol", "publish_rate", "shed"}
	// The contract's keys must all be there; more may follow them.
	got := keys(t, top)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Fatalf("top-level keys %v lack %q of the contract", got, k)
		}
	}
	pct := []string{"max", "p50", "p90", "p99", "p999", "p9999"}
	for _, series := range []string{"ack_latency_ms", "e2e_latency_ms"} {
		s := top[series].(map[string]any)
		if got := keys(t, s); !slices.Equal(got, append([]string{"by_priority"}, pct...)) {
			t.Fatalf("%s keys %v", series, got)
		}
		bp := s["by_priority"].(map[string]any)
		if got := keys(t, bp); !slices.Equal(got, []string{"critical", "low", "medium"}) {
			t.Fatalf("%s.by_priority keys %v", series, got)
		}
		for class, v := range bp {
			if got := keys(t, v); !slices.Equal(got, pct) {
				t.Fatalf("%s.by_priority.%s keys %v", series, class, got)
			}
		}
	}
	if got := keys(t, top["machine"]); !slices.Equal(got, []string{"cores", "cpu_model", "go_version", "os"}) {
		t.Fatalf("machine keys %v", got)
	}
	if _, ok := top["errors"].(map[string]any); !ok {
		t.Fatalf("errors = %v, want an object even when empty", top["errors"])
	}
	if c := top["ack_latency_ms"].(map[string]any)["by_priority"].(map[string]any)["critical"].(map[string]any)["p50"].(float64); c < 2.99 || c > 3.01 {
		t.Fatalf("critical ack p50 = %v, want 3", c)
	}
	// Server CPU not measured: the keys are there, null.
	for _, k := range []string{"server_cpu_us_per_event", "server_cpu_user_s", "server_cpu_system_s"} {
		if v, ok := top[k]; !ok || v != nil {
			t.Fatalf("%s = %v (present %v), want null", k, v, ok)
		}
	}
}

func TestCPUModel(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold\n"
	if got := cpuModelFrom(bufio.NewScanner(strings.NewReader(x86))); got != "Intel(R) Xeon(R) Gold" {
		t.Errorf("x86: %q", got)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\n\nModel\t: Raspberry Pi 4 Model B\n"
	if got := cpuModelFrom(bufio.NewScanner(strings.NewReader(arm))); got != "Raspberry Pi 4 Model B" {
		t.Errorf("arm: %q", got)
	}
	if got := cpuModelFrom(bufio.NewScanner(strings.NewReader("processor : 0\n"))); got != "" {
		t.Errorf("none: %q", got)
	}
	if m := ThisMachine(); m.CPUModel == "" || m.Cores < 1 || m.GoVersion != runtime.Version() {
		t.Errorf("ThisMachine = %+v", m)
	}
}
