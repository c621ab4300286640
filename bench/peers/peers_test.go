package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRedis returns whether Redis can run here. In CI (CI=true) a
// missing redis-server fails the test: CI must compare every peer.
func requireRedis(t *testing.T) bool {
	t.Helper()
	_, err := redisServerPath()
	if err == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %v", err)
	}
	t.Logf("running without Redis: %v", err)
	return false
}

// TestRunEverySystem runs both workloads briefly against every system and
// checks what the run verified and wrote, never how fast it was.
func TestRunEverySystem(t *testing.T) {
	systems := "all"
	if !requireRedis(t) {
		systems = "sense,nats"
	}
	w := Workload{Duration: time.Second, Size: 100, Rate: 2000, Window: 64}
	out := t.TempDir()
	var stdout, progress bytes.Buffer
	err := run(context.Background(), options{Workload: w, Out: out, Systems: systems}, &stdout, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	peers, _ := selectPeers(allPeers(), systems)

	raw, err := os.ReadFile(filepath.Join(out, "peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The contract, read as any consumer would.
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"machine", "event_size", "duration_s", "uniform_rate", "systems"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("peers.json lacks %q", key)
		}
	}
	machine, _ := doc["machine"].(map[string]any)
	if cores, _ := machine["cores"].(float64); cores < 1 || machine["cpu_model"] == "" {
		t.Errorf("machine %v: want cores and cpu_model", machine)
	}
	if doc["event_size"] != float64(w.Size) || doc["duration_s"] != w.Duration.Seconds() || doc["uniform_rate"] != float64(w.Rate) {
		t.Errorf("event_size %v, duration_s %v, uniform_rate %v: want %d, %v, %d", doc["event_size"], doc["duration_s"], doc["uniform_rate"], w.Size, w.Duration.Seconds(), w.Rate)
	}
	systemsDoc, _ := doc["systems"].(map[string]any)
	if len(systemsDoc) != len(peers) {
		t.Errorf("peers.json has %d systems, want %d", len(systemsDoc), len(peers))
	}
	for _, p := range peers {
		s, ok := systemsDoc[p.ID].(map[string]any)
		if !ok {
			t.Errorf("peers.json lacks system %q", p.ID)
			continue
		}
		if s["durability"] != p.Durability {
			t.Errorf("%s: durability %v, want %q", p.ID, s["durability"], p.Durability)
		}
		if _, ok := s["publish_rate"].(float64); !ok {
			t.Errorf("%s: publish_rate %v is not a number", p.ID, s["publish_rate"])
		}
		if _, ok := s["ratio"].(float64); !ok {
			t.Errorf("%s: ratio %v is not a number", p.ID, s["ratio"])
		}
		lat, _ := s["ack_latency_ms"].(map[string]any)
		for _, k := range []string{"p50", "p99", "p999", "max"} {
			if _, ok := lat[k].(float64); !ok {
				t.Errorf("%s: ack_latency_ms.%s is %v", p.ID, k, lat[k])
			}
		}
	}

	// What was measured.
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	sense := rep.Systems[senseID].PublishRate
	for _, p := range peers {
		s := rep.Systems[p.ID]
		if s == nil || s.MaxRate == nil || s.Uniform == nil {
			t.Errorf("%s: missing results %+v", p.ID, s)
			continue
		}
		if s.Error != "" {
			t.Errorf("%s: %s", p.ID, s.Error)
		}
		for name, o := range map[string]Outcome{"max-rate": s.MaxRate.Outcome, "uniform": s.Uniform.Outcome} {
			if o.Published == 0 || o.Acknowledged != o.Published || o.Errors != 0 || o.Unanswered != 0 || o.DoubleAnswers != 0 {
				t.Errorf("%s %s: %+v: want every publish acknowledged once", p.ID, name, o)
			}
		}
		if want := int64(w.Rate) * int64(w.Duration/time.Second); s.Uniform.Published != want {
			t.Errorf("%s uniform: published %d, the schedule has %d", p.ID, s.Uniform.Published, want)
		}
		if s.PublishRate != s.MaxRate.PublishRate || s.AckLatencyMs != s.Uniform.AckLatencyMs {
			t.Errorf("%s: top-level figures %v, %+v differ from the workloads' %v, %+v", p.ID, s.PublishRate, s.AckLatencyMs, s.MaxRate.PublishRate, s.Uniform.AckLatencyMs)
		}
		if s.Ratio == nil || math.Abs(*s.Ratio-sense/s.PublishRate) > 1e-9**s.Ratio {
			t.Errorf("%s: ratio %v, want %v / %v", p.ID, s.Ratio, sense, s.PublishRate)
		}
		if !strings.Contains(stdout.String(), p.Durability) {
			t.Errorf("the table does not state %s's durability %q:\n%s", p.ID, p.Durability, stdout.String())
		}
	}
}

// TestNATSSyncModes checks that the embedded server runs in the modes the
// table states.
func TestNATSSyncModes(t *testing.T) {
	for _, syncAlways := range []bool{true, false} {
		nt, err := startNATS(context.Background(), t.TempDir(), syncAlways)
		if err != nil {
			t.Fatal(err)
		}
		always, interval := nt.syncConfig()
		if err := nt.Close(); err != nil {
			t.Fatal(err)
		}
		if always != syncAlways {
			t.Errorf("SyncAlways = %v, want %v", always, syncAlways)
		}
		if !syncAlways && interval != natsDefaultSync {
			t.Errorf("default sync interval %v, want %v as stated", interval, natsDefaultSync)
		}
	}
}

// TestRedisServerStopped checks that Close answers every event and leaves
// no redis-server running.
func TestRedisServerStopped(t *testing.T) {
	if !requireRedis(t) {
		t.Skip("redis-server is not installed")
	}
	rt, err := startRedis(context.Background(), t.TempDir(), "everysec")
	if err != nil {
		t.Fatal(err)
	}
	pid := rt.cmd.Process.Pid
	answers := make(chan error, 100)
	for range cap(answers) {
		rt.Publish(context.Background(), []byte("x"), func(err error) { answers <- err })
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for range cap(answers) {
		if err := <-answers; err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server pid %d after Close: kill -0 = %v, want ESRCH", pid, err)
	}
	rt.Publish(context.Background(), []byte("late"), func(err error) { answers <- err })
	if err := <-answers; !errors.Is(err, errRedisClosed) {
		t.Fatalf("publish after Close: %v, want %v", err, errRedisClosed)
	}
}
