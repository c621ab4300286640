package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// asSense makes this test binary run as the sense command when a test
// starts it as the bench's own server (startChild runs os.Executable).
const asSense = "SENSE_TEST_RUN_AS_SENSE"

func TestMain(m *testing.M) {
	if os.Getenv(asSense) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// childForTest starts the bench's own server (this test binary as sense
// serve) with its log in a temporary directory.
func childForTest(t *testing.T) *childServer {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server")
	}
	t.Setenv(asSense, "1")
	srv, err := startChild(t.Context(), "never", "", filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	return srv
}

// benchResults runs sense bench with args and a fresh --out and returns
// its summary and its results.json.
func benchResults(t *testing.T, args ...string) (string, map[string]any) {
	t.Helper()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"bench", "--out", out}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("sense bench %s exited %d: %s\n%s", strings.Join(args, " "), code, stderr.String(), stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Server CPU") {
		t.Errorf("report.md has no server CPU section:\n%s", md)
	}
	return stdout.String(), res
}

// serverCPU returns the results' server CPU per event, failing the test
// unless it and its user and system parts are positive.
func serverCPU(t *testing.T, res map[string]any) float64 {
	t.Helper()
	per, _ := res["server_cpu_us_per_event"].(float64)
	user, _ := res["server_cpu_user_s"].(float64)
	system, _ := res["server_cpu_system_s"].(float64)
	if per <= 0 || user+system <= 0 {
		t.Fatalf("server_cpu_us_per_event %v, user %v s, system %v s: want positive figures (note %v)",
			res["server_cpu_us_per_event"], res["server_cpu_user_s"], res["server_cpu_system_s"], res["server_cpu_note"])
	}
	return per
}

func TestBenchServerCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("runs benches of a second each")
	}
	t.Setenv(asSense, "1")
	load := []string{"--duration", "1s", "--rate", "2000", "--producers", "1", "--fsync", "never"}

	t.Run("own server", func(t *testing.T) {
		summary, res := benchResults(t, load...)
		per := serverCPU(t, res)
		if !strings.Contains(summary, "Server CPU") {
			t.Errorf("summary has no server CPU:\n%s", summary)
		}
		t.Logf("own server: %.1f µs/event", per)
	})

	srv := childForTest(t)
	addr := []string{"--addr", srv.native}
	t.Run("addr and server-pid", func(t *testing.T) {
		_, res := benchResults(t, append(append(addr, "--server-pid", strconv.Itoa(srv.pid())), load...)...)
		serverCPU(t, res)
	})
	t.Run("addr alone", func(t *testing.T) {
		summary, res := benchResults(t, append(addr, load...)...)
		if v, ok := res["server_cpu_us_per_event"]; !ok || v != nil {
			t.Errorf("server_cpu_us_per_event = %v (present %v), want null", v, ok)
		}
		if !strings.Contains(summary, "not measured") || !strings.Contains(summary, "--server-pid") {
			t.Errorf("summary does not say the server CPU was not measured and how to:\n%s", summary)
		}
	})
}

// TestBenchFlagsRejected: a flag the bench cannot use is refused, before
// anything starts, with an error naming it.
func TestBenchFlagsRejected(t *testing.T) {
	const gone = 1 << 30 // above any pid_max
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--server-pid", "1"}, "--server-pid measures the server --addr names"},
		{[]string{"--addr", "127.0.0.1:1", "--server-pid", strconv.Itoa(gone)}, fmt.Sprintf("/proc/%d/stat", gone)},
		{[]string{"--mix", "1,2"}, `--mix "1,2": want three weights low,medium,critical`},
		{[]string{"--mix", "0,0,0"}, "at least one above 0"},
		{[]string{"--mix", "1,-1,1"}, "want three weights"},
		{[]string{"--max-in-flight", "9"}, "--max-in-flight 9: give 1 to 5 requests"},
		{[]string{"--linger", "-1ms"}, "--linger -1ms: give a duration from 0 (none) to 1s"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"bench", "--out", t.TempDir()}, c.args...)
		if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("sense %s: exit %d, stderr %q; want 1 and an error saying %q", strings.Join(args, " "), code, stderr.String(), c.says)
		}
	}
}

// TestChildServerCPU: the own server's CPU time adds up its incarnations,
// a killed one's included.
func TestChildServerCPU(t *testing.T) {
	srv := childForTest(t)
	first, err := srv.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	killed, err := srv.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	// A Go server's start takes more than nothing; the killed
	// incarnation's time comes from its exit status, to the µs.
	if killed.Total() <= 0 || killed.User < first.User || killed.System < first.System {
		t.Fatalf("CPU time %+v before the kill, %+v after: want it kept and positive", first, killed)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	again, err := srv.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	if again.User < killed.User || again.System < killed.System {
		t.Fatalf("CPU time %+v after the restart, below the killed incarnation's %+v", again, killed)
	}
}
