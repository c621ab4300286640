package main

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/bench"
)

// fakeTarget answers every publish on its own goroutine: an error for
// the publishes fail picks, nothing for those drop picks, twice when
// double is set. Its consumer reads every acknowledged event back, except
// those unread picks, and reads twice those reread picks. Its server
// uses 10µs of CPU time per publish.
type fakeTarget struct {
	fail   func(n int) bool
	drop   func(n int) bool
	unread func(n int) bool
	reread func(n int) bool
	double bool

	mu          sync.Mutex
	n           int
	outstanding int
	maxOut      int
	sizes       map[int]int
	onEvent     func([]byte)
	wg          sync.WaitGroup
}

var errFake = errors.New("fake: refused")

func (f *fakeTarget) Read(_ context.Context, onEvent func([]byte)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onEvent = onEvent
	return nil
}

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
		read := err == nil && (f.unread == nil || !f.unread(n))
		times := 1
		if f.reread != nil && f.reread(n) {
			times = 2
		}
		f.mu.Unlock()
		onAck(err)
		if f.double {
			onAck(nil)
		}
		for range times {
			if read {
				f.mu.Lock() // one read at a time, as Target promises
				f.onEvent(value)
				f.mu.Unlock()
			}
		}
	})
}

func (f *fakeTarget) ServerCPU() (bench.CPUTime, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bench.CPUTime{User: time.Duration(f.n) * 8 * time.Microsecond, System: time.Duration(f.n) * 2 * time.Microsecond}, nil
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
	if res.Read != res.Acknowledged || res.Unread != 0 {
		t.Fatalf("read %d, unread %d of %d acknowledged", res.Read, res.Unread, res.Acknowledged)
	}
	// The fake server spends 10µs per publish, errors included.
	if c := res.ServerCPU; c.UsPerEvent == nil || math.Abs(*c.UsPerEvent-10*float64(res.Published)/float64(res.Acknowledged)) > 1e-6 ||
		math.Abs(*c.UserS-8e-6*float64(res.Published)) > 1e-9 || math.Abs(*c.SystemS-2e-6*float64(res.Published)) > 1e-9 {
		t.Fatalf("server CPU %+v for %d published, %d acknowledged", c, res.Published, res.Acknowledged)
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
	if res.Read != want || res.E2ELatencyMs.P99 <= 0 || res.E2ELatencyMs.P99 < res.AckLatencyMs.P50 {
		t.Fatalf("read %d of %d, e2e latency %+v: want every event read, after its ack", res.Read, want, res.E2ELatencyMs)
	}
}

func TestReadBackFailures(t *testing.T) {
	old := drainSilence
	drainSilence = func(time.Duration) time.Duration { return 50 * time.Millisecond }
	t.Cleanup(func() { drainSilence = old })

	f := &fakeTarget{unread: func(n int) bool { return n%5 == 1 }, reread: func(n int) bool { return n%9 == 2 }}
	res, err := runUniform(context.Background(), f, shortWorkload(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if want := (res.Published + 3) / 5; res.Unread != want || res.Read != res.Published-want {
		t.Fatalf("unread %d, read %d of %d: want %d unread", res.Unread, res.Read, res.Published, want)
	}
	if err := res.Verify(); err == nil || !strings.Contains(err.Error(), "never read back") {
		t.Fatalf("Verify() = %v, want a never-read-back error", err)
	}
	res.Unread = 0
	if err := res.Verify(); err == nil || !strings.Contains(err.Error(), "more than once") || res.DuplicateReads == 0 {
		t.Fatalf("Verify() = %v with %d duplicate reads, want a read-more-than-once error", err, res.DuplicateReads)
	}
}

// TestReadBackChecksTheBytes feeds the tracker values that are not the
// workload's events as published.
func TestReadBackChecksTheBytes(t *testing.T) {
	tr := newTracker(time.Now(), 7, 40)
	good, _ := bench.AppendValue(nil, bench.Header{RunID: 7, Seq: 3, Intended: time.Now()}, 40)
	other, _ := bench.AppendValue(nil, bench.Header{RunID: 8, Seq: 4, Intended: time.Now()}, 40)
	short, _ := bench.AppendValue(nil, bench.Header{RunID: 7, Seq: 5, Intended: time.Now()}, 39)
	flipped := slices.Clone(good)
	flipped[len(flipped)-1] ^= 1
	for _, v := range [][]byte{good, other, short, flipped, good[:10], nil} {
		tr.onEvent(v)
	}
	o := tr.outcome()
	if o.Read != 1 || o.BadReads != 5 || o.DuplicateReads != 0 {
		t.Fatalf("%+v: want 1 read, 5 bad", o)
	}
	if err := o.Verify(); err == nil || !strings.Contains(err.Error(), "did not publish") {
		t.Fatalf("Verify() = %v, want a bad-read error", err)
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
