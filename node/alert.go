package node

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// alerter POSTs a JSON incident to the alert webhook when an event has no
// compliant hub. It never blocks the produce path: incidents past a small
// queue are counted as lost alerts and logged.
type alerter struct {
	url    string
	log    *slog.Logger
	ch     chan incident
	lost   atomic.Int64
	client *http.Client
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
		go a.run()
	}
	return a
}

func (a *alerter) fire(pipeline, mask, prio, reason string) {
	if a.ch == nil {
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
	for inc := range a.ch {
		body, _ := json.Marshal(inc)
		resp, err := a.client.Post(a.url, "application/json", bytes.NewReader(body))
		if err != nil {
			a.log.Warn("alert webhook failed", "url", a.url, "err", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			a.log.Warn("alert webhook refused the incident", "url", a.url, "status", resp.StatusCode)
		}
	}
}
