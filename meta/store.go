package meta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/internal/follow"
	"github.com/sensehq/sense/result"
)

// Log is the metadata raft group as the store uses it (package replica's
// Group, through an adapter): its Append may be called on any node (a
// follower forwards to the leader). Reads never pass the high watermark.
type Log = follow.Replicated

// Applied is what the store tells its owner after each batch of commands:
// the new state and the commands that changed it.
type Applied struct {
	State   State
	Changes []Command
}

// Options configure a Store.
type Options struct {
	// Self is this node's id (Command.By).
	Self string
	// Seed is the hubs as this node's config file has them: proposed as
	// the seed command when this node leads an unseeded log.
	Seed []HubState
	// Registry is this node's jurisdiction registry, proposed with the
	// seed.
	Registry *Registry
	// OnApply is called by the applier goroutine after each batch of
	// commands, in log order, before Propose returns for any of them: the
	// owner swaps its routing table there.
	OnApply func(Applied)
	Logger  *slog.Logger
	// Now is the clock of Command.At; default time.Now.
	Now func() time.Time
}

// Store applies the metadata log on one node and proposes changes to it.
type Store struct {
	log  Log
	opts Options
	lg   *slog.Logger

	mu        sync.Mutex
	st        State
	applied   int64
	appliedCh chan struct{}

	quit chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// ErrClosed is returned by Propose after Close.
var ErrClosed = errors.New("meta: store closed")

// Open starts applying l (from its start) and, while this node leads an
// unseeded log, seeds it.
func Open(l Log, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		log:       l,
		opts:      opts,
		lg:        opts.Logger,
		applied:   l.StartOffset(),
		appliedCh: make(chan struct{}),
		quit:      make(chan struct{}),
	}
	s.st.Version = uint64(max(s.applied, 0))
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		follow.Run(l, s.applied, s.applyBatches, func(off int64, err error) {
			s.lg.Error("meta: applying the metadata log failed; retrying", "offset", off, "err", err)
		}, s.quit)
	}()
	go s.seeder()
	return s
}

// State returns the metadata as applied on this node.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Clone()
}

// Move returns a source buffer's last move step as applied here, without
// copying the whole state (the migrator asks for it at every step).
func (s *Store) Move(source string) (Move, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.st.Moves[source]
	return m, ok
}

// Hub returns a hub's state as applied here, without copying the whole
// state.
func (s *Store) Hub(name string) (HubState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.st.Hub(name)
	return h, ok
}

// applyBatches applies the commands of the batches in p, read at off.
func (s *Store) applyBatches(p []byte, off int64) (int64, error) {
	var changes []Command
	s.mu.Lock()
	for len(p) > 0 {
		h, err := batch.ParseHeader(p)
		if err != nil {
			s.mu.Unlock()
			return off, fmt.Errorf("meta: metadata log at offset %d: %w", off, err)
		}
		if h.Attributes&batch.AttrControl == 0 {
			it, err := batch.NewIter(p[:h.Size()])
			if err != nil {
				s.mu.Unlock()
				return off, fmt.Errorf("meta: metadata log at offset %d: %w", off, err)
			}
			for it.Next() {
				r := it.Record()
				c, err := DecodeCommand(r.Value)
				if err != nil {
					// A damaged or unknown command is skipped on every node
					// alike (they read the same bytes), and said loudly.
					s.lg.Error("meta: metadata command skipped", "offset", h.BaseOffset+int64(r.OffsetDelta), "err", err)
					continue
				}
				if s.st.Apply(&c) {
					changes = append(changes, c)
				}
			}
			if err := it.Err(); err != nil {
				s.mu.Unlock()
				return off, fmt.Errorf("meta: metadata log at offset %d: %w", h.BaseOffset, err)
			}
		}
		off = h.NextOffset()
		p = p[h.Size():]
	}
	s.st.Version = uint64(off)
	st := s.st.Clone()
	s.mu.Unlock()

	if s.opts.OnApply != nil {
		s.opts.OnApply(Applied{State: st, Changes: changes})
	}
	s.mu.Lock()
	s.applied = off
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	s.mu.Unlock()
	return off, nil
}

