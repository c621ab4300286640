package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/sensetest"
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

func TestRunUniform(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server for about a second")
	}
	srv := sensetest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const rate, size = 2000, 100
	rep, err := Run(ctx, Config{
		Addr: srv.NativeAddr().String(), Pipeline: "bench-uniform",
		Rate: rate, Duration: time.Second, Size: size,
		Producers: 2, Consumers: 2, Mix: [3]int{1, 1, 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results
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
