// Command peers measures Sense side by side with the systems people would
// use instead, in one invocation on one machine: NATS JetStream
// (nats-server, file storage, with SyncAlways and with its default
// 2-minute sync), Redis Streams (redis-server with appendfsync always and
// everysec) and RabbitMQ Streams (rabbitmq-server, a stream queue over
// AMQP 0.9.1 with publisher confirms).
//
// Every server runs as a process of its own, started by this program on
// loopback ports with its data in a temporary directory (Sense and
// nats-server in a copy of this program, see child.go), so that its CPU
// time can be read apart from the clients'. Every system runs the same two
// workloads through the same load code (a Target per system), with the
// same event size, one after the other, each workload against a fresh
// server, while a consumer on another connection reads the stream back:
//
//   - max-rate: publish as fast as acknowledgements allow with a bounded
//     number of unanswered events; publish_rate is acknowledged events
//     over the time to the last answer.
//   - uniform: open loop at a fixed rate, latency measured from each
//     event's intended send time (coordinated omission corrected) to its
//     acknowledgement and to its first read.
//
// It prints a table with each system's durability mode, its max
// publish_rate and the ratio of Sense's rate to its, its uniform ack and
// end-to-end latency, and its server's CPU time per event at the uniform
// rate, and writes peers.json. Run it from the repository root:
//
//	go run ./bench/peers [--duration 10s] [--size 100] [--rate 20000]
//	    [--window 4096] [--systems all] [--out .]
//
// It lives in its own module so that the sense binary does not carry the
// peers' code. See docs/peers.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	Workload
	Out     string
	Systems string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each workload publishes, per system")
	fs.IntVar(&o.Size, "size", 100, "event value size in bytes")
	fs.Int64Var(&o.Rate, "rate", 20000, "uniform workload's offered rate in events/s, the same for every system")
	fs.IntVar(&o.Window, "window", 4096, "max-rate workload's bound on unanswered events, the same for every system")
	fs.StringVar(&o.Out, "out", ".", "directory to write peers.json to")
	fs.StringVar(&o.Systems, "systems", "all", "comma-separated systems to run: all, or among "+strings.Join(names(allPeers()), ", ")+" (Sense always runs: the ratios are relative to it)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench/peers [flags]\n\nRuns the max-rate and uniform workloads against Sense, NATS JetStream, Redis Streams and\nRabbitMQ Streams, reads every stream back, and writes peers.json. Flags:\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	return o, o.Workload.Validate()
}

func main() {
	serveIfChild()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// run runs every selected peer, prints the table to stdout (progress goes
// to progress) and writes peers.json. It returns an error when a system
// failed or left publishes unanswered, after writing what it measured.
func run(ctx context.Context, o options, stdout, progress io.Writer) error {
	if err := o.Workload.Validate(); err != nil {
		return err
	}
	peers, err := selectPeers(allPeers(), o.Systems)
	if err != nil {
		return err
	}
	if err := checkPeers(peers); err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "sense-peers-")
	if err != nil {
		return fmt.Errorf("temporary directory for the servers' data: %w", err)
	}
	defer os.RemoveAll(root)

	rep := newReport(o.Workload)
	var failed []error
	for _, p := range peers {
		res := runPeer(ctx, p, o.Workload, root, progress)
		rep.add(p.ID, res)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted during %s: %w", p.ID, context.Cause(ctx))
		}
		if res.Error != "" {
			failed = append(failed, fmt.Errorf("%s (%s): %s", p.ID, p.Durability, res.Error))
		}
	}
	rep.computeRatios()
	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	path, err := rep.WriteJSON(o.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	return errors.Join(failed...)
}

// runPeer runs both workloads against p, each against a fresh server.
func runPeer(ctx context.Context, p Peer, w Workload, root string, progress io.Writer) *SystemResult {
	res := &SystemResult{System: p.System, Durability: p.Durability}
	var errs []string
	fail := func(workload string, err error) {
		errs = append(errs, workload+": "+err.Error())
		fmt.Fprintf(progress, "  %s: %v\n", workload, err)
	}
	fmt.Fprintf(progress, "%s, %s:\n", p.System, p.Durability)

	var mr MaxRate
	err := withTarget(ctx, p, root, "max-rate", func(t Target) (err error) {
		mr, err = runMaxRate(ctx, t, w, progress)
		return err
	})
	if err == nil {
		err = mr.Verify()
	}
	if mr.Published > 0 {
		res.MaxRate = &mr
		res.PublishRate = mr.PublishRate
		fmt.Fprintf(progress, "  max-rate: %s ev/s (%d acknowledged, %d read back, %d errors in %.1fs; server CPU %s µs/ev)\n",
			thousands(mr.PublishRate), mr.Acknowledged, mr.Read, mr.Errors, mr.ElapsedS, cpuText(mr.ServerCPU))
	}
	if err != nil {
		fail("max-rate", err)
	}
	if ctx.Err() != nil {
		res.Error = strings.Join(errs, "; ")
		return res
	}

	var u Uniform
	err = withTarget(ctx, p, root, "uniform", func(t Target) (err error) {
		u, err = runUniform(ctx, t, w, progress)
		return err
	})
	if err == nil {
		err = u.Verify()
	}
	if u.Published > 0 {
		res.Uniform = &u
		res.AckLatencyMs = u.AckLatencyMs
		res.E2ELatencyMs = u.E2ELatencyMs
		res.ServerCPUUsPerEvent = u.UsPerEvent
		fmt.Fprintf(progress, "  uniform at %s ev/s: ack p50 %s ms, p99 %s ms, max %s ms; e2e p99 %s ms (%s ev/s acknowledged, %d read back, %d errors; server CPU %s µs/ev)\n",
			thousands(float64(u.OfferedRate)), ms(u.AckLatencyMs.P50), ms(u.AckLatencyMs.P99), ms(u.AckLatencyMs.Max), ms(u.E2ELatencyMs.P99),
			thousands(u.PublishRate), u.Read, u.Errors, cpuText(u.ServerCPU))
	}
	if err != nil {
		fail("uniform", err)
	}
	res.Error = strings.Join(errs, "; ")
	return res
}

// cpuText is c's CPU time per event for the progress lines.
func cpuText(c ServerCPU) string {
	if c.UsPerEvent == nil {
		return "-"
	}
	return strconv.FormatFloat(*c.UsPerEvent, 'f', 2, 64)
}

// withTarget starts a fresh server of p with its data in a new directory
// under root, runs fn against it, stops it and removes the data.
func withTarget(ctx context.Context, p Peer, root, workload string, fn func(Target) error) error {
	dir, err := os.MkdirTemp(root, p.ID+"-"+workload+"-")
	if err != nil {
		return err
	}
	defer func() {
		os.RemoveAll(dir)
		// Leave the next run a quiet disk and a clean heap: a run's
		// dirty pages, written back during the next one, would slow its
		// fsyncs; the in-process servers and the client share the heap.
		settleDisk()
		runtime.GC()
		debug.FreeOSMemory()
	}()
	t, err := p.Start(ctx, dir)
	if err != nil {
		return fmt.Errorf("starting: %w", err)
	}
	err = fn(t)
	if cerr := t.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("stopping: %w", cerr))
	}
	return err
}
