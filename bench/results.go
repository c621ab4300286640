package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ResultsFile is the name of the results file WriteJSON writes.
const ResultsFile = "results.json"

// Results are one run's figures. Their JSON field names are a contract
// (results.json); do not rename them.
type Results struct {
	Profile  string `json:"profile"`
	Protocol string `json:"protocol"`
	// Fsync is the server's durability mode during the run.
	Fsync string `json:"fsync"`
	// EventSize is the size of each event's value in bytes.
	EventSize int `json:"event_size"`
	// DurationS is the length of the load phase in seconds.
	DurationS float64 `json:"duration_s"`
	// PublishRate and ConsumeRate are in events per second.
	PublishRate float64 `json:"publish_rate"`
	ConsumeRate float64 `json:"consume_rate"`
	// AckLatencyMs runs from intended send to acknowledgement,
	// E2ELatencyMs from intended send to consumer receipt.
	AckLatencyMs LatencyReport `json:"ack_latency_ms"`
	E2ELatencyMs LatencyReport `json:"e2e_latency_ms"`
	// Errors counts failed events by error code.
	Errors map[string]int64 `json:"errors"`
	// Shed counts events the server shed under load.
	Shed         int64   `json:"shed"`
	Acknowledged int64   `json:"acknowledged"`
	Consumed     int64   `json:"consumed"`
	Lost         int64   `json:"lost"`
	Duplicated   int64   `json:"duplicated"`
	Machine      Machine `json:"machine"`

	// The fields below are beyond the contract: profile details.

	// TargetRate is the offered baseline rate in events/s (for bursty the
	// rate between spikes).
	TargetRate float64 `json:"target_rate"`
	// Producers and Consumers are the numbers of each.
	Producers int `json:"producers"`
	Consumers int `json:"consumers"`
	// ShedByPriority counts shed events per class (low, medium, critical).
	ShedByPriority map[string]int64 `json:"shed_by_priority"`
	// UnackedConsumed are events whose send failed (or had no answer, as
	// when the server was killed) and that were consumed anyway: stored
	// before the failure was seen. They are neither lost nor duplicated.
	UnackedConsumed int64 `json:"unacked_consumed"`
	// Spikes are the bursty profile's spikes.
	Spikes []Spike `json:"spikes,omitempty"`
	// Faults are the failure profile's kills and restarts.
	Faults []Fault `json:"faults,omitempty"`
	// ServerMemoryLimit is the router.memory_limit the bench gave its own
	// server, when it set one.
	ServerMemoryLimit string `json:"server_memory_limit,omitempty"`
	// StealPctMean and StealPctMax are the CPU time the hypervisor took
	// (steal) over the load, mean and worst second, in percent.
	StealPctMean float64 `json:"steal_pct_mean"`
	StealPctMax  float64 `json:"steal_pct_max"`
	// ServerFsyncs counts the server's group-commit fdatasyncs during the
	// load and ServerFsyncMaxMs bounds the slowest (histogram bucket
	// bound), when the bench could read the server's metrics.
	ServerFsyncs     int64   `json:"server_fsyncs"`
	ServerFsyncMaxMs float64 `json:"server_fsync_max_ms"`
	// ServerCPUUsPerEvent is the CPU time, user plus system, that the
	// server used per acknowledged event, in µs: from just before the first
	// event was sent until the drain ended (every acknowledged event
	// stored and delivered), summed over the server's incarnations in the
	// failure profile. ServerCPUUserS and ServerCPUSystemS are the two
	// parts over the same window, in seconds. All three are null when the
	// server's CPU was not measured; ServerCPUNote then says why.
	ServerCPUUsPerEvent *float64 `json:"server_cpu_us_per_event"`
	ServerCPUUserS      *float64 `json:"server_cpu_user_s"`
	ServerCPUSystemS    *float64 `json:"server_cpu_system_s"`
	ServerCPUNote       string   `json:"server_cpu_note,omitempty"`
	// Search is the maximum-rate search that chose TargetRate (--rate 0).
	Search *Search `json:"max_rate_search,omitempty"`
}

// Spike is one burst of the bursty profile.
type Spike struct {
	// StartS and EndS bound the spike, seconds since the load began.
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// Rate is the offered rate during the spike, events/s.
	Rate float64 `json:"rate"`
	// AckP99Ms and E2EP99Ms are the p99 over the seconds of the spike.
	AckP99Ms float64 `json:"ack_p99_ms"`
	E2EP99Ms float64 `json:"e2e_p99_ms"`
	// RecoveryS is the time from the spike's end until the per-second
	// acknowledgement p99 is back within the baseline bound (twice the
	// baseline p99 before the first spike, at least 1 ms); -1 when it did
	// not come back before the next spike or the end of the run.
	RecoveryS float64 `json:"recovery_s"`
}

// Fault is one kill and restart of the server in the failure profile.
type Fault struct {
	// KilledAtS is when SIGKILL was sent, RestartedAtS when the restarted
	// server answered again, seconds since the load began.
	KilledAtS    float64 `json:"killed_at_s"`
	RestartedAtS float64 `json:"restarted_at_s"`
}

// Search is a maximum sustainable rate search: trial rates and what each
// achieved.
type Search struct {
	Trials []Trial `json:"trials"`
	// Max is the highest sustained trial rate, events/s.
	Max float64 `json:"max"`
}

// Trial is one rate tried by the search.
type Trial struct {
	Rate        float64 `json:"rate"`
	PublishRate float64 `json:"publish_rate"`
	AckP99Ms    float64 `json:"ack_p99_ms"`
	// ServerCPUUsPerEvent is the trial's server CPU time per acknowledged
	// event, in µs, when it was measured (Results.ServerCPUUsPerEvent).
	ServerCPUUsPerEvent *float64 `json:"server_cpu_us_per_event,omitempty"`
	// Sustained says the rate was kept: every event acknowledged, the
	// publish rate within 5% of the offered one, the ack p99 under the
	// search's bound.
	Sustained bool `json:"sustained"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	Cores     int    `json:"cores"`
	CPUModel  string `json:"cpu_model"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	return Machine{
		Cores:     runtime.NumCPU(),
		CPUModel:  CPUModel(),
		OS:        runtime.GOOS,
		GoVersion: runtime.Version(),
	}
}

// CPUModel returns the CPU model named by /proc/cpuinfo, or runtime.GOARCH
// where that file is missing or names none.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	if m := cpuModelFrom(bufio.NewScanner(f)); m != "" {
		return m
	}
	return runtime.GOARCH
}

// cpuModelFrom returns the first "model name" (x86) or "Model" /
// "Processor" (arm) value of a cpuinfo listing.
func cpuModelFrom(sc *bufio.Scanner) string {
	var fallback string
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if val == "" {
			continue
		}
		switch key {
		case "model name":
			return val
		case "Model", "Processor", "cpu model":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}

// WriteJSON writes r as indented JSON to dir/results.json, creating dir
// if needed, and returns the file's path.
func (r *Results) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: results directory %q: %w", dir, err)
	}
	out := *r
	if out.Errors == nil {
		out.Errors = map[string]int64{}
	}
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench: encoding results: %w", err)
	}
	path := filepath.Join(dir, ResultsFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return path, nil
}
