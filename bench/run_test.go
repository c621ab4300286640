package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

func TestPriorityOf(t *testing.T) {
	mix := [3]int{2, 0, 1}
	want := []event.Priority{event.Low, event.Low, event.Critical, event.Low}
	for i, w := range want {
		if got := priorityOf(mix, uint64(i)); got != w {
			t.Errorf("priorityOf(%v, %d) = %v, want %v", mix, i, got, w)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	for _, c := range []Config{
		{Rate: 0, Duration: time.Second, Size: 100},
		{Rate: 10, Duration: 0, Size: 100},
		{Rate: 10, Duration: time.Second, Size: 24},
		{Rate: 10, Duration: time.Second, Size: 100, Mix: [3]int{1, -1, 0}},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) succeeded", c)
		}
	}
}

func TestCPUWindow(t *testing.T) {
	readings := []CPUTime{{User: time.Second, System: time.Second}, {User: 3 * time.Second, System: 1500 * time.Millisecond}}
	read := func() (CPUTime, error) {
		c := readings[0]
		readings = readings[1:]
		return c, nil
	}
	w := startCPU(read)
	w.end()
	res := &Results{Acknowledged: 1000}
	w.report(res)
	if res.ServerCPUUsPerEvent == nil || *res.ServerCPUUsPerEvent != 2500 || *res.ServerCPUUserS != 2 || *res.ServerCPUSystemS != 0.5 || res.ServerCPUNote != "" {
		t.Errorf("2.5s over 1000 events: %v µs/event, user %v s, system %v s, note %q; want 2500, 2, 0.5", res.ServerCPUUsPerEvent, res.ServerCPUUserS, res.ServerCPUSystemS, res.ServerCPUNote)
	}

	calls := 0
	w = startCPU(func() (CPUTime, error) {
		if calls++; calls == 2 {
			return CPUTime{}, errors.New("pid 7 is gone")
		}
		return CPUTime{}, nil
	})
	w.end()
	res = &Results{Acknowledged: 1000}
	w.report(res)
	if res.ServerCPUUsPerEvent != nil || res.ServerCPUNote != "not measured: pid 7 is gone" {
		t.Errorf("a failed reading: %v µs/event, note %q", res.ServerCPUUsPerEvent, res.ServerCPUNote)
	}

	w = startCPU(func() (CPUTime, error) { return CPUTime{}, nil })
	w.end()
	res = &Results{}
	w.report(res)
	if res.ServerCPUUsPerEvent != nil || !strings.Contains(res.ServerCPUNote, "no event was acknowledged") {
		t.Errorf("no event acknowledged: %v µs/event, note %q", res.ServerCPUUsPerEvent, res.ServerCPUNote)
	}
}

