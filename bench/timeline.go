package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sensehq/sense/event"
)

// Second is one slot of a run's timeline: what happened in the second
// starting T seconds after the load began. Latencies are attributed to the
// slot of the event's acknowledgement or receipt, not of its intended send.
type Second struct {
	T float64 `json:"t"`
	// TargetRate is the offered rate the schedule asked for in this slot,
	// events/s.
	TargetRate float64 `json:"target_rate"`
	// Published counts acknowledgements, Consumed first receipts by the
	// consumers, Errors failed events (Shed among them).
	Published int64 `json:"published"`
	Consumed  int64 `json:"consumed"`
	Errors    int64 `json:"errors"`
	Shed      int64 `json:"shed"`
	// AckMs and E2EMs are the slot's latency figures over every class;
	// AckByPriority the acknowledgement p99 per class (ms, 0 when none).
	AckMs         Percentiles `json:"ack_ms"`
	E2EMs         Percentiles `json:"e2e_ms"`
	AckP99ByClass [3]float64  `json:"ack_p99_by_class_ms"`
	// Probe is what the server's fsyncs and the hypervisor did in the
	// second, when a Probe ran.
	Probe *ProbeSample `json:"probe,omitempty"`
}

// Mark is a labelled moment of a run (a spike's start or end, a kill, a
// restart), in seconds since the load began, drawn on the plots.
type Mark struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// slot is a Second being collected.
type slot struct {
	target                    float64
	published, consumed, errs int64
	shed                      int64
	ack, e2e                  *hdrhistogram.Histogram
	ackClass                  [3]*hdrhistogram.Histogram
	probe                     *ProbeSample
}

// Timeline collects per-second figures of a run. It is safe for concurrent
// use.
type Timeline struct {
	start time.Time
	width time.Duration

	mu    sync.Mutex
	slots []*slot
	marks []Mark
}

// NewTimeline returns a timeline whose slot 0 starts at start, each slot
// width long (a second unless width says otherwise).
func NewTimeline(start time.Time, width time.Duration) *Timeline {
	if width <= 0 {
		width = time.Second
	}
	return &Timeline{start: start, width: width}
}

// Start returns the time slot 0 begins.
func (t *Timeline) Start() time.Time { return t.start }

// Since returns at as seconds since the start.
func (t *Timeline) Since(at time.Time) float64 { return at.Sub(t.start).Seconds() }

func newSlotHistogram() *hdrhistogram.Histogram {
	// Two significant figures per slot: a timeline has many.
	return hdrhistogram.New(minLatencyUS, maxLatencyUS, 2)
}

// at returns the slot of time at, growing the timeline; t.mu is held.
func (t *Timeline) at(at time.Time) *slot {
	i := 0
	if d := at.Sub(t.start); d > 0 {
		i = int(d / t.width)
	}
	for len(t.slots) <= i {
		t.slots = append(t.slots, &slot{})
	}
	s := t.slots[i]
	if s.ack == nil {
		s.ack, s.e2e = newSlotHistogram(), newSlotHistogram()
		for c := range s.ackClass {
			s.ackClass[c] = newSlotHistogram()
		}
	}
	return s
}

func clampUS(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), minLatencyUS), maxLatencyUS)
}

// Acked records an acknowledgement at time at with latency d of class p.
func (t *Timeline) Acked(at time.Time, p event.Priority, d time.Duration) {
	us := clampUS(d)
	t.mu.Lock()
	s := t.at(at)
	s.published++
	_ = s.ack.RecordValue(us)
	if p.Valid() && int(p) < len(s.ackClass) {
		_ = s.ackClass[p].RecordValue(us)
	}
	t.mu.Unlock()
}

// Received records a consumer's first receipt at time at with end-to-end
// latency d.
func (t *Timeline) Received(at time.Time, d time.Duration) {
	us := clampUS(d)
	t.mu.Lock()
	s := t.at(at)
	s.consumed++
	_ = s.e2e.RecordValue(us)
	t.mu.Unlock()
}

// Failed records a failed event at time at; shed says the server shed it.
func (t *Timeline) Failed(at time.Time, shed bool) {
	t.mu.Lock()
	s := t.at(at)
	s.errs++
	if shed {
		s.shed++
	}
	t.mu.Unlock()
}

// Target sets the offered rate of the slot that holds at.
func (t *Timeline) Target(at time.Time, rate float64) {
	t.mu.Lock()
	t.at(at).target = rate
	t.mu.Unlock()
}

// SetProbe attaches a probe sample to the slot that holds at.
func (t *Timeline) SetProbe(at time.Time, p ProbeSample) {
	t.mu.Lock()
	t.at(at).probe = &p
	t.mu.Unlock()
}

// Mark adds a labelled moment at time at.
func (t *Timeline) Mark(at time.Time, label string) {
	t.mu.Lock()
	t.marks = append(t.marks, Mark{T: t.Since(at), Label: label})
	t.mu.Unlock()
}

// Marks returns the marks added so far, in the order added.
func (t *Timeline) Marks() []Mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Mark(nil), t.marks...)
}

// Len returns the number of slots so far.
func (t *Timeline) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.slots)
}

// Second returns the figures of slot i (zero figures past the end).
func (t *Timeline) Second(i int) Second {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.second(i)
}

func (t *Timeline) second(i int) Second {
	out := Second{T: (time.Duration(i) * t.width).Seconds()}
	if i < 0 || i >= len(t.slots) {
		return out
	}
	s := t.slots[i]
	out.TargetRate = s.target
	out.Probe = s.probe
	out.Published, out.Consumed, out.Errors, out.Shed = s.published, s.consumed, s.errs, s.shed
	if s.ack != nil {
		out.AckMs = percentilesOf(s.ack)
		out.E2EMs = percentilesOf(s.e2e)
		for c, h := range s.ackClass {
			if h.TotalCount() > 0 {
				out.AckP99ByClass[c] = usToMS(h.ValueAtQuantile(99))
			}
		}
	}
	return out
}

// Seconds returns every slot's figures.
func (t *Timeline) Seconds() []Second {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Second, len(t.slots))
	for i := range t.slots {
		out[i] = t.second(i)
	}
	return out
}

// Width returns a slot's width.
func (t *Timeline) Width() time.Duration { return t.width }
