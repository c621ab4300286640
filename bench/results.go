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
