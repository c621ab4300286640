package server

import (
	"context"
	"strings"
	"time"

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
