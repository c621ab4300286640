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

// TestMain lets the test binary serve as a child server (child.go), as
// the peers binary does.
func TestMain(m *testing.M) {
	serveIfChild()
	os.Exit(m.Run())
}

// require returns whether a peer whose Check is check can run here. In CI
// (CI=true) a missing server fails the test: CI must compare every peer.
func require(t *testing.T, check func() error) bool {
	t.Helper()
	err := check()
	if err == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %v", err)
	}
	t.Logf("running without it: %v", err)
	return false
}

func requireRedis(t *testing.T) bool {
	t.Helper()
	return require(t, func() error { _, err := redisServerPath(); return err })
}

func requireRabbit(t *testing.T) bool {
	t.Helper()
	return require(t, func() error { _, _, err := rabbitPaths(); return err })
}

// TestRunEverySystem runs both workloads briefly against every system and
// checks what the run verified and wrote, never how fast it was.
func TestRunEverySystem(t *testing.T) {
	systems := []string{"sense", "nats"}
	if requireRedis(t) {
		systems = append(systems, "redis")
	}
	if requireRabbit(t) {
		systems = append(systems, "rabbitmq")
	}
	w := Workload{Duration: time.Second, Size: 100, Rate: 2000, Window: 64}
	out := t.TempDir()
	var stdout, progress bytes.Buffer
	list := strings.Join(systems, ",")
	err := run(context.Background(), options{Workload: w, Out: out, Systems: list}, &stdout, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	peers, _ := selectPeers(allPeers(), list)

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
		for _, series := range []string{"ack_latency_ms", "e2e_latency_ms"} {
			lat, _ := s[series].(map[string]any)
			for _, k := range []string{"p50", "p99", "p999", "max"} {
				if _, ok := lat[k].(float64); !ok {
					t.Errorf("%s: %s.%s is %v", p.ID, series, k, lat[k])
				}
			}
		}
		if _, ok := s["server_cpu_us_per_event"]; !ok {
			t.Errorf("%s: no server_cpu_us_per_event", p.ID)
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
			if o.Read != o.Acknowledged || o.Unread != 0 || o.DuplicateReads != 0 || o.BadReads != 0 {
				t.Errorf("%s %s: %+v: want every acknowledged event read back once, as published", p.ID, name, o)
			}
		}
		// The server's CPU time is measured (on Linux, where /proc has
		// it), not judged.
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			for name, c := range map[string]ServerCPU{"max-rate": s.MaxRate.ServerCPU, "uniform": s.Uniform.ServerCPU} {
				if c.UsPerEvent == nil || *c.UsPerEvent < 0 || c.Note != "" {
					t.Errorf("%s %s: server CPU %+v: want it measured", p.ID, name, c)
				}
			}
			if u := s.Uniform.UsPerEvent; s.ServerCPUUsPerEvent == nil || u == nil || *s.ServerCPUUsPerEvent != *u {
				t.Errorf("%s: server_cpu_us_per_event %v, want the uniform workload's %v", p.ID, s.ServerCPUUsPerEvent, s.Uniform.UsPerEvent)
			}
		}
		if want := int64(w.Rate) * int64(w.Duration/time.Second); s.Uniform.Published != want {
			t.Errorf("%s uniform: published %d, the schedule has %d", p.ID, s.Uniform.Published, want)
		}
		if s.PublishRate != s.MaxRate.PublishRate || s.AckLatencyMs != s.Uniform.AckLatencyMs || s.E2ELatencyMs != s.Uniform.E2ELatencyMs {
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

// TestServersStopped checks that Close answers every event and leaves
// none of the server processes it started running: redis-server, and
// RabbitMQ with its epmd.
func TestServersStopped(t *testing.T) {
	type started struct {
		target Target
		procs  []*serverProc
		closed error // what a publish after Close gets
	}
	starts := map[string]func(dir string) (started, error){
		"redis": func(dir string) (started, error) {
			if !requireRedis(t) {
				return started{}, nil
			}
			rt, err := startRedis(context.Background(), dir, "everysec")
			if err != nil {
				return started{}, err
			}
			return started{rt, []*serverProc{rt.proc}, errRedisClosed}, nil
		},
		"rabbitmq": func(dir string) (started, error) {
			if !requireRabbit(t) {
				return started{}, nil
			}
			rt, err := startRabbit(context.Background(), dir)
			if err != nil {
				return started{}, err
			}
			return started{rt, []*serverProc{rt.proc, rt.epmd}, errRabbitClosed}, nil
		},
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			s, err := start(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if s.target == nil {
				t.Skip("not installed")
			}
			answers := make(chan error, 100)
			for range cap(answers) {
				s.target.Publish(context.Background(), []byte("x"), func(err error) { answers <- err })
			}
			// Let the answers arrive: Close may fail what is still in
			// flight, which this test does not judge.
			deadline := time.Now().Add(10 * time.Second)
			for len(answers) < cap(answers) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			var helpers []helper
			for _, p := range s.procs {
				helpers = append(helpers, helpersOf(p.Pid())...)
			}
			t.Logf("helper processes of the servers: %v", helpers)
			if err := s.target.Close(); err != nil {
				t.Fatal(err)
			}
			for range cap(answers) {
				if err := <-answers; err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range s.procs {
				if err := syscall.Kill(p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("%s pid %d after Close: kill -0 = %v, want ESRCH", p.name, p.Pid(), err)
				}
				if err := syscall.Kill(-p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("%s's process group %d after Close: kill -0 = %v, want ESRCH", p.name, p.Pid(), err)
				}
			}
			for _, h := range helpers {
				if h.running() {
					t.Errorf("helper process %d of the servers still runs after Close", h.pid)
				}
			}
			s.target.Publish(context.Background(), []byte("late"), func(err error) { answers <- err })
			if err := <-answers; !errors.Is(err, s.closed) {
				t.Fatalf("publish after Close: %v, want %v", err, s.closed)
			}
		})
	}
}
