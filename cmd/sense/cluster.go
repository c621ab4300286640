package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/loopback"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a local cluster, and show a cluster's nodes and buffers",
		Example: `  sense cluster up --nodes 3
  sense cluster status --addr 127.0.0.1:7070`,
	}
	cmd.AddCommand(newClusterUpCmd(), newClusterStatusCmd())
	return cmd
}

// defaultClusterTemplate is the shared part of every node's config when
// `cluster up` is given no template: one hub on every node that takes
// every jurisdiction, and one pipeline.
const defaultClusterTemplate = `jurisdictions: [MA, SN, NG, KE]
hubs: [{name: local, jurisdiction: "*"}]
pipelines: [{name: events, partitions: 1}]
`

func newClusterUpCmd() *cobra.Command {
	var (
		nodes    int
		dir      string
		template string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local cluster of sense serve processes on loopback",
		Long: `Run N "sense serve" processes that form one cluster, each on loopback ports of
its own (native, Kafka, HTTP and cluster transport; QUIC off), with its config,
data and log in DIR/n1, DIR/n2, ... The addresses of every node are printed
once they are all ready. Ctrl-C or SIGTERM stops them all (each hands its
leaderships over first) and returns.

--config-template names a YAML file with the part every node shares:
jurisdictions, groups, hubs, pipelines, durability... (not node, listeners or
cluster, which cluster up writes). Without one, every node holds one hub
"local" of every jurisdiction and a pipeline "events". Data written by an
earlier run in DIR is kept and used again.`,
		Example: `  sense cluster up --nodes 3
  sense cluster up --nodes 5 --dir /tmp/sense5 --config-template cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 16 {
				return fmt.Errorf("--nodes %d: give 1 to 16", nodes)
			}
			body := defaultClusterTemplate
			if template != "" {
				b, err := os.ReadFile(template)
				if err != nil {
					return fmt.Errorf("--config-template: %w", err)
				}
				body = string(b)
			}
			ctx, cancel := signalContext()
			defer cancel()
			return clusterUp(ctx, cmd.OutOrStdout(), nodes, dir, body)
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "how many nodes (1-16)")
	cmd.Flags().StringVar(&dir, "dir", "sense-cluster", "directory for the nodes' configs, data and logs")
	cmd.Flags().StringVar(&template, "config-template", "", "YAML file with the config every node shares (hubs, pipelines, ...)")
	return cmd
}

// localNode is one process of `cluster up`.
type localNode struct {
	id                             string
	dir                            string
	native, kafka, http, transport string
	cmd                            *exec.Cmd
	exited                         chan error
}

// clusterUp writes each node's config, starts the processes, waits until
// every one answers /readyz, prints the addresses, and stops them all when
// ctx ends.
func clusterUp(ctx context.Context, out io.Writer, n int, dir, body string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to run its nodes: %w", err)
	}
	var ns []*localNode
	for i := range n {
		ln := &localNode{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), exited: make(chan error, 1)}
		addrs, err := loopback.Addrs(4)
		if err != nil {
			return err
		}
		ln.native, ln.kafka, ln.http, ln.transport = addrs[0], addrs[1], addrs[2], addrs[3]
		ns = append(ns, ln)
	}
	var peers []string
	for _, ln := range ns {
		peers = append(peers, fmt.Sprintf("{id: %s, addr: %s}", ln.id, ln.transport))
	}
	for _, ln := range ns {
		if err := os.MkdirAll(ln.dir, 0o755); err != nil {
			return err
		}
		abs, err := filepath.Abs(filepath.Join(ln.dir, "data"))
		if err != nil {
			return err
		}
		yaml := fmt.Sprintf("node: {id: %s, data_dir: %q}\nlisteners: {native: %q, kafka: %q, http: %q, quic: \"off\"}\ncluster: {peers: [%s]}\n%s",
			ln.id, abs, ln.native, ln.kafka, ln.http, strings.Join(peers, ", "), body)
		cfgPath := filepath.Join(ln.dir, "sense.yaml")
		cfg, err := config.Parse(cfgPath, []byte(yaml))
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			return fmt.Errorf("node %s's config (template plus cluster up's sections) is not valid: %w", ln.id, err)
		}
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
			return err
		}
	}
	defer stopLocalNodes(out, ns)
	for _, ln := range ns {
		logf, err := os.OpenFile(filepath.Join(ln.dir, "sense.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		ln.cmd = exec.Command(self, "serve", "--config", filepath.Join(ln.dir, "sense.yaml"))
		ln.cmd.Stdout, ln.cmd.Stderr = logf, logf
		// Should cluster up itself be killed, the nodes still stop.
		ln.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := ln.cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start node %s: %w", ln.id, err)
		}
		go func() {
			ln.exited <- ln.cmd.Wait()
			logf.Close()
		}()
	}
	for _, ln := range ns {
		if err := waitReady(ctx, ln); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tNATIVE\tKAFKA\tHTTP\tCLUSTER\tDIR")
	for _, ln := range ns {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", ln.id, ln.cmd.Process.Pid, ln.native, ln.kafka, ln.http, ln.transport, ln.dir)
	}
	tw.Flush()
	var kafka []string
	for _, ln := range ns {
		kafka = append(kafka, ln.kafka)
	}
	fmt.Fprintf(out, "\nKafka bootstrap: %s\nStatus: sense cluster status --addr %s\nCtrl-C stops every node.\n", strings.Join(kafka, ","), ns[0].native)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		for _, ln := range ns {
			select {
			case err := <-ln.exited:
				fmt.Fprintf(out, "node %s exited (%v); see %s\n", ln.id, err, filepath.Join(ln.dir, "sense.log"))
				ln.cmd = nil
			default:
			}
		}
	}
}

// waitReady waits until node ln answers GET /readyz with 200.
func waitReady(ctx context.Context, ln *localNode) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ok, _ := probeReady(ctx, ln.http); ok {
			return nil
		}
		select {
		case err := <-ln.exited:
			ln.cmd = nil
			return fmt.Errorf("node %s exited before it was ready (%v); see %s", ln.id, err, filepath.Join(ln.dir, "sense.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s was not ready within 60s; see %s", ln.id, filepath.Join(ln.dir, "sense.log"))
}

// probeReady asks an HTTP address for /readyz.
func probeReady(ctx context.Context, addr string) (bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return false, err
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return false, err
	}
	return strings.HasPrefix(string(buf), "HTTP/1.0 200") || strings.HasPrefix(string(buf), "HTTP/1.1 200"), nil
}

// stopLocalNodes sends SIGTERM to every node still running and waits for
// them, killing any that has not exited 15 s later.
func stopLocalNodes(out io.Writer, ns []*localNode) {
	for _, ln := range ns {
		if ln.cmd != nil && ln.cmd.Process != nil {
			ln.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, ln := range ns {
		if ln.cmd == nil || ln.cmd.Process == nil {
			continue
		}
		select {
		case <-ln.exited:
		case <-time.After(15 * time.Second):
			fmt.Fprintf(out, "node %s did not stop within 15s of SIGTERM; killing it\n", ln.id)
			ln.cmd.Process.Kill()
			<-ln.exited
		}
	}
}

func newClusterStatusCmd() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a cluster's nodes and each buffer's leader, term and replicas",
		Long: `Show the nodes of the cluster the node at --addr belongs to (up or down, when
last heard from, their addresses), and for each buffer (and the committed
offsets, "__offsets") its leader, raft term, high watermark and replicas, with
each replica's match offset and lag. A replica's progress is known to the
buffer's leader, so the other nodes that are up are asked too.

Beside each buffer's live leader and term, METADATA is the leader and term the
cluster metadata last recorded for it (the leaders report themselves), and
AGREE whether the two are the same. A buffer no node that is up holds a
replica of is listed from the metadata alone, with "?" for its live view.`,
		Example: `  sense cluster status --addr 127.0.0.1:7070
  sense cluster status --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ci, err := clusterStatus(addr)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ci)
			}
			printClusterStatus(cmd.OutOrStdout(), ci)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a cluster node's native listener (env SENSE_ADDR)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// clusterStatus asks the node at addr, then every other node it sees up,
