package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Preset fills cfg for its profile from its Rate and Duration:
//
//   - uniform: the constant Rate.
//   - bursty: Rate as a baseline with spikes to 5x: a sixth of the run at
//     baseline first, then spikes of a twentieth of the run (at least
//     250ms) each followed by a fifth of the run at baseline.
//   - mixed: 80% low, 15% medium, 5% critical, one flow per class and
//     producer; offered above capacity by the caller's choice of Rate.
//   - failure: the clients retry, and the server is killed and restarted
//     about every 20s (at least once) at random moments drawn from seed.
func Preset(cfg *Config, seed uint64) error {
	switch cfg.Profile {
	case "", ProfileUniform:
		cfg.Profile = ProfileUniform
	case ProfileBursty:
		if cfg.Rate <= 0 || cfg.Duration <= 0 {
			return fmt.Errorf("bench: the bursty profile needs a positive rate and duration (got %d events/s, %v)", cfg.Rate, cfg.Duration)
		}
		cfg.Phases = burstyPhases(cfg.Rate, cfg.Duration)
	case ProfileMixed:
		cfg.Mix = [3]int{80, 15, 5}
		cfg.SplitClasses = true
	case ProfileFailure:
		cfg.Retries = true
		cfg.Faults = faultTimes(cfg.Duration, seed)
	default:
		return fmt.Errorf("bench: profile %q: want uniform, bursty, mixed or failure", cfg.Profile)
	}
	return nil
}

// SpikeFactor is how much the bursty profile's spikes offer over the
// baseline.
const SpikeFactor = 5

func burstyPhases(rate int64, d time.Duration) []Phase {
	warm := d / 6
	spike := max(d/20, 250*time.Millisecond)
	gap := max(d/5, 500*time.Millisecond)
	phases := []Phase{{Duration: warm, Rate: rate}}
	at := warm
	for at+spike+gap <= d {
		phases = append(phases, Phase{Duration: spike, Rate: SpikeFactor * rate, Spike: true}, Phase{Duration: gap, Rate: rate})
		at += spike + gap
	}
	if rest := d - at; rest > 0 {
		phases[len(phases)-1].Duration += rest
	}
	return phases
}

// faultTimes picks one kill per 20s of d (at least one), each at a random
// point in the middle of its share of the run.
func faultTimes(d time.Duration, seed uint64) []time.Duration {
	n := max(int(d/(20*time.Second)), 1)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	share := d / time.Duration(n)
	out := make([]time.Duration, n)
	for k := range out {
		lo := time.Duration(k)*share + share*3/10
		out[k] = lo + time.Duration(rng.Int64N(int64(share*4/10)+1))
	}
	return out
}

// spikes reports each spike of the run: its latency and how long the
// acknowledgement latency took to come back after it.
func (r *run) spikes() []Spike {
	if len(r.spikeAt) == 0 {
		return nil
	}
	// The baseline bound: twice the p99 of the events due before the
	// first spike, at least 1ms.
	bound := max(1.0, 2*r.baseP99())
	var out []Spike
	k := 0
	at := time.Duration(0)
	for i, p := range r.cfg.Phases {
		if !p.Spike {
			at += p.Duration
			continue
		}
		end := at + p.Duration
		limit := r.cfg.Duration
		if i+1 < len(r.cfg.Phases) {
			// Until the next spike, if any.
			next := end
			for _, q := range r.cfg.Phases[i+1:] {
				if q.Spike {
					limit = next
					break
				}
				next += q.Duration
			}
		}
		ack, e2e := r.spikeAck[k].Report(), r.spikeE2E[k].Report()
		out = append(out, Spike{
			StartS: at.Seconds(), EndS: end.Seconds(), Rate: float64(p.Rate),
			AckP99Ms: ack.P99, E2EP99Ms: e2e.P99,
			RecoveryS: r.recovery(end, limit, bound),
		})
		k++
		at = end
	}
	return out
}

// baseP99 is the acknowledgement p99, in ms, of the events due before the
// first spike.
func (r *run) baseP99() float64 { return r.baseAck.Report().P99 }

// stableSlots is how many consecutive 100ms slots must be within the
// bound for the latency to count as recovered.
const stableSlots = 5

