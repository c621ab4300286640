package node

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// alerter POSTs a JSON incident to the alert webhook when an event has no
// compliant hub. It never blocks the produce path: incidents past a small
// queue are counted as lost alerts and logged. Its one goroutine is owned
// by the node: close stops it (an incident being sent is given up) and
// waits for it.
type alerter struct {
	url    string
	log    *slog.Logger
	ch     chan incident
	lost   atomic.Int64
	client *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.RWMutex // fire holds it shared; close exclusively
	closed bool
}

type incident struct {
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"`
	Pipeline     string    `json:"pipeline"`
	Jurisdiction string    `json:"jurisdiction"`
	Priority     string    `json:"priority"`
	Reason       string    `json:"reason"`
}

func newAlerter(url string, log *slog.Logger) *alerter {
	a := &alerter{url: url, log: log}
	if url != "" {
		a.ch = make(chan incident, 256)
		a.client = &http.Client{Timeout: 5 * time.Second}
		a.ctx, a.cancel = context.WithCancel(context.Background())
		a.wg.Add(1)
		go a.run()
	}
	return a
}

func (a *alerter) fire(pipeline, mask, prio, reason string) {
	if a.ch == nil {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return
	}
	select {
	case a.ch <- incident{Time: time.Now().UTC(), Kind: "no_compliant_hub", Pipeline: pipeline, Jurisdiction: mask, Priority: prio, Reason: reason}:
	default:
		if a.lost.Add(1)%1000 == 1 {
			a.log.Warn("alert webhook is behind; incidents not sent", "lost", a.lost.Load())
		}
	}
}

func (a *alerter) run() {
	defer a.wg.Done()
	for inc := range a.ch {
		if a.ctx.Err() != nil {
			continue // closing: drain without sending
		}
		body, _ := json.Marshal(inc)
		req, err := http.NewRequestWithContext(a.ctx, http.MethodPost, a.url, bytes.NewReader(body))
		if err != nil {
			a.log.Warn("alert webhook request", "url", a.url, "err", err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.client.Do(req)
		if err != nil {
			if a.ctx.Err() == nil {
				a.log.Warn("alert webhook failed", "url", a.url, "err", err)
			}
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			a.log.Warn("alert webhook refused the incident", "url", a.url, "status", resp.StatusCode)
		}
	}
}

// close stops the sender and waits for it; incidents not yet sent are
// dropped.
func (a *alerter) close() {
	if a.ch == nil {
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.cancel()
	close(a.ch)
	a.mu.Unlock()
	a.wg.Wait()
	a.client.CloseIdleConnections()
}

// AlertNoCompliantHub fires the NO_COMPLIANT_HUB incident (the alert
// webhook) for events the node cannot place: stored events a migration
// has no compliant destination for, as ingest does for new ones.
func (n *Node) AlertNoCompliantHub(pipeline, mask, prio, reason string) {
	n.alerts.fire(pipeline, mask, prio, reason)
}
