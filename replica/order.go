package replica

import (
	"sync"
	"time"

	"github.com/sensehq/sense/seglog"
)

// Keeping a producer's batches in order across retries.
//
// A node that does not lead a buffer (a follower, or a node with no
// replica) sends an idempotent batch to the leader and tries the same
// bytes again while its fate is unknown (appendRetrying). A native
// producer's sequences may leave gaps in one buffer (its events are spread
// over several), so the leader cannot tell that a batch is missing: were a
// producer's next batch to reach a new leader while the one before it
// waits to be tried again, the later would be stored first, and the
// earlier refused as older than the log's sequences.
//
// So each producer's batches to one buffer form a chain, on the node that
// sends them. A batch goes out at once while the batch before it (if still
// unsettled) is on its first attempt to the same node: the transport and
// the leader keep their order. Otherwise — the one before it is being
// tried again, or went to another node (the leader changed between them)
// — it waits until every earlier batch of the chain has settled; and a
// batch tried again waits for the same. A batch refused before anything
// was sent (no leader known, the leader down) no longer goes back to the
// producer (which would send its events again under new sequences, after
// later ones): it is tried again in its place.
type chains struct {
	mu    sync.Mutex
	links map[int64]*link // producer id → its newest unsettled batch
}

// link is one batch of a chain.
type link struct {
	prev *link // the batch before it, until that one is done
	// Under chains.mu.
	to       string // where its latest attempt went
	retrying bool   // its outcome was unknown once; it is tried again
	// done is closed once the batch and every batch before it settled.
	done chan struct{}
}

func (l *link) settled() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// attemptFunc makes one attempt at sending a batch, queued before it
// returns; it returns where the attempt went.
type attemptFunc func() (ack *Ack, to string, err error)

// appendOrdered sends producer pid's batch through attempt, in its chain,
// retrying an unknown outcome until a definite answer or retryFor. target
// is where an attempt would go now.
func (c *chains) appendOrdered(pid int64, target string, attempt attemptFunc, retryFor time.Duration, quit <-chan struct{}) *Ack {
	a := newAck()
	c.mu.Lock()
	if c.links == nil {
		c.links = map[int64]*link{}
	}
	prev := c.links[pid]
	me := &link{prev: prev, done: make(chan struct{})}
	c.links[pid] = me
	var first *Ack
	var ferr error
	sent := false
	if prev == nil || prev.settled() || (!prev.retrying && prev.to == target && target != "") {
		first, me.to, ferr = attempt()
		sent = ferr == nil
		me.retrying = ferr != nil
	}
	c.mu.Unlock()

	go func() {
		deadline := time.Now().Add(retryFor)
		backoff := 10 * time.Millisecond
		var base int64
		err, inner := ferr, first
		for {
			if sent {
				if base, err = inner.Wait(); err == nil {
					break
				}
			}
			// Not sent yet (earlier batches first), or refused at once, or
			// its fate unknown.
			if err != nil {
				if !unknownOutcome(err) || !time.Now().Before(deadline) {
					break
				}
				c.setRetrying(me)
			}
			if !c.waitPrev(me, quit) {
				err = seglog.ErrClosed
				break
			}
			if err != nil {
				t := time.NewTimer(backoff)
				select {
				case <-quit:
					t.Stop()
					err = seglog.ErrClosed
				case <-t.C:
				}
				if err == seglog.ErrClosed {
					break
				}
				backoff = min(2*backoff, 200*time.Millisecond)
			}
			c.mu.Lock()
			inner, me.to, err = attempt()
			c.mu.Unlock()
			sent = err == nil
		}
		a.resolve(base, err)
		c.settle(pid, me, quit)
	}()
	return a
}

func (c *chains) setRetrying(l *link) {
	c.mu.Lock()
	l.retrying = true
	c.mu.Unlock()
}

// waitPrev waits until every batch before l has settled; false if quit
// closed first.
func (c *chains) waitPrev(l *link, quit <-chan struct{}) bool {
	if l.prev == nil {
		return true
	}
	select {
	case <-l.prev.done:
		l.prev = nil
		return true
	case <-quit:
		return false
	}
}

// settle marks l settled: once those before it are, its done closes and
// the chain forgets it if it is the newest.
func (c *chains) settle(pid int64, l *link, quit <-chan struct{}) {
	c.waitPrev(l, quit)
	c.mu.Lock()
	close(l.done)
	if c.links[pid] == l {
		delete(c.links, pid)
	}
	c.mu.Unlock()
}