// recovery returns the seconds from end until the acknowledgement p99 of
// the events due in stableSlots consecutive slots stays within bound, or
// -1 when it does not before limit.
func (r *run) recovery(end, limit time.Duration, bound float64) float64 {
	w := r.fine.Width()
	first := int((end + w - 1) / w)
	last := int(limit / w)
	for i := first; i+stableSlots <= last; i++ {
		ok := true
		for j := i; j < i+stableSlots; j++ {
			s := r.fine.Second(j)
			if s.Published == 0 || s.AckMs.P99 > bound {
				ok = false
				break
			}
		}
		if ok {
			return max((time.Duration(i)*w - end).Seconds(), 0)
		}
	}
	return -1
}

// SearchOptions bound a maximum-rate search.
type SearchOptions struct {
	// Trial is each trial's length (default 5s).
	Trial time.Duration
	// MaxAckP99 is the acknowledgement p99 a sustained rate keeps (default
	// 100ms).
	MaxAckP99 time.Duration
	// Start is the first rate tried (default 50,000 events/s).
	Start int64
	// OnTrial, when set, is told each trial's outcome.
	OnTrial func(Trial)
}

// SearchMax finds the highest rate cfg's workload sustains: it doubles the
// rate from Start while trials are sustained (every event acknowledged,
// the publish rate within 5% of the offered one, the ack p99 within
// MaxAckP99), halves it from Start while they are not, then bisects three
// times between the last sustained and the first failed rate. Each trial
// writes its own pipeline (cfg.Pipeline plus "-search-N").
func SearchMax(ctx context.Context, cfg Config, opts SearchOptions) (*Search, error) {
	if opts.Trial <= 0 {
		opts.Trial = 5 * time.Second
	}
	if opts.MaxAckP99 <= 0 {
		opts.MaxAckP99 = 100 * time.Millisecond
	}
	if opts.Start <= 0 {
		opts.Start = 50_000
	}
	if cfg.Pipeline == "" {
		cfg.Pipeline = "bench"
	}
	s := &Search{}
	try := func(rate int64) (bool, error) {
		c := cfg
		c.Profile, c.Rate, c.Duration, c.Phases, c.Faults, c.Server, c.OnSecond = "search", rate, opts.Trial, nil, nil, nil, nil
		c.Probe = nil
		c.Pipeline = fmt.Sprintf("%s-search-%d", cfg.Pipeline, len(s.Trials)+1)
		c.RunID = 0
		rep, err := Run(ctx, c)
		if rep == nil {
			return false, err
		}
		res := rep.Results
		var failed int64
		for _, n := range res.Errors {
			failed += n
		}
		t := Trial{Rate: float64(rate), PublishRate: res.PublishRate, AckP99Ms: res.AckLatencyMs.P99,
			ServerCPUUsPerEvent: res.ServerCPUUsPerEvent}
		t.Sustained = err == nil && failed == 0 && res.PublishRate >= 0.95*float64(rate) &&
			res.AckLatencyMs.P99 <= float64(opts.MaxAckP99)/float64(time.Millisecond)
		s.Trials = append(s.Trials, t)
		if opts.OnTrial != nil {
			opts.OnTrial(t)
		}
		if t.Sustained {
			s.Max = max(s.Max, float64(rate))
		}
		return t.Sustained, ctx.Err()
	}
	lo, hi := int64(0), int64(0)
	rate := opts.Start
	ok, err := try(rate)
	if err != nil {
		return s, err
	}
	if ok {
		lo = rate
		for hi == 0 && rate < 1<<30 {
			rate *= 2
			if ok, err = try(rate); err != nil {
				return s, err
			}
			if ok {
				lo = rate
			} else {
				hi = rate
			}
		}
	} else {
		hi = rate
		for lo == 0 && rate > 1000 {
			rate /= 2
			if ok, err = try(rate); err != nil {
				return s, err
			}
			if ok {
				lo = rate
			} else {
				hi = rate
			}
		}
	}
	if lo == 0 {
		return s, fmt.Errorf("bench: no rate down to %d events/s was sustained (ack p99 within %v, every event acknowledged)", rate, opts.MaxAckP99)
	}
	for range 3 {
		if hi == 0 || hi-lo <= lo/20 {
			break
		}
		mid := (lo + hi) / 2
		if ok, err = try(mid); err != nil {
			return s, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s, nil
}
