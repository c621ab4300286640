package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// hookFS calls hook before every write to a file it opened, with the
// file's path: a test slows or holds writes of the buffers it names.
type hookFS struct {
	vfs.FS
	hook func(name string)
}

type hookFile struct {
	vfs.File
	fs *hookFS
}

func (h *hookFS) Create(name string) (vfs.File, error) { return h.wrap(h.FS.Create(name)) }
func (h *hookFS) OpenRW(name string) (vfs.File, error) { return h.wrap(h.FS.OpenRW(name)) }

func (h *hookFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &hookFile{File: f, fs: h}, nil
}

func (f *hookFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.hook(f.Name())
	return f.File.WriteAt(p, off)
}

// laneOf tells which lane a segment file's buffer holds in the standard
// layout of one hub and one partition per lane: pipeline-0 is low,
// pipeline-1 medium, pipeline-2 critical. It returns -1 for other files.
func laneOf(name, pipeline string) int {
	for lane := range 3 {
		if strings.Contains(name, fmt.Sprintf("/%s-%d/", pipeline, lane)) && strings.HasSuffix(name, ".log") {
			return lane
		}
	}
	return -1
}

func lanesNode(t *testing.T, fs vfs.FS, target, interval time.Duration) *Node {
	t.Helper()
	reg, _ := jurisdiction.New([]string{"MA"}, nil)
	n, err := Open(Options{
		DataDir: t.TempDir(), FS: fs, Registry: reg,
		Hubs:       []HubSpec{{Name: "h", Jurisdiction: "*"}},
		Durability: seglog.Durability{Mode: seglog.SyncAlways},
		AutoCreate: true, Logger: quiet,
		TargetDelay: target, DelayInterval: interval,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func prioRequest(p event.Priority, count int, tag string) *ProduceRequest {
	req := &ProduceRequest{Pipeline: "lanes", ProducerID: -1, Arrived: time.Now()}
	for i := range count {
		req.Events = append(req.Events, Event{Value: fmt.Appendf(nil, "%s/%d", tag, i), HasPriority: true, Priority: p})
	}
	return req
}

// waitFor polls cond every millisecond, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// TestCriticalPassesSaturatedLowLane holds the low lane's writes so that
// its appends pile up, then appends a critical and a medium batch. The
// critical batch is acknowledged while every low one still waits, and the
// medium one is written before the low ones queued before it.
func TestCriticalPassesSaturatedLowLane(t *testing.T) {
	var (
		mu      sync.Mutex
		held    bool
		writes  []int // lanes in the order their writes started
		release = make(chan struct{})
	)
	fs := &hookFS{FS: vfs.Default, hook: func(name string) {
		lane := laneOf(name, "lanes")
		if lane < 0 {
			return
		}
		mu.Lock()
		h := held
		writes = append(writes, lane)
		mu.Unlock()
		if h && lane == int(event.Low) {
			<-release
		}
	}}
	n := lanesNode(t, fs, 0, 0)
	n.lanes.slots = 1
	ctx := context.Background()
	// Create the pipeline and its files before holding anything.
	for p := range event.Priority(3) {
		if err := n.Produce(ctx, prioRequest(p, 1, fmt.Sprint("warm", p)), make([]Result, 1)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	held, writes = true, nil
	mu.Unlock()

	var (
		order []string // completions
		omu   sync.Mutex
		wg    sync.WaitGroup
	)
	done := func(what string, res []Result) {
		for _, r := range res {
			if r.Code != result.OK {
				t.Errorf("%s: %v", what, r.Code)
			}
		}
		omu.Lock()
		order = append(order, what)
		omu.Unlock()
	}
	const lows = 4
	for i := range lows {
		wg.Go(func() {
			res := make([]Result, 10)
			if err := n.Produce(ctx, prioRequest(event.Low, 10, fmt.Sprint("low", i)), res); err != nil {
				t.Error(err)
			}
			done("low", res)
		})
	}
	// One low append holds the place (its write is held); the others wait.
	waitFor(t, "three low appends waiting", func() bool { return n.lanes.stats(event.Low, time.Now()).Waiting == lows-1 })
	wg.Go(func() {
		res := make([]Result, 10)
		if err := n.Produce(ctx, prioRequest(event.Medium, 10, "medium"), res); err != nil {
			t.Error(err)
		}
		done("medium", res)
	})
	waitFor(t, "the medium append waiting", func() bool { return n.lanes.stats(event.Medium, time.Now()).Waiting == 1 })

	res := make([]Result, 10)
	if err := n.Produce(ctx, prioRequest(event.Critical, 10, "critical"), res); err != nil {
		t.Fatal(err)
	}
	done("critical", res)
	omu.Lock()
	if len(order) != 1 || order[0] != "critical" {
		t.Errorf("completed while the low lane was held: %v, want only the critical batch", order)
	}
	omu.Unlock()

	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	// writes: the held low write, the critical one, then once released
	// the medium batch before the waiting low ones.
	var after []int
	for _, l := range writes {
		if l != int(event.Critical) {
			after = append(after, l)
		}
	}
	if len(after) != lows+1 || after[0] != int(event.Low) || after[1] != int(event.Medium) {
		t.Errorf("lanes of the writes (critical left out): %v, want the held low, then medium, then the other lows", after)
	}
	if got := stored(t, n, "lanes"); len(got) != 3+lows*10+20 {
		t.Errorf("%d events stored, want %d", len(got), 3+lows*10+20)
	}
}

// TestLaneOverloadShedsByDelay offers the three classes above what the
// node can take (every write of the pipeline's buffers is slowed), with a
// memory budget far from full: low requests are refused (OVERLOADED,
// reason delay) before any medium one, critical ones never, every
// acknowledged event is readable, and once the load falls every request
// is taken again.
func TestLaneOverloadShedsByDelay(t *testing.T) {
	fs := &hookFS{FS: vfs.Default, hook: func(name string) {
		if laneOf(name, "lanes") >= 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}}
	// A low or medium append takes about 2 ms (one write): medium, which
	// goes first, waits for at most the one under way and its own flow's
	// other request, low for the many low ones queued.
	n := lanesNode(t, fs, 5*time.Millisecond, 20*time.Millisecond)
	n.lanes.slots = 1
	ctx := context.Background()

	var (
		seq              atomic.Int64
		firstShed        [3]atomic.Int64 // sequence number of the class's first refusal
		acked, refused   [3]atomic.Int64
		wg               sync.WaitGroup
		producers        = [3]int{8, 2, 1}
		requestsPerFlow  = 60
		eventsPerRequest = 20
	)
	for p, k := range producers {
		for w := range k {
			wg.Go(func() {
				prio := event.Priority(p)
				for r := range requestsPerFlow {
					req := prioRequest(prio, eventsPerRequest, fmt.Sprintf("%d/%d/%d", p, w, r))
					res := make([]Result, len(req.Events))
					if err := n.Produce(ctx, req, res); err != nil {
						t.Error(err)
						return
					}
					s := seq.Add(1)
					for _, x := range res {
						switch x.Code {
						case result.OK:
							acked[prio].Add(1)
						case result.Overloaded:
							refused[prio].Add(1)
							firstShed[prio].CompareAndSwap(0, s)
						default:
							t.Errorf("%v: %v", prio, x.Code)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	t.Logf("acknowledged low/medium/critical %d/%d/%d, refused %d/%d/%d",
		acked[0].Load(), acked[1].Load(), acked[2].Load(), refused[0].Load(), refused[1].Load(), refused[2].Load())
	if refused[event.Critical].Load() != 0 {
		t.Fatalf("%d critical events refused", refused[event.Critical].Load())
	}
	if refused[event.Low].Load() == 0 {
		t.Fatal("no low event refused: the node was not overloaded")
	}
	if m := firstShed[event.Medium].Load(); m != 0 && m < firstShed[event.Low].Load() {
		t.Fatalf("medium refused (request %d) before low (request %d)", m, firstShed[event.Low].Load())
	}
	if v := testutil.ToFloat64(n.Metrics.shedTotal.WithLabelValues("lanes", "low", shedDelay)); v != float64(refused[event.Low].Load()) {
		t.Errorf("sense_events_shed_total{low,delay} = %v, want %d", v, refused[event.Low].Load())
	}
	if n.lanes.stats(event.Low, time.Now()).Shedding <= 0 {
		t.Error("no shedding time recorded for the low lane")
	}
	total := acked[0].Load() + acked[1].Load() + acked[2].Load()
	if got := stored(t, n, "lanes"); int64(len(got)) != total {
		t.Fatalf("%d events readable, %d acknowledged", len(got), total)
	}

	// A light load: one low request at a time. Within a few intervals
	// the lane takes everything again, and goes on doing so.
	taken := 0
	for i := 0; i < 500 && taken < 20; i++ {
		res := make([]Result, 5)
		if err := n.Produce(ctx, prioRequest(event.Low, 5, fmt.Sprint("after", i)), res); err != nil {
			t.Fatal(err)
		}
		if res[0].Code == result.OK {
			taken++
		} else {
			taken = 0
		}
	}
	if taken < 20 {
		t.Fatalf("the low lane still refuses under a light load (admitted fraction %v)", n.lanes.stats(event.Low, time.Now()).Admitted)
	}
}

// TestLaneAloneIsNotShedForDelay: low producers alone keep a standing
// queue far above the target (eight flows, one 2 ms append at a time), and
// nothing is refused: no class above low is there to make way for, and a
// refusal would only make them retry.
func TestLaneAloneIsNotShedForDelay(t *testing.T) {
	fs := &hookFS{FS: vfs.Default, hook: func(name string) {
		if laneOf(name, "lanes") >= 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}}
	n := lanesNode(t, fs, 5*time.Millisecond, 20*time.Millisecond)
	n.lanes.slots = 1
	ctx := context.Background()
	var acked, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for r := range 40 {
				req := prioRequest(event.Low, 20, fmt.Sprintf("%d/%d", w, r))
				res := make([]Result, len(req.Events))
				if err := n.Produce(ctx, req, res); err != nil {
					t.Error(err)
					return
				}
				for _, x := range res {
					switch x.Code {
					case result.OK:
						acked.Add(1)
					case result.Overloaded:
						refused.Add(1)
					default:
						t.Errorf("low: %v", x.Code)
					}
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() != 0 {
		t.Fatalf("%d low events refused with no other class offered (acknowledged %d)", refused.Load(), acked.Load())
	}
	// The queue stood above the target: most requests waited longer.
	var m dto.Metric
	if err := n.Metrics.laneDelay[event.Low].(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	total, below := m.GetHistogram().GetSampleCount(), uint64(0)
	for _, b := range m.GetHistogram().GetBucket() {
		if b.GetUpperBound() <= 0.005 {
			below = max(below, b.GetCumulativeCount())
		}
	}
	if total == 0 || below*2 > total {
		t.Fatalf("%d of %d low requests waited at most 5ms: no standing queue above the target, the test proves nothing", below, total)
	}
	if got := stored(t, n, "lanes"); int64(len(got)) != acked.Load() {
		t.Fatalf("%d events readable, %d acknowledged", len(got), acked.Load())
	}
}

// TestLowShedForCritical: the low flows of TestLaneAloneIsNotShedForDelay,
// with one critical flow beside them and no medium one. Low's standing
// queue is now in the way of a class above it: low requests are refused
// (OVERLOADED, reason delay), critical ones never. (Critical requests do
// not go through the lanes' places, so only their being offered tells the
// low lane that a class above it is there.)
func TestLowShedForCritical(t *testing.T) {
	fs := &hookFS{FS: vfs.Default, hook: func(name string) {
		if laneOf(name, "lanes") == int(event.Low) {
			time.Sleep(2 * time.Millisecond)
		}
	}}
	n := lanesNode(t, fs, 5*time.Millisecond, 20*time.Millisecond)
	n.lanes.slots = 1
	ctx := context.Background()
	var acked, refused [3]atomic.Int64
	var lowDone atomic.Bool
	count := func(prio event.Priority, res []Result) {
		for _, x := range res {
			switch x.Code {
			case result.OK:
				acked[prio].Add(1)
			case result.Overloaded:
				refused[prio].Add(1)
			default:
				t.Errorf("%v: %v", prio, x.Code)
			}
		}
	}
	var wg, low sync.WaitGroup
	for w := range 8 {
		low.Go(func() {
			for r := range 40 {
				req := prioRequest(event.Low, 20, fmt.Sprintf("%d/%d", w, r))
				res := make([]Result, len(req.Events))
				if err := n.Produce(ctx, req, res); err != nil {
					t.Error(err)
					return
				}
				count(event.Low, res)
			}
		})
	}
	wg.Go(func() {
		for r := 0; !lowDone.Load(); r++ {
			req := prioRequest(event.Critical, 5, fmt.Sprintf("c/%d", r))
			res := make([]Result, len(req.Events))
			if err := n.Produce(ctx, req, res); err != nil {
				t.Error(err)
				return
			}
			count(event.Critical, res)
			time.Sleep(time.Millisecond)
		}
	})
	low.Wait()
	lowDone.Store(true)
	wg.Wait()
	t.Logf("acknowledged low/critical %d/%d, refused %d/%d", acked[0].Load(), acked[2].Load(), refused[0].Load(), refused[2].Load())
	if refused[event.Critical].Load() != 0 {
		t.Fatalf("%d critical events refused", refused[event.Critical].Load())
	}
	if refused[event.Low].Load() == 0 {
		t.Fatal("no low event refused while its standing queue was above the target and critical events were offered")
	}
	if v := testutil.ToFloat64(n.Metrics.shedTotal.WithLabelValues("lanes", "low", shedDelay)); v != float64(refused[event.Low].Load()) {
		t.Errorf("sense_events_shed_total{low,delay} = %v, want %d", v, refused[event.Low].Load())
	}
	total := acked[0].Load() + acked[2].Load()
	if got := stored(t, n, "lanes"); int64(len(got)) != total {
		t.Fatalf("%d events readable, %d acknowledged", len(got), total)
	}
}

// TestCriticalBuffersNotPaced: the buffers of the low and medium lanes get
// the node's group-commit interval, critical ones none.
func TestCriticalBuffersNotPaced(t *testing.T) {
	reg, _ := jurisdiction.New([]string{"MA"}, nil)
	var mu sync.Mutex
	got := map[int32]time.Duration{}
	n, err := Open(Options{
		DataDir: t.TempDir(), Registry: reg,
		Hubs:                []HubSpec{{Name: "h", Jurisdiction: "*"}},
		Pipelines:           []PipelineSpec{{Name: "paced", Partitions: 3, DefaultPriority: "low", DefaultJurisdiction: "*"}},
		GroupCommitInterval: 700 * time.Microsecond, Logger: quiet,
		OpenBuffer: func(bs BufferSpec) (Buffer, error) {
			mu.Lock()
			got[bs.Partition] = bs.Log.GroupCommitInterval
			mu.Unlock()
			return OpenSegmentBuffer(bs.Dir, bs.Log)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	spec, ok := n.Pipeline("paced")
	if !ok {
		t.Fatal("no pipeline")
	}
	lanes := map[event.Priority]int{}
	mu.Lock()
	defer mu.Unlock()
	for i, sl := range spec.Layout() {
		lanes[sl.Lane]++
		want := 700 * time.Microsecond
		if sl.Lane == event.Critical {
			want = 0
		}
		if g, ok := got[int32(i)]; !ok || g != want {
			t.Errorf("partition %d (%v lane): group-commit interval %v (opened %v), want %v", i, sl.Lane, g, ok, want)
		}
	}
	if lanes[event.Low] == 0 || lanes[event.Critical] == 0 {
		t.Fatalf("layout %v has no low or no critical buffer", spec.Layout())
	}
}

// TestFsyncLatencyByLane: each group commit is counted under its buffer's
// lane, so a critical buffer's fdatasyncs can be told from the others'.
func TestFsyncLatencyByLane(t *testing.T) {
	n := lanesNode(t, nil, 0, 0)
	for _, p := range []event.Priority{event.Critical, event.Low, event.Low} {
		req := prioRequest(p, 3, p.String())
		res := make([]Result, len(req.Events))
		if err := n.Produce(context.Background(), req, res); err != nil || res[0].Code != result.OK {
			t.Fatalf("%v: %v %+v", p, err, res[0])
		}
	}
	count := func(p event.Priority) uint64 {
		var m dto.Metric
		if err := n.Metrics.fsyncLatency.WithLabelValues(p.String()).(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	if c, l, m := count(event.Critical), count(event.Low), count(event.Medium); c == 0 || l == 0 || m != 0 {
		t.Fatalf("fdatasyncs counted: critical %d, low %d, medium %d; want critical and low > 0, medium 0", c, l, m)
	}
}
