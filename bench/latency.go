package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sensehq/sense/event"
)

// Histogram geometry: microsecond values from 1µs to 10 minutes with 3
// significant figures.
const (
	minLatencyUS = 1
	maxLatencyUS = int64(10 * time.Minute / time.Microsecond)
	sigFigures   = 3
)

// priorityNames are the classes reported by_priority, indexed by
// event.Priority.
var priorityNames = [3]string{"low", "medium", "critical"}

// Percentiles are one latency distribution's figures, in milliseconds.
type Percentiles struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	P9999 float64 `json:"p9999"`
	Max   float64 `json:"max"`
}

// ByPriority holds Percentiles per priority class.
type ByPriority struct {
	Low      Percentiles `json:"low"`
	Medium   Percentiles `json:"medium"`
	Critical Percentiles `json:"critical"`
}

// LatencyReport is a series' figures over every event, and per class.
type LatencyReport struct {
	Percentiles
	ByPriority ByPriority `json:"by_priority"`
}

// Recorder accumulates one latency series (ack or e2e) over every event
// and per priority class. It is safe for concurrent use.
type Recorder struct {
	name    string
	mu      sync.Mutex
	all     *hdrhistogram.Histogram
	byClass [3]*hdrhistogram.Histogram
	clamped int64
}

// NewRecorder returns an empty recorder for the series name (used in file
// names, e.g. "ack" or "e2e").
func NewRecorder(name string) *Recorder {
	r := &Recorder{name: name, all: newHistogram()}
	for i := range r.byClass {
		r.byClass[i] = newHistogram()
	}
	return r
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyUS, maxLatencyUS, sigFigures)
}

// Name returns the series name.
func (r *Recorder) Name() string { return r.name }

// Record adds one latency of class p. Values below 1µs count as 1µs and
// values above 10 minutes as 10 minutes (Clamped counts the latter). A
// latency of an invalid class counts in the overall figures only.
func (r *Recorder) Record(p event.Priority, d time.Duration) {
	us := int64(d / time.Microsecond)
	clamped := false
	switch {
	case us < minLatencyUS:
		us = minLatencyUS
	case us > maxLatencyUS:
		us, clamped = maxLatencyUS, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if clamped {
		r.clamped++
	}
	// In range by construction: RecordValue cannot fail.
	_ = r.all.RecordValue(us)
	if p.Valid() && int(p) < len(r.byClass) {
		_ = r.byClass[p].RecordValue(us)
	}
}

// Merge adds every value of o into r.
func (r *Recorder) Merge(o *Recorder) {
	if r == o {
		return
	}
	o.mu.Lock()
	all := o.all.Clone()
	var classes [3]*hdrhistogram.Histogram
	for i, h := range o.byClass {
		classes[i] = h.Clone()
	}
	clamped := o.clamped
	o.mu.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.all.Merge(all)
	for i, h := range classes {
		r.byClass[i].Merge(h)
	}
	r.clamped += clamped
}

// Count returns the number of latencies recorded.
func (r *Recorder) Count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.TotalCount()
}

// Clamped returns how many latencies exceeded the 10-minute range.
func (r *Recorder) Clamped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clamped
}

// Report returns the series' percentiles overall and per class. An empty
// distribution reports zeros.
func (r *Recorder) Report() LatencyReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return LatencyReport{
		Percentiles: percentilesOf(r.all),
		ByPriority: ByPriority{
			Low:      percentilesOf(r.byClass[event.Low]),
			Medium:   percentilesOf(r.byClass[event.Medium]),
			Critical: percentilesOf(r.byClass[event.Critical]),
		},
	}
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	v := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9, 99.99})
	return Percentiles{
		P50:   usToMS(v[50]),
		P90:   usToMS(v[90]),
		P99:   usToMS(v[99]),
		P999:  usToMS(v[99.9]),
		P9999: usToMS(v[99.99]),
		Max:   usToMS(h.Max()),
	}
}

func usToMS(us int64) float64 { return float64(us) / 1000 }

// WritePercentiles writes the series' overall distribution to w in the
// HdrHistogram percentile format ("Value Percentile TotalCount
// 1/(1-Percentile)"), values in milliseconds.
func (r *Recorder) WritePercentiles(w io.Writer) error {
	r.mu.Lock()
	h := r.all.Clone()
	r.mu.Unlock()
	return writeDistribution(w, h)
}

func writeDistribution(w io.Writer, h *hdrhistogram.Histogram) error {
	_, err := h.PercentilesPrint(w, 5, 1000)
	return err
}

// WriteFiles writes the percentile distribution files of the series into
// dir: NAME_latency.hgrm over every event, and NAME_latency.CLASS.hgrm for
// each class that recorded something. It returns the paths written.
func (r *Recorder) WriteFiles(dir string) ([]string, error) {
	r.mu.Lock()
	all := r.all.Clone()
	var classes [3]*hdrhistogram.Histogram
	for i, h := range r.byClass {
		classes[i] = h.Clone()
	}
	r.mu.Unlock()

	var paths []string
	write := func(name string, h *hdrhistogram.Histogram) error {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("bench: percentile file of series %q: %w", r.name, err)
		}
		err = writeDistribution(f, h)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bench: writing %s: %w", path, err)
		}
		paths = append(paths, path)
		return nil
	}
	if err := write(r.name+"_latency.hgrm", all); err != nil {
		return paths, err
	}
	for i, h := range classes {
		if h.TotalCount() == 0 {
			continue
		}
		if err := write(r.name+"_latency."+priorityNames[i]+".hgrm", h); err != nil {
			return paths, err
		}
	}
	return paths, nil
}
