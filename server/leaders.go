package server

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/meta"
)

// The buffers' leaders in the cluster metadata. A node that leads buffers
// reports them to the metadata log (meta's leaders command) when the
// metadata does not have them yet: a new leader, or a new term. Every node
// then knows the last reported leader of every buffer, those it holds no
// replica of included: Kafka Metadata names it for those, and `sense
// cluster status` shows it beside the live view (docs/cluster.md).
const (
	// leaderReportEvery is how often a node compares the buffers it leads
	// with what the metadata says. An idle cluster proposes nothing.
	leaderReportEvery = 500 * time.Millisecond
	// leaderReportTimeout bounds one report's proposal; one that fails is
	// made again at a later round.
	leaderReportTimeout = 5 * time.Second
)

// reportLeaders proposes, every leaderReportEvery, the buffers this node
// leads whose leader or term the applied metadata does not have. It ends
// when the runtime closes.
func (m *metaRuntime) reportLeaders() {
	defer close(m.reported)
	t := time.NewTicker(leaderReportEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		err := m.reportLeadersOnce()
		switch {
		case err != nil && m.ctx.Err() != nil:
			return // closing
		case err != nil && !failing:
			failing = true
			m.c.log.Warn("reporting the buffers this node leads to the cluster metadata failed; retrying", "err", err)
		case err != nil:
			m.c.log.Debug("reporting the buffers this node leads to the cluster metadata failed again", "err", err)
		case failing:
			failing = false
			m.c.log.Info("the buffers this node leads are reported to the cluster metadata again")
		}
	}
}

// reportLeadersOnce proposes the led buffers the metadata lacks, at most
// meta.MaxLeaders in a command.
func (m *metaRuntime) reportLeadersOnce() error {
	news := m.store.NewerLeaders(m.ledBuffers())
	for len(news) > 0 {
		n := min(len(news), meta.MaxLeaders)
		ctx, cancel := context.WithTimeout(m.ctx, leaderReportTimeout)
		_, err := m.store.Propose(ctx, meta.Command{Op: meta.OpLeaders, Leaders: news[:n]})
		cancel()
		if err != nil {
			return err
		}
		news = news[n:]
	}
	return nil
}

// ledBuffers returns the buffers this node leads, each with the term it
// leads in. A group counts once its leadership is ready (it has committed
// an entry of its term), and only if its term did not move while it was
// looked at, so that the term reported is one this node led in.
func (m *metaRuntime) ledBuffers() []meta.BufferLeader {
	self := m.c.cfg.Node.ID
	var out []meta.BufferLeader
	for _, g := range m.c.host.Groups() {
		if strings.HasPrefix(g.Key(), "__") {
			continue // the cluster's own logs, not buffers
		}
		term := g.Term()
		if term == 0 || !g.LeaderReady() || g.Term() != term {
			continue
		}
		out = append(out, meta.BufferLeader{Buffer: g.Key(), Leader: self, Term: term})
	}
	return out
}

// lastLeader returns a buffer's leader as the cluster metadata last
// recorded it; false before the metadata is open or when it has none.
func (c *clusterRuntime) lastLeader(key string) (meta.BufferLeader, bool) {
	st := c.metaStore.Load()
	if st == nil {
		return meta.BufferLeader{}, false
	}
	return st.Leader(key)
}

// Leader is node.Leadership for a buffer this node holds no replica of,
// which this node has no raft view of: the leader the cluster metadata
// last recorded, or "" when that node is down as far as this node can
// tell (the new leader has not been reported yet). Before the metadata
// has any, the replica the Remote last found leading, or its first
// guess.
func (b remoteBuffer) Leader() string {
	l, ok := b.c.lastLeader(b.key)
	switch {
	case !ok:
		return b.Remote.Leader()
	case !b.c.alive(l.Leader):
		return ""
	}
	return l.Leader
}

// Term is node.Leadership: the term the metadata last recorded, 0 when
// it has none.
func (b remoteBuffer) Term() uint64 {
	l, _ := b.c.lastLeader(b.key)
	return l.Term
}

// addMetaLeaders fills in, for each buffer of ci, the leader the metadata
// last recorded, and lists the buffers the metadata knows that this node
// does not hold (with their replicas as the config places them).
func (c *clusterRuntime) addMetaLeaders(ci *admin.ClusterInfo) {
	st := c.metaStore.Load()
	if st == nil {
		return
	}
	ls := st.Leaders()
	for i := range ci.Buffers {
		b := &ci.Buffers[i]
		if l, ok := ls[b.Key]; ok {
			b.MetaLeader, b.MetaTerm = l.Leader, l.Term
			delete(ls, b.Key)
		}
	}
	for key, l := range ls {
		bs := admin.BufferStatus{Key: key, MetaLeader: l.Leader, MetaTerm: l.Term, HighWatermark: -1}
		if pipeline, hub, part, ok := splitBufferKey(key); ok {
			for _, r := range c.replicasOf(pipeline, hub, part) {
				bs.Replicas = append(bs.Replicas, admin.ReplicaStatus{Node: r, Match: -1, Lag: -1})
			}
		}
		ci.Buffers = append(ci.Buffers, bs)
	}
}

// splitBufferKey parses a buffer key, pipeline/hub/partition.
func splitBufferKey(key string) (pipeline, hub string, partition int32, ok bool) {
	pipeline, rest, ok1 := strings.Cut(key, "/")
	hub, ps, ok2 := strings.Cut(rest, "/")
	p, err := strconv.ParseInt(ps, 10, 32)
	if !ok1 || !ok2 || err != nil || p < 0 {
		return "", "", 0, false
	}
	return pipeline, hub, int32(p), true
}