// and keeps for each buffer the view of the node that leads it (which
// knows its replicas' progress), else of the first node that holds a
// replica, else the metadata's alone.
func clusterStatus(addr string) (*admin.ClusterInfo, error) {
	resp, err := adminCall(addr, admin.ClusterStatus{})
	if err != nil {
		return nil, err
	}
	ci := resp.Cluster
	if ci == nil {
		return nil, errors.New("the node answered without a cluster status")
	}
	best := map[string]int{}
	for i, b := range ci.Buffers {
		best[b.Key] = i
	}
	for _, nd := range ci.Nodes {
		if nd.ID == ci.Self || !nd.Up || nd.Native == "" {
			continue
		}
		r, err := adminCall(nd.Native, admin.ClusterStatus{})
		if err != nil || r.Cluster == nil {
			continue // it went down meanwhile; its buffers show as the first node saw them
		}
		for _, b := range r.Cluster.Buffers {
			i, ok := best[b.Key]
			switch {
			case !ok:
				best[b.Key] = len(ci.Buffers)
				ci.Buffers = append(ci.Buffers, b)
			case b.Held && !ci.Buffers[i].Held,
				b.Leader == nd.ID && ci.Buffers[i].Leader != ci.Self:
				ci.Buffers[i] = b
			}
		}
	}
	return ci, nil
}

func printClusterStatus(out io.Writer, ci *admin.ClusterInfo) {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tLAST HEARD\tTABLE VERSION\tNATIVE\tKAFKA\tHTTP\tCLUSTER")
	for _, nd := range ci.Nodes {
		state, heard := "down", "never"
		if nd.Up {
			state = "up"
		}
		switch {
		case nd.ID == ci.Self:
			heard = "(this node)"
		case nd.LastHeardMs >= 0:
			heard = (time.Duration(nd.LastHeardMs) * time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", nd.ID, state, heard, nd.TableVersion, dash(nd.Native), dash(nd.Kafka), dash(nd.HTTP), nd.Cluster)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "BUFFER\tLEADER\tTERM\tMETADATA (leader, term)\tAGREE\tHIGH WATERMARK\tREPLICAS (match offset, lag)")
	for _, b := range ci.Buffers {
		var rs []string
		for _, r := range b.Replicas {
			if r.Match < 0 {
				rs = append(rs, r.Node+" ?")
				continue
			}
			s := fmt.Sprintf("%s %d (%d)", r.Node, r.Match, r.Lag)
			if !r.Active {
				s += " inactive"
			}
			rs = append(rs, s)
		}
		leader, term, hw := dash(b.Leader), strconv.FormatUint(b.Term, 10), strconv.FormatInt(b.HighWatermark, 10)
		if !b.Held {
			leader, term, hw = "?", "?", "?"
		}
		last, agree := "-", "-"
		switch {
		case b.MetaLeader == "":
		case !b.Held:
			last, agree = fmt.Sprintf("%s %d", b.MetaLeader, b.MetaTerm), "?"
		case b.MetaLeader == b.Leader && b.MetaTerm == b.Term:
			last, agree = fmt.Sprintf("%s %d", b.MetaLeader, b.MetaTerm), "yes"
		default:
			last, agree = fmt.Sprintf("%s %d", b.MetaLeader, b.MetaTerm), "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Key, leader, term, last, agree, hw, dash(strings.Join(rs, ", ")))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
