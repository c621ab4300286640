package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/bench"
)

// fakeTarget answers every publish on its own goroutine: an error for
// the publishes fail picks, nothing for those drop picks, twice when
// double is set.
type fakeTarget struct {
	fail   func(n int) bool
	drop   func(n int) bool
	double bool

	mu          sync.Mutex
	n           int
	outstanding int
	maxOut      int
	sizes       map[int]int
	wg          sync.WaitGroup
}

var errFake = errors.New("fake: refused")

func (f *fakeTarget) Publish(_ context.Context, value []byte, onAck func(error)) {
	f.mu.Lock()
	n := f.n
	f.n++
	if f.sizes == nil {
		f.sizes = map[int]int{}
	}
	f.sizes[len(value)]++
	if f.drop != nil && f.drop(n) {
		f.mu.Unlock()
		return
	}
	f.outstanding++
	f.maxOut = max(f.maxOut, f.outstanding)
	f.mu.Unlock()
	var err error
	if f.fail != nil && f.fail(n) {
		err = errFake
	}
	f.wg.Go(func() {
		f.mu.Lock()
		f.outstanding--
		f.mu.Unlock()
		onAck(err)
		if f.double {
			onAck(nil)
		}
	})
}

func (f *fakeTarget) Close() error { f.wg.Wait(); return nil }

func shortWorkload() Workload {
	return Workload{Duration: 150 * time.Millisecond, Size: 64, Rate: 2000, Window: 8}
}

func TestMaxRateCountsEveryAnswerWithinTheWindow(t *testing.T) {
	f := &fakeTarget{fail: func(n int) bool { return n%10 == 3 }}
	w := shortWorkload()
	res, err := runMaxRate(context.Background(), f, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := res.Verify(); err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Published != int64(f.n) {
		t.Fatalf("published %d, target saw %d", res.Published, f.n)
	}
	wantErrs := (res.Published + 6) / 10 // n%10 == 3 for n < Published
	if res.Errors != wantErrs || res.Acknowledged != res.Published-wantErrs {
		t.Fatalf("acknowledged %d, errors %d of %d published; want %d errors", res.Acknowledged, res.Errors, res.Published, wantErrs)
	}
	if res.FirstError != errFake.Error() {
		t.Fatalf("first error %q, want %q", res.FirstError, errFake)
	}
	if f.maxOut > w.Window {
		t.Fatalf("%d events outstanding at once; the window is %d", f.maxOut, w.Window)
	}
	if len(f.sizes) != 1 || f.sizes[w.Size] == 0 {
		t.Fatalf("value sizes %v, want all %d", f.sizes, w.Size)
	}
	want := float64(res.Acknowledged) / res.ElapsedS
	if res.PublishRate != want {
		t.Fatalf("publish rate %v, want acknowledged/elapsed = %v", res.PublishRate, want)
	}
}

func TestUniformSendsEveryScheduledEvent(t *testing.T) {
	f := &fakeTarget{}
	w := shortWorkload()
	res, err := runUniform(context.Background(), f, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	sched, _ := bench.NewSchedule(w.Rate, time.Now())
	want := int64(sched.Count(w.Duration))
	if res.Published != want || res.Acknowledged != want {
		t.Fatalf("published %d, acknowledged %d; the schedule has %d events", res.Published, res.Acknowledged, want)
	}
	if err := res.Verify(); err != nil {
		t.Fatal(err)
	}
	if res.OfferedRate != w.Rate {
		t.Fatalf("offered rate %d, want %d", res.OfferedRate, w.Rate)
	}
	if res.AckLatencyMs.P99 <= 0 || res.AckLatencyMs.Max < res.AckLatencyMs.P99 {
		t.Fatalf("ack latency %+v: want 0 < p99 <= max", res.AckLatencyMs)
	}
}

func TestUnansweredPublishesFailVerification(t *testing.T) {
	old := drainSilence
	drainSilence = func(time.Duration) time.Duration { return 50 * time.Millisecond }
	t.Cleanup(func() { drainSilence = old })

	f := &fakeTarget{drop: func(n int) bool { return n%7 == 0 }}
	res, err := runUniform(context.Background(), f, shortWorkload(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if want := (res.Published + 6) / 7; res.Unanswered != want {
		t.Fatalf("unanswered %d, want %d", res.Unanswered, want)
	}
	if err := res.Verify(); err == nil || !strings.Contains(err.Error(), "never answered") {
		t.Fatalf("Verify() = %v, want a never-answered error", err)
	}
}

func TestDoubleAnswersFailVerification(t *testing.T) {
	f := &fakeTarget{double: true}
	w := shortWorkload()
	res, err := runMaxRate(context.Background(), f, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if res.DoubleAnswers != res.Published || res.Acknowledged != res.Published {
		t.Fatalf("%d double answers, %d acknowledged of %d published", res.DoubleAnswers, res.Acknowledged, res.Published)
	}
	if err := res.Verify(); err == nil {
		t.Fatal("Verify() = nil with every event answered twice")
	}
}

func TestWorkloadValidate(t *testing.T) {
	ok := Workload{Duration: time.Second, Size: bench.HeaderSize, Rate: 1, Window: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag string
		w    func(w *Workload)
	}{
		{"--duration", func(w *Workload) { w.Duration = 0 }},
		{"--size", func(w *Workload) { w.Size = bench.HeaderSize - 1 }},
		{"--rate", func(w *Workload) { w.Rate = 0 }},
		{"--window", func(w *Workload) { w.Window = 0 }},
	} {
		w := ok
		tc.w(&w)
		if err := w.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.flag) {
			t.Errorf("%+v: Validate() = %v, want an error naming %s", w, err, tc.flag)
		}
	}
}
