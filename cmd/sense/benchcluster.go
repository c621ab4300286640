package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/bench"
)

// benchCluster is the bench's own cluster (--cluster N): N "sense serve"
// children of one cluster on loopback ports, every node holding the bench
// pipeline's buffers (one hub of every jurisdiction on all nodes, at most 3
// replicas). Clients use node 1. As the failure profile's ServerControl it
// kills and restarts nodes 2..N in turn, so that the clients' node stays.
type benchCluster struct {
	root  string
	nodes []*childServer

	mu     sync.Mutex
	turn   int // how many kills so far
	killed *childServer
}

// startBenchCluster writes each node's config and starts the nodes, each
// ready (/readyz) before it returns. The server logs go to
// out/server-n<i>.log.
//
// A cluster's pipelines are declared in its config, so the pipelines of a
// maximum-rate search's trials (bench.SearchMax names them
// PIPELINE-search-N) are declared too when search is set.
func startBenchCluster(ctx context.Context, n int, fsync, memoryLimit, out, pipeline string, search bool) (*benchCluster, error) {
	root, err := os.MkdirTemp("", "sense-bench-cluster-*")
	if err != nil {
		return nil, fmt.Errorf("bench: temporary data directory: %w", err)
	}
	c := &benchCluster{root: root}
	transport, err := freePorts(n)
	if err != nil {
		c.close()
		return nil, err
	}
	var peers []string
	for i := range n {
		peers = append(peers, fmt.Sprintf("{id: n%d, addr: %s}", i+1, transport[i]))
	}
	pipelines := []string{fmt.Sprintf("{name: %s, partitions: 1}", pipeline)}
	if search {
		for t := 1; t <= maxSearchTrials; t++ {
			pipelines = append(pipelines, fmt.Sprintf("{name: %s-search-%d, partitions: 1}", pipeline, t))
		}
	}
	for i := range n {
		yaml := fmt.Sprintf(`node: {id: n%d}
cluster: {peers: [%s]}
jurisdictions: [MA, SN, NG, KE]
hubs: [{name: local, jurisdiction: "*"}]
pipelines: [%s]
`, i+1, strings.Join(peers, ", "), strings.Join(pipelines, ", "))
		cfgPath := filepath.Join(root, fmt.Sprintf("n%d.yaml", i+1))
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
			c.close()
			return nil, err
		}
		ports, err := freePorts(3)
		if err != nil {
			c.close()
			return nil, err
		}
		s, err := newChild(filepath.Join(root, fmt.Sprintf("data%d", i+1)), filepath.Join(out, fmt.Sprintf("server-n%d.log", i+1)),
			ports, fsync, memoryLimit, "--config", cfgPath)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, s)
	}
	for _, s := range c.nodes {
		if err := s.Restart(ctx); err != nil {
			c.close()
			return nil, err
		}
	}
	if err := c.waitLeaders(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// waitLeaders waits until node 1 knows a leader of every raft group it
// holds, so that the load does not start with an election.
func (c *benchCluster) waitLeaders(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := adminCall(c.nodes[0].native, admin.ClusterStatus{})
		if err == nil && resp.Cluster != nil && len(resp.Cluster.Buffers) > 0 {
			all := true
			for _, b := range resp.Cluster.Buffers {
				all = all && b.Leader != ""
			}
			if all {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the cluster's buffers have no leaders 30s after start (%v); the logs are beside the results", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// maxSearchTrials is how many trial pipelines a cluster declares for a
// maximum-rate search: more than the doublings from 50,000/s to the
// largest rate a machine reaches, the halvings down to 1/s, and the three
// bisections.
const maxSearchTrials = 24

// pids returns the nodes' process ids.
func (c *benchCluster) pids() []int {
	var out []int
	for _, s := range c.nodes {
		out = append(out, s.pid())
	}
	return out
}

// Kill is bench.ServerControl: SIGKILL to the next of nodes 2..N.
func (c *benchCluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed != nil {
		return fmt.Errorf("bench: a node is down already")
	}
	s := c.nodes[1+c.turn%(len(c.nodes)-1)]
	c.turn++
	if err := s.Kill(); err != nil {
		return err
	}
	c.killed = s
	return nil
}

// Restart is bench.ServerControl: the node Kill stopped starts again.
func (c *benchCluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	s := c.killed
	c.killed = nil
	c.mu.Unlock()
	if s == nil {
		return fmt.Errorf("bench: no node is down")
	}
	return s.Restart(ctx)
}

// cpuTime sums every node's CPU time, over all their incarnations.
func (c *benchCluster) cpuTime() (bench.CPUTime, error) {
	var sum bench.CPUTime
	for _, s := range c.nodes {
		t, err := s.cpuTime()
		if err != nil {
			return sum, err
		}
		sum = sum.Add(t)
	}
	return sum, nil
}

// close stops every node and removes the cluster's directory.
func (c *benchCluster) close() {
	var wg sync.WaitGroup
	for _, s := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); s.close() }()
	}
	wg.Wait()
	os.RemoveAll(c.root)
}
