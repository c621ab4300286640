package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sensehq/sense/bench"
)

// Target is a running server of one peer, in a process of its own, with
// a connected client. Every system runs through the same load code by way
// of this interface.
type Target interface {
	// Read starts a consumer, on a connection of its own, that reads the
	// stream the events are published to from its start, and calls
	// onEvent with each event's value as it arrives, one call at a time,
	// until Close. The value is valid only during the call. Read is
	// called once, before the first Publish.
	Read(ctx context.Context, onEvent func(value []byte)) error
	// Publish hands value to the client and returns; it may block while
	// the client's own buffers are full. onAck is called exactly once, on
	// any goroutine: with nil once the system acknowledged the event under
	// its durability mode, otherwise with the reason it was not stored.
	// The target may keep value until then.
	Publish(ctx context.Context, value []byte, onAck func(error))
	// ServerCPU returns the CPU time, user and system, the server process
	// has used so far.
	ServerCPU() (bench.CPUTime, error)
	// Close stops the consumer, the client and the server. Events still
	// unanswered get an error.
	Close() error
}

// Peer is one system in one durability mode.
type Peer struct {
	// ID names the peer in --systems and in peers.json.
	ID string
	// System is the product, as printed.
	System string
	// Durability states exactly when the system acknowledges an event.
	Durability string
	// Check says, before anything runs, why the peer cannot run on this
	// machine (nil: it can). Nil means always runnable.
	Check func() error
	// Start starts a fresh server keeping its data under dir (an empty
	// directory) and connects a client to it.
	Start func(ctx context.Context, dir string) (Target, error)
}

// senseID is the peer every ratio is relative to.
const senseID = "sense"

// allPeers lists every peer, Sense first.
func allPeers() []Peer {
	return []Peer{
		sensePeer(),
		natsPeer("nats-syncalways", true),
		natsPeer("nats-default", false),
		redisPeer("redis-always", "always"),
		redisPeer("redis-everysec", "everysec"),
		rabbitPeer(),
	}
}

// family is the part of a peer ID before the first '-': "nats" for
// "nats-syncalways".
func family(id string) string {
	f, _, _ := strings.Cut(id, "-")
	return f
}

// selectPeers returns the peers a --systems list names, in allPeers order:
// "all" (or an empty list), peer IDs ("redis-everysec") and families
// ("nats": every NATS mode). Sense always runs, since the ratios are
// relative to it.
func selectPeers(all []Peer, list string) ([]Peer, error) {
	want := map[string]bool{senseID: true}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if name == "all" {
			for _, p := range all {
				want[p.ID] = true
			}
			continue
		}
		found := false
		for _, p := range all {
			if p.ID == name || family(p.ID) == name {
				want[p.ID] = true
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--systems: unknown system %q; choose from all, %s", name, strings.Join(names(all), ", "))
		}
	}
	if strings.TrimSpace(list) == "" {
		for _, p := range all {
			want[p.ID] = true
		}
	}
	var out []Peer
	for _, p := range all {
		if want[p.ID] {
			out = append(out, p)
		}
	}
	return out, nil
}

// names lists the IDs and families of peers, for messages.
func names(peers []Peer) []string {
	var out []string
	for _, p := range peers {
		if f := family(p.ID); f != p.ID && !slices.Contains(out, f) {
			out = append(out, f)
		}
		out = append(out, p.ID)
	}
	return out
}

// checkPeers runs every peer's Check and joins the failures, naming each
// distinct failure once with the peers it stops.
func checkPeers(peers []Peer) error {
	var order []error
	who := map[string][]string{}
	for _, p := range peers {
		if p.Check == nil {
			continue
		}
		if err := p.Check(); err != nil {
			if _, seen := who[err.Error()]; !seen {
				order = append(order, err)
			}
			who[err.Error()] = append(who[err.Error()], p.ID)
		}
	}
	var errs []error
	for _, err := range order {
		errs = append(errs, fmt.Errorf("%s: %w", strings.Join(who[err.Error()], ", "), err))
	}
	return errors.Join(errs...)
}
