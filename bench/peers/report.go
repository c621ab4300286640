package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sensehq/sense/bench"
)

// Report is peers.json. Its field names are a contract: for each system
// in Systems, durability, publish_rate (events/s, max-rate workload),
// ack_latency_ms and e2e_latency_ms (uniform workload, from each event's
// intended send time to its acknowledgement and to its first read),
// server_cpu_us_per_event (uniform workload) and ratio.
type Report struct {
	Machine   bench.Machine `json:"machine"`
	EventSize int           `json:"event_size"`
	// DurationS is each workload's publishing time, in seconds.
	DurationS float64 `json:"duration_s"`
	// UniformRate is the uniform workload's offered rate, events/s.
	UniformRate int64 `json:"uniform_rate"`
	// Window is the max-rate workload's bound on unanswered events.
	Window int `json:"window"`
	// Systems is keyed by peer ID (sense, nats-syncalways, ...).
	Systems map[string]*SystemResult `json:"systems"`

	order []string // peer IDs in run order
}

// SystemResult is one peer's figures.
type SystemResult struct {
	System     string `json:"system"`
	Durability string `json:"durability"`
	// PublishRate is the max-rate workload's acknowledged events/s.
	PublishRate float64 `json:"publish_rate"`
	// AckLatencyMs is the uniform workload's acknowledgement latency,
	// E2ELatencyMs its latency to the consumer.
	AckLatencyMs bench.Percentiles `json:"ack_latency_ms"`
	E2ELatencyMs bench.Percentiles `json:"e2e_latency_ms"`
	// ServerCPUUsPerEvent is the server process's CPU time per
	// acknowledged event in the uniform workload, at its offered rate, in
	// µs; null when not measured.
	ServerCPUUsPerEvent *float64 `json:"server_cpu_us_per_event"`
	// Ratio is Sense's PublishRate over this system's; null when either
	// is unknown or zero.
	Ratio   *float64 `json:"ratio"`
	MaxRate *MaxRate `json:"max_rate,omitempty"`
	Uniform *Uniform `json:"uniform,omitempty"`
	// Error says what went wrong: the system did not start, or publishes
	// went unanswered.
	Error string `json:"error,omitempty"`
}

func newReport(w Workload) *Report {
	return &Report{
		Machine:     bench.ThisMachine(),
		EventSize:   w.Size,
		DurationS:   w.Duration.Seconds(),
		UniformRate: w.Rate,
		Window:      w.Window,
		Systems:     map[string]*SystemResult{},
	}
}

// add records a peer's result, keeping the run order.
func (r *Report) add(id string, s *SystemResult) {
	if _, ok := r.Systems[id]; !ok {
		r.order = append(r.order, id)
	}
	r.Systems[id] = s
}

// computeRatios sets every system's ratio: Sense's publish rate over its.
func (r *Report) computeRatios() {
	sense, ok := r.Systems[senseID]
	for _, s := range r.Systems {
		s.Ratio = nil
		if ok && sense.PublishRate > 0 && s.PublishRate > 0 {
			v := sense.PublishRate / s.PublishRate
			s.Ratio = &v
		}
	}
}

// WriteJSON writes the report as indented JSON to dir/peers.json,
// creating dir if needed, and returns the file's path.
func (r *Report) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating output directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "peers.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// WriteTable prints the comparison: one row per system, then the
// workloads and the machine.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tdurability\tmax publish_rate (ev/s)\tratio\tuniform acked (ev/s)\tack p50 (ms)\tack p99 (ms)\tack p99.9 (ms)\te2e p50 (ms)\te2e p99 (ms)\tserver CPU (µs/ev)\terrors\t")
	for _, id := range r.order {
		s := r.Systems[id]
		var errs int64
		uniformRate, p50, p99, p999, e50, e99, cpu := "-", "-", "-", "-", "-", "-", "-"
		if s.MaxRate != nil {
			errs += s.MaxRate.Errors
		}
		if u := s.Uniform; u != nil {
			errs += u.Errors
			uniformRate = thousands(u.PublishRate)
			p50, p99, p999 = ms(u.AckLatencyMs.P50), ms(u.AckLatencyMs.P99), ms(u.AckLatencyMs.P999)
			if u.Read > 0 {
				e50, e99 = ms(u.E2ELatencyMs.P50), ms(u.E2ELatencyMs.P99)
			}
		}
		if s.ServerCPUUsPerEvent != nil {
			cpu = strconv.FormatFloat(*s.ServerCPUUsPerEvent, 'f', 2, 64)
		}
		rate := "-"
		if s.MaxRate != nil {
			rate = thousands(s.PublishRate)
		}
		ratio := "-"
		if s.Ratio != nil {
			ratio = strconv.FormatFloat(*s.Ratio, 'f', 2, 64) + "x"
		}
		errCol := strconv.FormatInt(errs, 10)
		if s.Error != "" {
			errCol = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.System, s.Durability, rate, ratio, uniformRate, p50, p99, p999, e50, e99, cpu, errCol)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	m := r.Machine
	fmt.Fprintf(w, "\nmax-rate: as fast as acks allow, at most %d events unanswered; uniform: open loop at %s ev/s, latency from each event's intended send time\n",
		r.Window, thousands(float64(r.UniformRate)))
	fmt.Fprintf(w, "to its acknowledgement (ack) and to its first read by a consumer on another connection (e2e); server CPU: the server process's\n")
	fmt.Fprintf(w, "user+system time per acknowledged event in the uniform workload, from the first publish until every event was read back.\n")
	fmt.Fprintf(w, "%d-byte events, %gs per workload, a fresh server per workload; ratio = Sense's max publish_rate / the system's.\n", r.EventSize, r.DurationS)
	fmt.Fprintf(w, "machine: %d cores, %s, %s, %s (clients and servers share it)\n", m.Cores, m.CPUModel, m.OS, m.GoVersion)
	for _, id := range r.order {
		s := r.Systems[id]
		if s.Error != "" {
			fmt.Fprintf(w, "%s (%s): %s\n", s.System, s.Durability, s.Error)
		}
		if u := s.Uniform; u != nil && u.ServerCPU.Note != "" {
			fmt.Fprintf(w, "%s (%s): server CPU %s\n", s.System, s.Durability, u.ServerCPU.Note)
		}
	}
	return nil
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// thousands formats v rounded to an integer with commas: 1,234,567.
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
