package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// fsyncMetric is the server's group-commit fdatasync histogram.
const fsyncMetric = "sense_fsync_latency_seconds"

// Probe samples, once per second, what the machine and the server did
// besides the load: the server's fdatasync latencies (from its Prometheus
// metrics) and the CPU time the hypervisor took (steal). Both explain
// latency the bench sees; neither is the bench's own measurement.
type Probe struct {
	// MetricsURL is the server's /metrics; empty skips the fsync figures.
	MetricsURL string
	// StatPath is /proc/stat (empty: that); a missing file skips steal.
	StatPath string

	client    *http.Client
	lastHist  map[float64]float64 // cumulative bucket counts by bound
	lastSum   float64
	lastCPU   [2]uint64 // steal, total jiffies
	havePrevH bool
	havePrevC bool
}

// ProbeSample is one second of probe figures.
type ProbeSample struct {
	// FsyncCount is the number of fdatasyncs in the second, FsyncMeanMs
	// their mean, FsyncP99Ms and FsyncMaxMs the upper bounds of the
	// histogram buckets holding the 99th percentile and the slowest one.
	FsyncCount  int64   `json:"fsync_count"`
	FsyncMeanMs float64 `json:"fsync_mean_ms"`
	FsyncP99Ms  float64 `json:"fsync_p99_ms"`
	FsyncMaxMs  float64 `json:"fsync_max_ms"`
	// StealPct is the share of the machine's CPU time the hypervisor
	// took (steal), in percent.
	StealPct float64 `json:"steal_pct"`
}

// sample reads both sources and returns the figures since the last call;
// the first call only sets the baseline.
func (p *Probe) sample(ctx context.Context) (ProbeSample, bool) {
	var out ProbeSample
	ok := false
	if p.MetricsURL != "" {
		if hist, sum, err := p.scrape(ctx); err == nil {
			if p.havePrevH {
				out.FsyncCount, out.FsyncMeanMs, out.FsyncP99Ms, out.FsyncMaxMs = histDelta(p.lastHist, hist, sum-p.lastSum)
				ok = true
			}
			p.lastHist, p.lastSum, p.havePrevH = hist, sum, true
		}
	}
	path := p.StatPath
	if path == "" {
		path = "/proc/stat"
	}
	if steal, total, err := readSteal(path); err == nil {
		if p.havePrevC && total > p.lastCPU[1] {
			out.StealPct = 100 * float64(steal-p.lastCPU[0]) / float64(total-p.lastCPU[1])
			ok = true
		}
		p.lastCPU, p.havePrevC = [2]uint64{steal, total}, true
	}
	return out, ok
}

// scrape returns the fsync histogram's cumulative counts by upper bound
// (seconds), summed over every series, and the sum of its values.
func (p *Probe) scrape(ctx context.Context) (map[float64]float64, float64, error) {
	if p.client == nil {
		p.client = &http.Client{Timeout: 500 * time.Millisecond}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("bench: %s answered %s", p.MetricsURL, resp.Status)
	}
	return parseHistogram(resp.Body, fsyncMetric)
}

// parseHistogram reads a Prometheus text exposition and returns the
// cumulative bucket counts of metric by their le bound, summed over the
// metric's series, and the sum of its _sum series.
func parseHistogram(r io.Reader, metric string) (map[float64]float64, float64, error) {
	hist := map[float64]float64{}
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		sp := strings.LastIndexByte(rest, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "_bucket{"):
			i := strings.Index(rest, `le="`)
			if i < 0 {
				continue
			}
			j := strings.IndexByte(rest[i+4:], '"')
			if j < 0 {
				continue
			}
			le, err := strconv.ParseFloat(rest[i+4:i+4+j], 64) // "+Inf" parses as +Inf
			if err != nil {
				continue
			}
			hist[le] += v
		case strings.HasPrefix(rest, "_sum"):
			sum += v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if len(hist) == 0 {
		return nil, 0, fmt.Errorf("bench: no %s histogram in the metrics", metric)
	}
	return hist, sum, nil
}

// histDelta turns two cumulative histograms into the count, mean, p99
// bound and max bound (ms) of the values between them. A bound of +Inf
// reports the largest finite bound.
func histDelta(prev, cur map[float64]float64, sumDelta float64) (count int64, mean, p99, maxB float64) {
	bounds := make([]float64, 0, len(cur))
	for b := range cur {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := cur[math.Inf(1)] - prev[math.Inf(1)]
	if total <= 0 {
		return 0, 0, 0, 0
	}
	finite := func(b float64) float64 {
		if math.IsInf(b, 1) && len(bounds) > 1 {
			return bounds[len(bounds)-2]
		}
		return b
	}
	var below float64
	p99Set := false
	for _, b := range bounds {
		c := cur[b] - prev[b] // cumulative up to b
		if !p99Set && c >= 0.99*total {
			p99, p99Set = finite(b)*1000, true
		}
		if c > below {
			maxB = finite(b) * 1000
			below = c
		}
	}
	return int64(total), sumDelta / total * 1000, p99, maxB
}

// readSteal returns the steal and total jiffies of the machine's "cpu"
// line in /proc/stat.
func readSteal(path string) (steal, total uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || fields[0] != "cpu" {
			continue
		}
		for i, s := range fields[1:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("bench: %s: %w", path, err)
			}
			// user nice system idle iowait irq softirq steal guest
			// guest_nice: guest time is already in user.
			if i < 8 {
				total += v
			}
			if i == 7 {
				steal = v
			}
		}
		return steal, total, nil
	}
	return 0, 0, fmt.Errorf("bench: no cpu line in %s", path)
}
