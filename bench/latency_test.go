package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
)

func TestRecorderPercentiles(t *testing.T) {
	r := NewRecorder("ack")
	// 1..1000 ms, all Low; one Critical at 5ms.
	for i := 1; i <= 1000; i++ {
		r.Record(event.Low, time.Duration(i)*time.Millisecond)
	}
	r.Record(event.Critical, 5*time.Millisecond)
	rep := r.Report()
	if got := r.Count(); got != 1001 {
		t.Fatalf("Count = %d, want 1001", got)
	}
	p := rep.Percentiles
	if !(p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.P999 && p.P999 <= p.P9999 && p.P9999 <= p.Max) {
		t.Fatalf("percentiles not ordered: %+v", p)
	}
	// 3 significant figures: within 0.1%.
	near := func(got, want float64) bool { return got >= want*0.999 && got <= want*1.001 }
	if !near(p.P50, 500) || !near(p.P99, 990) || !near(p.Max, 1000) {
		t.Fatalf("p50=%v p99=%v max=%v; want about 500, 990, 1000", p.P50, p.P99, p.Max)
	}
	if c := rep.ByPriority.Critical; !near(c.P50, 5) || !near(c.Max, 5) {
		t.Fatalf("critical = %+v, want 5ms throughout", c)
	}
	if m := rep.ByPriority.Medium; m != (Percentiles{}) {
		t.Fatalf("medium = %+v, want zeros (nothing recorded)", m)
	}
}

func TestRecorderClampsAndInvalidClass(t *testing.T) {
	r := NewRecorder("e2e")
	r.Record(event.Low, -time.Second)
	r.Record(event.Medium, time.Hour)
	r.Record(event.Priority(7), time.Millisecond)
	if r.Count() != 3 || r.Clamped() != 1 {
		t.Fatalf("Count=%d Clamped=%d, want 3 and 1", r.Count(), r.Clamped())
	}
	rep := r.Report()
	if rep.ByPriority.Medium.Max < 599_000 {
		t.Fatalf("medium max %vms, want about 10 minutes", rep.ByPriority.Medium.Max)
	}
	if rep.ByPriority.Low.Max > 0.002 {
		t.Fatalf("low max %vms, want 1µs", rep.ByPriority.Low.Max)
	}
}

func TestRecorderConcurrentAndMerge(t *testing.T) {
	a, b := NewRecorder("ack"), NewRecorder("ack")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				a.Record(event.Priority(g%3), time.Duration(i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	b.Record(event.Critical, time.Millisecond)
	b.Merge(a)
	b.Merge(b)
	if got := b.Count(); got != 4001 {
		t.Fatalf("merged Count = %d, want 4001", got)
	}
}

func TestRecorderWriteFiles(t *testing.T) {
	r := NewRecorder("e2e")
	for i := 1; i <= 100; i++ {
		r.Record(event.Medium, time.Duration(i)*time.Millisecond)
	}
	var buf bytes.Buffer
	if err := r.WritePercentiles(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), " Value\tPercentile\tTotalCount\t1/(1-Percentile)") {
		t.Fatalf("percentile output starts %q", buf.String()[:40])
	}
	if !strings.Contains(buf.String(), "100.") {
		t.Fatalf("percentile output has no 100ms value (want milliseconds):\n%s", buf.String())
	}
	dir := t.TempDir()
	paths, err := r.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "e2e_latency.hgrm"), filepath.Join(dir, "e2e_latency.medium.hgrm")}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Fatalf("wrote %v, want %v", paths, want)
	}
	b, err := os.ReadFile(want[0])
	if err != nil || !bytes.Equal(b, buf.Bytes()) {
		t.Fatalf("file content differs from WritePercentiles (err %v)", err)
	}
}
