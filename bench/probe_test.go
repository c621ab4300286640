package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const metricsA = `# HELP sense_fsync_latency_seconds Duration of one group-commit fdatasync.
# TYPE sense_fsync_latency_seconds histogram
sense_fsync_latency_seconds_bucket{hub="local",le="0.0001"} 10
sense_fsync_latency_seconds_bucket{hub="local",le="0.001"} 90
sense_fsync_latency_seconds_bucket{hub="local",le="0.01"} 100
sense_fsync_latency_seconds_bucket{hub="local",le="+Inf"} 100
sense_fsync_latency_seconds_sum{hub="local"} 0.05
sense_fsync_latency_seconds_count{hub="local"} 100
sense_fsync_latency_seconds_bucket{hub="eu",le="0.0001"} 0
sense_fsync_latency_seconds_bucket{hub="eu",le="0.001"} 0
sense_fsync_latency_seconds_bucket{hub="eu",le="0.01"} 0
sense_fsync_latency_seconds_bucket{hub="eu",le="+Inf"} 0
sense_fsync_latency_seconds_sum{hub="eu"} 0
sense_events_in_total{pipeline="x"} 5
`

// metricsB is A plus 190 fsyncs: 100 under 0.1ms, 88 more under 1ms, 1 under
// 10ms and 1 past every bound, 0.5s in all.
const metricsB = `sense_fsync_latency_seconds_bucket{hub="local",le="0.0001"} 60
sense_fsync_latency_seconds_bucket{hub="local",le="0.001"} 178
sense_fsync_latency_seconds_bucket{hub="local",le="0.01"} 189
sense_fsync_latency_seconds_bucket{hub="local",le="+Inf"} 190
sense_fsync_latency_seconds_sum{hub="local"} 0.35
sense_fsync_latency_seconds_bucket{hub="eu",le="0.0001"} 50
sense_fsync_latency_seconds_bucket{hub="eu",le="0.001"} 100
sense_fsync_latency_seconds_bucket{hub="eu",le="0.01"} 100
sense_fsync_latency_seconds_bucket{hub="eu",le="+Inf"} 100
sense_fsync_latency_seconds_sum{hub="eu"} 0.2
`

func TestHistogramDelta(t *testing.T) {
	a, sumA, err := parseHistogram(strings.NewReader(metricsA), fsyncMetric)
	if err != nil {
		t.Fatal(err)
	}
	if a[0.001] != 90 || a[math.Inf(1)] != 100 || sumA != 0.05 {
		t.Fatalf("parsed %v sum %v", a, sumA)
	}
	b, sumB, err := parseHistogram(strings.NewReader(metricsB), fsyncMetric)
	if err != nil {
		t.Fatal(err)
	}
	n, mean, p99, maxB := histDelta(a, b, sumB-sumA)
	// 190 new values: 100 + 88 + 1 + 1; the p99 (188.1th) falls in the
	// 10ms bucket; the slowest is past every finite bound, reported as
	// 10ms.
	if n != 190 || math.Abs(mean-0.5/190*1000) > 1e-9 || p99 != 10 || maxB != 10 {
		t.Fatalf("delta: count %d mean %v p99 %v max %v; want 190, %vms, 10ms, 10ms", n, mean, p99, maxB, 0.5/190*1000)
	}
	// Without the slow two, the p99 is in the 1ms bucket.
	c, _, _ := parseHistogram(strings.NewReader(strings.ReplaceAll(strings.ReplaceAll(metricsB, "} 189", "} 188"), "} 190", "} 188")), fsyncMetric)
	if _, _, p99, maxB := histDelta(a, c, 0.4); p99 != 1 || maxB != 1 {
		t.Fatalf("p99 %v max %v, want 1ms both", p99, maxB)
	}
	if n, _, _, _ := histDelta(b, b, 0); n != 0 {
		t.Fatalf("no change reported %d fsyncs", n)
	}
	if _, _, err := parseHistogram(strings.NewReader("other_metric 1\n"), fsyncMetric); err == nil {
		t.Fatal("metrics without the histogram accepted")
	}
}

func TestSteal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stat")
	write := func(line string) {
		if err := os.WriteFile(path, []byte(line+"\ncpu0 1 2 3 4 5 6 7 8 9 10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	write("cpu  100 0 100 700 0 0 0 100 50 0")
	p := &Probe{StatPath: path}
	if _, ok := p.sample(t.Context()); ok {
		t.Fatal("the first sample reported figures: it only sets the baseline")
	}
	write("cpu  150 0 150 750 0 0 0 150 80 0") // +200 jiffies, +50 steal
	s, ok := p.sample(t.Context())
	if !ok || s.StealPct != 25 {
		t.Fatalf("steal %v%% (ok %v), want 25%%", s.StealPct, ok)
	}
}

// FuzzParseHistogram: any metrics text parses or fails cleanly, and the
// delta of a histogram with itself is empty.
func FuzzParseHistogram(f *testing.F) {
	f.Add(metricsA)
	f.Add(metricsB)
	f.Add("sense_fsync_latency_seconds_bucket{le=\"x\"} 1\n")
	f.Add("sense_fsync_latency_seconds_bucket{le=\"0.1\" 5\nsense_fsync_latency_seconds_sum NaN\n")
	f.Fuzz(func(t *testing.T, text string) {
		h, sum, err := parseHistogram(strings.NewReader(text), fsyncMetric)
		if err != nil {
			return
		}
		if n, _, _, _ := histDelta(h, h, sum-sum); n != 0 {
			t.Fatalf("a histogram's delta with itself counts %d", n)
		}
	})
}