// Propose checks c against the state applied here, appends it to the log
// (through the leader), and returns once this node has applied it: the
// state it returns, and this node's routing, include the change. A
// refused command is an error wrapping ErrInvalid.
func (s *Store) Propose(ctx context.Context, c Command) (State, error) {
	if c.Op != OpSeed {
		if err := s.waitSeeded(ctx); err != nil {
			return State{}, err
		}
	}
	st := s.State()
	c.At = s.opts.Now().UnixNano()
	c.By = s.opts.Self
	if err := c.Check(&st); err != nil {
		return st, err
	}
	v, err := EncodeCommand(&c)
	if err != nil {
		return st, err
	}
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(time.Now().UnixMilli(), []byte(c.Op), v)
	rec := b.Finish()
	// An append refused at once (no leader known, the leader known to be
	// down) sent nothing: it is tried again, until ctx ends, while the
	// log elects a leader. An append whose answer is lost is not: its
	// outcome is unknown.
	ack, err := s.append(ctx, rec)
	for backoff := 10 * time.Millisecond; err != nil && result.CodeOf(err).Retriable(); backoff = min(2*backoff, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("meta: propose %s: %w (last refusal: %w)", c.Op, ctx.Err(), err)
		case <-s.quit:
			return st, ErrClosed
		case <-time.After(backoff):
		}
		ack, err = s.append(ctx, rec)
	}
	if err != nil {
		return st, fmt.Errorf("meta: propose %s: %w", c.Op, err)
	}
	type res struct {
		base int64
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		base, err := ack.Wait()
		ch <- res{base, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		return st, fmt.Errorf("meta: propose %s: %w (the change may still be applied)", c.Op, ctx.Err())
	case <-s.quit:
		return st, ErrClosed
	}
	if r.err != nil {
		return st, fmt.Errorf("meta: propose %s: %w", c.Op, r.err)
	}
	if err := s.WaitApplied(ctx, r.base+1); err != nil {
		return st, err
	}
	return s.State(), nil
}

// append proposes rec, giving up when ctx ends or the store closes: a
// replica's Append may wait for its group's loop (a full proposal queue),
// and a node that stops must not wait for a loop that may be stopping too.
// An append given up on may still be committed later.
func (s *Store) append(ctx context.Context, rec []byte) (follow.Ack, error) {
	type res struct {
		ack follow.Ack
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ack, err := s.log.Append(rec)
		ch <- res{ack, err}
	}()
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("meta: propose: %w (the change may still be applied)", ctx.Err())
	case <-s.quit:
		return nil, ErrClosed
	}
}

// WaitApplied returns once this node has applied the log up to offset
// end, or ctx ends, or the store closes.
func (s *Store) WaitApplied(ctx context.Context, end int64) error {
	for {
		s.mu.Lock()
		applied, ch := s.applied, s.appliedCh
		s.mu.Unlock()
		if applied >= end {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("meta: waiting for the metadata log to reach offset %d (applied %d): %w", end, applied, ctx.Err())
		case <-s.quit:
			return ErrClosed
		}
	}
}

// waitSeeded returns once the metadata is seeded here, or ctx ends, or the
// store closes.
func (s *Store) waitSeeded(ctx context.Context) error {
	for {
		s.mu.Lock()
		seeded, ch := s.st.Seeded, s.appliedCh
		s.mu.Unlock()
		if seeded {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("meta: the cluster metadata is not seeded yet (no node has led its log long enough to seed it from its config): %w", ctx.Err())
		case <-s.quit:
			return ErrClosed
		}
	}
}

// seedEvery is how often an unseeded store checks whether it may seed.
const seedEvery = 50 * time.Millisecond

// seeder proposes the seed command once this node leads the log, has
// applied all of it, and it is still unseeded.
func (s *Store) seeder() {
	defer s.done.Done()
	t := time.NewTicker(seedEvery)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		s.mu.Lock()
		seeded, applied := s.st.Seeded, s.applied
		s.mu.Unlock()
		if seeded {
			return
		}
		if !s.log.LeaderReady() || applied < s.log.HighWatermark() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Propose(ctx, Command{Op: OpSeed, Hubs: s.opts.Seed, Registry: s.opts.Registry})
		cancel()
		if err != nil && !errors.Is(err, ErrClosed) {
			s.lg.Warn("meta: seeding the metadata log failed; retrying", "err", err)
		}
	}
}

// Close stops the applier and the seeder and waits for them.
func (s *Store) Close() {
	s.once.Do(func() { close(s.quit) })
	s.done.Wait()
}