func TestRunUniform(t *testing.T) {
	srv, ctx := inProcess(t, "")
	const rate, size = 2000, 100
	rep, err := Run(ctx, Config{
		Addr: srv.NativeAddr().String(), Pipeline: "bench-uniform",
		Rate: rate, Duration: time.Second, Size: size,
		Producers: 2, Consumers: 2, Mix: [3]int{1, 1, 1},
		// The server is in this process: its CPU time is the process's.
		ServerCPU: func() (CPUTime, error) { return ProcessCPU(os.Getpid()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
	if c := res.ServerCPUUsPerEvent; c == nil || *c <= 0 || *res.ServerCPUUserS+*res.ServerCPUSystemS <= 0 || res.ServerCPUNote != "" {
		t.Errorf("server CPU %v µs/event (user %v s, system %v s, note %q), want a positive figure", c, res.ServerCPUUserS, res.ServerCPUSystemS, res.ServerCPUNote)
	}
	var failed int64
	for _, n := range res.Errors {
		failed += n
	}
	if res.Acknowledged+failed != rate || res.Acknowledged < rate-10 {
		t.Fatalf("acknowledged %d, failed %d (%v); want %d sent, nearly all acknowledged", res.Acknowledged, failed, res.Errors, rate)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.Consumed != res.Acknowledged {
		t.Fatalf("lost %d duplicated %d consumed %d acknowledged %d", res.Lost, res.Duplicated, res.Consumed, res.Acknowledged)
	}
	if res.Profile != "uniform" || res.Protocol != "native" || res.EventSize != size || res.DurationS <= 0 ||
		res.PublishRate <= 0 || res.ConsumeRate <= 0 || res.Machine.Cores < 1 {
		t.Fatalf("results header %+v", res)
	}
	for name, rep := range map[string]LatencyReport{"ack": res.AckLatencyMs, "e2e": res.E2ELatencyMs} {
		for class, p := range map[string]Percentiles{"all": rep.Percentiles, "low": rep.ByPriority.Low,
			"medium": rep.ByPriority.Medium, "critical": rep.ByPriority.Critical} {
			if !(p.P50 > 0 && p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.P999 && p.P999 <= p.P9999 && p.P9999 <= p.Max) {
				t.Errorf("%s latency, %s: not populated and ordered: %+v", name, class, p)
			}
		}
	}
	if _, err := res.WriteJSON(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestRunKafka(t *testing.T) {
	srv, ctx := inProcess(t, "")
	const rate = 2000
	rep, err := Run(ctx, Config{Protocol: ProtocolKafka, Addr: srv.KafkaAddr().String(), Pipeline: "bench-kafka",
		Rate: rate, Duration: time.Second, Size: 64, Producers: 2, Consumers: 2, Mix: [3]int{1, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
	if res.Protocol != "kafka" || res.Acknowledged != rate || res.Consumed != rate || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("kafka run: protocol %s acknowledged %d consumed %d lost %d duplicated %d errors %v",
			res.Protocol, res.Acknowledged, res.Consumed, res.Lost, res.Duplicated, res.Errors)
	}
	if res.ServerCPUUsPerEvent != nil || res.ServerCPUUserS != nil || !strings.Contains(res.ServerCPUNote, "--server-pid") {
		t.Errorf("no server process given: server CPU %v, note %q; want none and a note on --server-pid", res.ServerCPUUsPerEvent, res.ServerCPUNote)
	}
	// Every class went through its own lane.
	for c, p := range [3]Percentiles{res.AckLatencyMs.ByPriority.Low, res.AckLatencyMs.ByPriority.Medium, res.AckLatencyMs.ByPriority.Critical} {
		if p.P50 <= 0 {
			t.Errorf("class %s has no acknowledgement latency", priorityNames[c])
		}
	}
}

func TestRunBursty(t *testing.T) {
	srv, ctx := inProcess(t, "")
	cfg := Config{Profile: ProfileBursty, Addr: srv.NativeAddr().String(), Pipeline: "bench-bursty",
		Rate: 1000, Duration: 3 * time.Second, Size: 64}
	if err := Preset(&cfg, 1); err != nil {
		t.Fatal(err)
	}
	var seconds []Second
	cfg.OnSecond = func(s Second, _ float64) { seconds = append(seconds, s) }
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
	// 0.5s baseline, then spikes of 250ms at 5000/s each followed by
	// 600ms at 1000/s: 500 + 2*(1250+600) + the remainder's 300 events.
	want := cfg.Phases
	var n int64
	for _, p := range want {
		n += int64(p.Duration) * p.Rate / int64(time.Second)
	}
	if res.Acknowledged != n || res.Consumed != n || res.Lost != 0 {
		t.Fatalf("acknowledged %d consumed %d lost %d, want %d each and none lost (errors %v)", res.Acknowledged, res.Consumed, res.Lost, n, res.Errors)
	}
	if len(res.Spikes) != 2 {
		t.Fatalf("%d spikes reported, want 2: %+v", len(res.Spikes), res.Spikes)
	}
	for i, s := range res.Spikes {
		if s.Rate != 5000 || s.EndS-s.StartS != 0.25 || s.AckP99Ms <= 0 || s.E2EP99Ms <= 0 || s.RecoveryS < -1 {
			t.Errorf("spike %d: %+v", i+1, s)
		}
	}
	if len(rep.Marks) != 2 || rep.Marks[0].Label != "spike 1" {
		t.Errorf("marks %+v, want one per spike", rep.Marks)
	}
	// The live seconds saw the spike's offered rate.
	var peak float64
	for _, s := range seconds {
		peak = max(peak, s.TargetRate)
	}
	if len(seconds) < 2 || peak <= 1000 {
		t.Errorf("live seconds %d, peak offered %v: want the spike's rate above the baseline", len(seconds), peak)
	}
}

func TestRunMixedNeverShedsCritical(t *testing.T) {
	// A tiny memory limit puts the server past its shed levels at once.
	srv, ctx := inProcess(t, "router:\n  memory_limit: 1MiB\n")
	cfg := Config{Profile: ProfileMixed, Addr: srv.NativeAddr().String(), Pipeline: "bench-mixed",
		Rate: 40_000, Duration: time.Second, Size: 2000, Producers: 4}
	if err := Preset(&cfg, 1); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
	var failed int64
	for _, v := range res.Errors {
		failed += v
	}
	if res.Acknowledged+failed != 40_000 {
		t.Fatalf("acknowledged %d + failed %d != 40000 sent (%v)", res.Acknowledged, failed, res.Errors)
	}
	if res.ShedByPriority["critical"] != 0 {
		t.Fatalf("critical events shed: %v", res.ShedByPriority)
	}
	if res.Shed == 0 || res.Shed != res.Errors["OVERLOADED"] || res.Shed != res.ShedByPriority["low"]+res.ShedByPriority["medium"] {
		t.Fatalf("shed %d, by class %v, errors %v: disagree", res.Shed, res.ShedByPriority, res.Errors)
	}
	if res.AckLatencyMs.ByPriority.Critical.P50 <= 0 {
		t.Fatal("no critical event acknowledged")
	}
	t.Logf("shed %v of 40000", res.ShedByPriority)
}

// restartable runs an in-process server that the failure profile stops
// and starts again on the same addresses and data.
type restartable struct {
	t   *testing.T
	cfg *config.Config
	srv *server.Server
}

func (r *restartable) Kill() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: connections are cut at once
	r.srv.Shutdown(ctx)
	return nil
}

// Restart starts the server on the same port. The port may be briefly
// taken by a connection's ephemeral end meanwhile: it retries for a while.
func (r *restartable) Restart(ctx context.Context) error {
	for deadline := time.Now().Add(10 * time.Second); ; {
		srv, err := server.Start(r.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			r.srv = srv
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func TestRunFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server for a few seconds")
	}
	first := sensetest.Start(t, "")
	cfg := new(config.Config)
	cfg.Node.DataDir = t.TempDir()
	cfg.Listeners.Native = first.NativeAddr().String()
	cfg.Listeners.HTTP = config.ListenerOff
	cfg.Listeners.Kafka = config.ListenerOff
	cfg.Listeners.QUIC = config.ListenerOff
	// Take over the first server's native port: stop it, start ours.
	first.Shutdown(context.Background())
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctl := &restartable{t: t, cfg: cfg}
	if err := ctl.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.srv.Shutdown(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := Config{Profile: ProfileFailure, Addr: cfg.Listeners.Native, Pipeline: "bench-failure",
		Rate: 2000, Duration: 3 * time.Second, Size: 64, Server: ctl}
	if err := Preset(&run, 7); err != nil {
		t.Fatal(err)
	}
	if len(run.Faults) != 1 || !run.Retries {
		t.Fatalf("failure preset: faults %v retries %v", run.Faults, run.Retries)
	}
	rep, err := Run(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
	if len(res.Faults) != 1 || res.Faults[0].RestartedAtS < res.Faults[0].KilledAtS {
		t.Fatalf("faults %+v, want one kill and restart", res.Faults)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.Acknowledged == 0 || res.Consumed != res.Acknowledged {
		t.Fatalf("through a restart: acknowledged %d consumed %d lost %d duplicated %d errors %v",
			res.Acknowledged, res.Consumed, res.Lost, res.Duplicated, res.Errors)
	}
}

// inProcess skips the test in -short mode, starts a dev server (from yaml
// when given) and returns it with a context bounding the test.
func inProcess(t *testing.T, yaml string) (*server.Server, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a server for a few seconds")
	}
	srv := sensetest.Start(t, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return srv, ctx
}
