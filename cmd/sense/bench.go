package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/sensehq/sense/bench"
	"github.com/sensehq/sense/internal/loopback"
)

// benchFlags are the options of sense bench.
type benchFlags struct {
	profile, protocol, addr, out, fsync  string
	mix                                  string
	memoryLimit, cpuProfile, metrics     string
	rate                                 int64
	fraction                             float64
	duration, trial, linger              time.Duration
	size, producers, consumers, inFlight int
	serverPID                            int
	seed                                 uint64
	cluster                              int
}

// defaultRates are each profile's offered rate when --rate is not given:
// well inside what two cores sustain, so that latency is not queueing.
// The mixed profile offers 1.5x the maximum it finds first.
var defaultRates = map[string]int64{
	bench.ProfileUniform: 100_000,
	bench.ProfileBursty:  100_000,
	bench.ProfileMixed:   0,
	bench.ProfileFailure: 50_000,
}

func newBenchCmd() *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Sense on this machine: rates, latency percentiles, exactly-once check",
		Long: `Measure a Sense server with an open-loop load: events are sent at their
scheduled times whatever happened to the ones before, and latency runs from each
event's scheduled (intended) send time, so a stall counts against every event it
delayed (no coordinated omission).

Profiles:
  uniform  a constant rate
  bursty   a baseline with spikes to 5x; latency during spikes and recovery time
  mixed    80% low, 15% medium, 5% critical offered above capacity; what was shed
  failure  the server is killed (SIGKILL) and restarted during the run

Without --addr the bench starts its own server (this binary, "sense serve") on
loopback ports with a temporary data directory, fsync always unless --fsync says
otherwise, and removes the directory afterwards. --rate 0 first searches for the
maximum sustainable rate (trials of --trial each), then runs at --fraction of it
(the mixed profile at 1.5x it, to overload).

The server's CPU time (user and system, from /proc/PID/stat) per acknowledged
event is reported for the bench's own server, and with --addr for the local
process --server-pid names.

Every run verifies that each acknowledged event was consumed exactly once, with
the bytes sent; a run that lost or duplicated events says so and exits 1.

Output in --out: results.json, timeline.json, HdrHistogram .hgrm files, PNG
plots and report.md.`,
		Example: `  # A minute of uniform load at 100k events/s on a server of its own
  sense bench

  # Overload with priority classes: only low and medium may be shed
  sense bench --profile mixed

  # Find the maximum rate, then measure at half of it, over Kafka
  sense bench --rate 0 --fraction 0.5 --protocol kafka

  # Kill and restart the server during the run
  sense bench --profile failure --duration 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", bench.ProfileUniform, "workload: uniform, bursty, mixed or failure")
	fl.Int64Var(&f.rate, "rate", -1, "offered rate in events/s (baseline for bursty); 0 searches for the maximum first (default: 100000 uniform and bursty, 50000 failure, 0 mixed)")
	fl.Float64Var(&f.fraction, "fraction", 1, "with --rate 0: run at this fraction of the maximum found (the mixed profile uses 1.5)")
	fl.DurationVar(&f.duration, "duration", time.Minute, "length of the load")
	fl.DurationVar(&f.trial, "trial", 4*time.Second, "length of each trial of the maximum-rate search")
	fl.IntVar(&f.size, "size", 100, "event value size in bytes (at least 25)")
	fl.IntVar(&f.producers, "producers", 2, "producer connections (per class with the mixed profile)")
	fl.StringVar(&f.mix, "mix", "", "weights of the classes low,medium,critical, such as 0,0,1 for critical events only (default: the profile's; uniform and bursty send low)")
	fl.DurationVar(&f.linger, "linger", 0, "native producers' linger: how long a batch waits for more events before it is sent, up to 1s (default: none, a batch goes as soon as a request may; the Go client's own default is 2ms)")
	fl.IntVar(&f.inFlight, "max-in-flight", 0, "native producers' requests in flight per connection, 1 to 5 (default: the Go client's, 4)")
	fl.IntVar(&f.consumers, "consumers", 1, "consumer connections")
	fl.StringVar(&f.protocol, "protocol", bench.ProtocolNative, "native or kafka")
	fl.StringVar(&f.addr, "addr", "", "server to measure (native or Kafka listener, by --protocol); default: start one")
	fl.StringVar(&f.out, "out", "", "directory of the results (default bench-results/PROFILE-TIME)")
	fl.StringVar(&f.fsync, "fsync", "always", "fsync policy of the bench's own server: always, interval:<duration> or never; with --addr, the server's policy to report")
	fl.StringVar(&f.memoryLimit, "memory-limit", "", "router.memory_limit of the bench's own server (default: the server's own, 256MiB)")
	fl.IntVar(&f.serverPID, "server-pid", 0, "with --addr: pid of the server, a local process, to report its CPU time per event (default: not measured)")
	fl.StringVar(&f.metrics, "metrics", "", "with --addr: the server's metrics URL (http://HOST:PORT/metrics), to chart its fsync latency beside the bench's")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench itself (not the server) to this file")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the failure profile's kill times (default random)")
	fl.IntVar(&f.cluster, "cluster", 0, "start a cluster of this many nodes (2-7) instead of one server: the pipeline is replicated on every node (at most 3 replicas), clients use node 1, the failure profile kills the other nodes in turn, and the server CPU is the sum of every node's")
	return cmd
}

func runBench(cmd *cobra.Command, f *benchFlags) error {
	out := cmd.OutOrStdout()
	if _, ok := defaultRates[f.profile]; !ok {
		return fmt.Errorf("--profile %q: want uniform, bursty, mixed or failure", f.profile)
	}
	if f.protocol != bench.ProtocolNative && f.protocol != bench.ProtocolKafka {
		return fmt.Errorf("--protocol %q: want native or kafka", f.protocol)
	}
	if f.size < bench.HeaderSize {
		return fmt.Errorf("--size %d: must be at least %d bytes (the bench's header: run, sequence, send time, class)", f.size, bench.HeaderSize)
	}
	if f.duration <= 0 || f.trial <= 0 {
		return fmt.Errorf("--duration %v and --trial %v: must be positive", f.duration, f.trial)
	}
	if !(f.fraction > 0) {
		return fmt.Errorf("--fraction %v: must be above 0", f.fraction)
	}
	if f.linger < 0 || f.linger > time.Second {
		return fmt.Errorf("--linger %v: give a duration from 0 (none) to 1s, such as 1ms", f.linger)
	}
	if f.inFlight < 0 || f.inFlight > 5 {
		return fmt.Errorf("--max-in-flight %d: give 1 to 5 requests (or 0 for the client's default, 4)", f.inFlight)
	}
	mix, err := parseMix(f.mix)
	if err != nil {
		return err
	}
	if f.cluster != 0 && (f.cluster < 2 || f.cluster > 7) {
		return fmt.Errorf("--cluster %d: give 2 to 7 nodes (or 0 for one server)", f.cluster)
	}
	if f.cluster != 0 && f.addr != "" {
		return errors.New("--cluster starts a cluster of the bench's own; drop --addr")
	}
	if f.profile == bench.ProfileFailure && f.addr != "" {
		return errors.New("--profile failure kills the server: it needs the bench's own server; drop --addr")
	}
	if f.serverPID != 0 {
		if f.addr == "" {
			return errors.New("--server-pid measures the server --addr names; the bench's own server is measured without it")
		}
		if _, err := bench.ProcessCPU(f.serverPID); err != nil {
			return fmt.Errorf("--server-pid %d: %w", f.serverPID, err)
		}
	}
	if dir := os.Getenv("SENSE_CPUPROFILE"); dir != "" {
		// The bench's own process, beside its servers' (docs/bench.md).
		stop, err := startCPUProfile(filepath.Join(dir, "cpu-bench.pprof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	rate := f.rate
	if rate < 0 {
		rate = defaultRates[f.profile]
	}
	if f.seed == 0 {
		f.seed = rand.Uint64()
	}
	if f.out == "" {
		f.out = filepath.Join("bench-results", f.profile+"-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", f.out, err)
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	pipeline := fmt.Sprintf("bench-%s-%d", f.profile, time.Now().Unix())
	var srv *childServer
	var cl *benchCluster
	addr := f.addr
	switch {
	case f.cluster > 0:
		var err error
		cl, err = startBenchCluster(ctx, f.cluster, f.fsync, f.memoryLimit, f.out, pipeline, rate == 0)
		if err != nil {
			return err
		}
		defer cl.close()
		srv = cl.nodes[0] // clients use node 1
		addr = srv.native
		if f.protocol == bench.ProtocolKafka {
			addr = srv.kafka
		}
		fmt.Fprintf(out, "sense bench: own cluster of %d nodes (pids %v), clients on n1 at %s, fsync %s\n", f.cluster, cl.pids(), addr, f.fsync)
	case addr == "":
		var err error
		srv, err = startChild(ctx, f.fsync, f.memoryLimit, filepath.Join(f.out, "server.log"))
		if err != nil {
			return err
		}
		defer srv.close()
		addr = srv.native
		if f.protocol == bench.ProtocolKafka {
			addr = srv.kafka
		}
		fmt.Fprintf(out, "sense bench: own server (pid %d) on %s, data in %s, fsync %s", srv.pid(), addr, srv.data, f.fsync)
		if f.memoryLimit != "" {
			fmt.Fprintf(out, ", memory_limit %s", f.memoryLimit)
		}
		fmt.Fprintln(out)
	}

	cfg := bench.Config{
		Profile: f.profile, Protocol: f.protocol, Addr: addr,
		Pipeline: pipeline,
		Rate:     rate, Duration: f.duration, Size: f.size,
		Producers: f.producers, Consumers: f.consumers, MaxInFlight: f.inFlight, Linger: f.linger, Fsync: f.fsync,
	}
	cfg.Probe = &bench.Probe{MetricsURL: f.metrics}
	if cl != nil {
		cfg.Server = cl
		cfg.ServerCPU = cl.cpuTime
		cfg.Probe.MetricsURL = "http://" + srv.health + "/metrics"
	} else if srv != nil {
		cfg.Server = srv
		cfg.ServerCPU = srv.cpuTime
		cfg.Probe.MetricsURL = "http://" + srv.health + "/metrics"
	} else if pid := f.serverPID; pid != 0 {
		cfg.ServerCPU = func() (bench.CPUTime, error) { return bench.ProcessCPU(pid) }
	}
	if err := bench.Preset(&cfg, f.seed); err != nil {
		return err
	}
	if mix != nil {
		cfg.Mix, cfg.SplitClasses = *mix, true
	}
	var search *bench.Search
	if rate == 0 {
		fmt.Fprintf(out, "searching for the maximum sustainable rate (%v trials, ack p99 within 100ms, every event acknowledged)\n", f.trial)
		sc := cfg
		sc.Phases, sc.Faults, sc.Server, sc.Probe = nil, nil, nil, nil
		var err error
		search, err = bench.SearchMax(ctx, sc, bench.SearchOptions{Trial: f.trial, OnTrial: func(t bench.Trial) {
			verdict := "sustained"
			if !t.Sustained {
				verdict = "not sustained"
			}
			cpu := ""
			if c := t.ServerCPUUsPerEvent; c != nil {
				cpu = fmt.Sprintf(", server CPU %6.2f µs/event", *c)
			}
			fmt.Fprintf(out, "  trial %9.0f/s: published %9.0f/s, ack p99 %8.2f ms%s: %s\n", t.Rate, t.PublishRate, t.AckP99Ms, cpu, verdict)
		}})
		if err != nil {
			return err
		}
		frac := f.fraction
		if f.profile == bench.ProfileMixed && !cmd.Flags().Changed("fraction") {
			frac = 1.5
		}
		rate = max(int64(search.Max*frac), 1)
		fmt.Fprintf(out, "maximum sustained: %.0f events/s; running %s at %d events/s (%.2fx)\n", search.Max, f.profile, rate, frac)
		cfg.Rate = rate
		if err := bench.Preset(&cfg, f.seed); err != nil { // phases scale with the rate
			return err
		}
	}

	live := newLiveOutput(out, f.duration)
	cfg.OnSecond = live.second
	fmt.Fprintf(out, "%s over %s: %d events/s offered for %v, %d-byte events, %d producers, %d consumers\n",
		f.profile, f.protocol, cfg.Rate, f.duration, f.size, cfg.Producers, cfg.Consumers)
	rep, runErr := bench.Run(ctx, cfg)
	live.done()
	if rep == nil {
		return runErr
	}
	rep.Results.Search = search
	rep.Results.ServerMemoryLimit = f.memoryLimit
	rep.Command = "sense " + strings.Join(os.Args[1:], " ")
	if _, err := rep.Write(f.out); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if err := bench.WriteSummary(out, rep.Results); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nresults, plots and report.md in %s\n", f.out)
	if runErr != nil {
		return fmt.Errorf("verification failed: %w", runErr)
	}
	return nil
}

// liveOutput prints a line per second and, on a terminal, a progress bar
// below the lines.
type liveOutput struct {
	w   io.Writer
	p   *mpb.Progress
	bar *bar
	mu  sync.Mutex
}

type bar = mpb.Bar

func newLiveOutput(w io.Writer, d time.Duration) *liveOutput {
	l := &liveOutput{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		l.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
		l.bar = l.p.AddBar(int64(d/time.Second),
			mpb.PrependDecorators(decor.Name("load "), decor.Elapsed(decor.ET_STYLE_MMSS)),
			mpb.AppendDecorators(decor.Percentage()))
		l.w = l.p
	}
	return l
}

func (l *liveOutput) second(s bench.Second, _ float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%4.0fs  offered %8.0f/s  published %8d/s  consumed %8d/s  ack p99 %8.2f ms  e2e p99 %8.2f ms  errors %d  shed %d",
		s.T+1, s.TargetRate, s.Published, s.Consumed, s.AckMs.P99, s.E2EMs.P99, s.Errors, s.Shed)
	if p := s.Probe; p != nil {
		if p.FsyncCount > 0 {
			fmt.Fprintf(l.w, "  fsync %d, max <= %.1f ms", p.FsyncCount, p.FsyncMaxMs)
		}
		fmt.Fprintf(l.w, "  steal %.0f%%", p.StealPct)
	}
	fmt.Fprintln(l.w)
	if l.bar != nil {
		l.bar.Increment()
	}
}

func (l *liveOutput) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		l.bar.Abort(false)
		l.p.Wait()
		l.p = nil
	}
}

// childServer is the bench's own "sense serve", a child process on
// loopback ports with a temporary data directory.
type childServer struct {
	bin, data, logPath    string
	native, kafka, health string
	args, env             []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *os.File
	// pastCPU is the CPU time of the incarnations killed so far.
	pastCPU bench.CPUTime
}

func startChild(ctx context.Context, fsync, memoryLimit, logPath string) (*childServer, error) {
	data, err := os.MkdirTemp("", "sense-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: temporary data directory: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	s, err := newChild(data, logPath, ports, fsync, memoryLimit)
	if err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// newChild prepares a child server with its data in data, listening on
// ports (native, Kafka, HTTP); extra arguments go after serve's own.
func newChild(data, logPath string, ports []string, fsync, memoryLimit string, extra ...string) (*childServer, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: finding this binary to start a server: %w", err)
	}
	s := &childServer{bin: bin, data: data, logPath: logPath,
		native: ports[0], kafka: ports[1], health: ports[2]}
	s.args = append([]string{"serve", "--data", data, "--native-addr", s.native, "--kafka-addr", s.kafka,
		"--http-addr", s.health, "--quic-addr", "off", "--fsync", fsync, "--log-format", "text"}, extra...)
	s.env = append(os.Environ(), "SENSE_CONFIG=")
	if memoryLimit != "" {
		s.env = append(s.env, "SENSE_ROUTER_MEMORY_LIMIT="+memoryLimit)
	}
	return s, nil
}

// freePorts returns n loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	a, err := loopback.Addrs(n)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return a, nil
}

func (s *childServer) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Restart starts the server (again) on the same ports and data, and
// returns once /readyz answers 200.
func (s *childServer) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("bench: server log %s: %w", s.logPath, err)
		}
		s.log = f
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = s.env
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: starting %s serve: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + s.health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("bench: the server exited at start (%v); its log is in %s", cmd.ProcessState, s.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: the server was not ready within 60s; its log is in %s", s.logPath)
}

// Kill sends SIGKILL and waits for the process to go.
func (s *childServer) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("bench: no server to kill")
	}
	if err := s.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("bench: killing server pid %d: %w", s.cmd.Process.Pid, err)
	}
	<-s.exited
	s.pastCPU = s.pastCPU.Add(exitedCPU(s.cmd.ProcessState))
	s.cmd = nil
	return nil
}

// cpuTime returns the CPU time the server has used, over every
// incarnation: a killed one's from its exit status (wait4's rusage,
// exact, where /proc/PID/stat is gone with the process), the running
// one's from /proc/PID/stat.
func (s *childServer) cpuTime() (bench.CPUTime, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return s.pastCPU, nil
	}
	cur, err := bench.ProcessCPU(s.cmd.Process.Pid)
	select {
	case <-s.exited: // exited by itself, maybe as it was read
		return s.pastCPU.Add(exitedCPU(s.cmd.ProcessState)), nil
	default:
	}
	if err != nil {
		return bench.CPUTime{}, err
	}
	return s.pastCPU.Add(cur), nil
}

// exitedCPU is the CPU time of an exited process.
func exitedCPU(ps *os.ProcessState) bench.CPUTime {
	if ps == nil {
		return bench.CPUTime{}
	}
	return bench.CPUTime{User: ps.UserTime(), System: ps.SystemTime()}
}

// close stops the server (SIGTERM, then SIGKILL after 30s) and removes its
// data directory.
func (s *childServer) close() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.data)
}

// parseMix reads --mix, "L,M,C": the class weights; nil when not given.
func parseMix(s string) (*[3]int, error) {
	if s == "" {
		return nil, nil
	}
	var m [3]int
	parts := strings.Split(s, ",")
	ok := len(parts) == 3
	for i := 0; ok && i < 3; i++ {
		n, err := strconv.Atoi(strings.TrimSpace(parts[i]))
		ok = err == nil && n >= 0
		m[i] = n
	}
	if !ok || m == [3]int{} {
		return nil, fmt.Errorf("--mix %q: want three weights low,medium,critical, at least one above 0, such as 80,15,5", s)
	}
	return &m, nil
}
