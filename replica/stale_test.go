package replica

import (
	"fmt"
	"sync"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// holdSender passes frames on until hold is called; from then on every
// Send blocks until release. The goroutine that sends a leader's raft
// messages is its group's loop, so holding it stands still like a paused
// process (SIGSTOP): no ticks, no steps, no proposals handled, while the
// frames and appends addressed to it queue up.
type holdSender struct {
	Sender
	mu   sync.Mutex
	gate chan struct{}
}

func (h *holdSender) Send(to string, kind byte, p []byte) bool {
	h.mu.Lock()
	g := h.gate
	h.mu.Unlock()
	if g != nil {
		<-g
	}
	return h.Sender.Send(to, kind, p)
}

func (h *holdSender) hold() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *holdSender) release() {
	h.mu.Lock()
	close(h.gate)
	h.gate = nil
	h.mu.Unlock()
}

// TestStaleLeaderRetryStoredOnce: a leader stands still (its loop held,
// as a paused process's is) while the others elect a new leader, which
// stores a batch of each of n producers: their retries, sent there once
// the producers learned of it. The same batches are also queued on the
// old leader (requests that reached it while it stood still), which still
// believes it leads. When it goes on, it handles the new leader's
// messages and those appends in one round, and raft makes it a follower
// at the first message, before it has handled every append. Those must
// be refused, not handed on to the new leader past its sequence check:
// each batch must be stored once.
//
// Before the fix raft forwarded them and the new leader appended them
// unchecked, next to the copies it held: the chaos test's duplicated
// records, the same producer id, epoch and sequences stored twice.
func TestStaleLeaderRetryStoredOnce(t *testing.T) {
	senders := map[string]*holdSender{}
	c := newTestClusterWith(t, nil, func(name string, s Sender) Sender {
		h := &holdSender{Sender: s}
		senders[name] = h
		return h
	}, "n1", "n2", "n3")

	// Producers 1..n each have sequence 0 stored.
	const n = 32
	for pid := int64(1); pid <= n; pid++ {
		c.appendRetry(idempotent(pid, 0))
	}
	old := c.leader()
	c.converge(c.group(old).HighWatermark())

	// The old leader stands still; the others elect a new one.
	senders[old].hold()
	released := false
	defer func() {
		if !released {
			senders[old].release()
		}
	}()
	nl := c.leader(old)

	// Sequence 1 of every producer: stored by the new leader, and queued
	// on the old one, which still believes it leads (its group loop has
	// not run since).
	for pid := int64(1); pid <= n; pid++ {
		c.appendRetry(idempotent(pid, 1), old)
	}
	var acks []*Ack
	for pid := int64(1); pid <= n; pid++ {
		a, err := c.group(old).Append(idempotent(pid, 1), false, false, false)
		if err != nil {
			continue // refused at once: it knows it does not lead
		}
		acks = append(acks, a)
	}
	senders[old].release()
	released = true
	for _, a := range acks {
		// The old leader's term is over: nothing it took may be
		// acknowledged by it, and its refusal must be retriable.
		if off, err := a.Wait(); err == nil {
			t.Fatalf("the old leader acknowledged an append at %d after a new leader was elected", off)
		} else if !result.CodeOf(err).Retriable() {
			t.Fatalf("the old leader refused with %v, which is not retriable", err)
		}
	}

	// Everything settles on the new leader's log.
	c.appendRetry(record(99), old)
	c.converge(c.group(c.leader()).HighWatermark())
	stored := map[string]int{}
	p := c.sameLogs()
	for len(p) > 0 {
		h, err := batch.ParseHeader(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.Idempotent() {
			stored[fmt.Sprintf("producer %d seq %d", h.ProducerID, h.BaseSequence)]++
		}
		p = p[h.Size():]
	}
	var dups []string
	for pid := int64(1); pid <= n; pid++ {
		for seq := range 2 {
			k := fmt.Sprintf("producer %d seq %d", pid, seq)
			switch stored[k] {
			case 1:
			case 0:
				t.Errorf("%s is not stored", k)
			default:
				dups = append(dups, fmt.Sprintf("%s x%d", k, stored[k]))
			}
		}
	}
	if len(dups) > 0 {
		t.Fatalf("old leader %s, new leader %s: stored more than once: %v", old, nl, dups)
	}
}

// TestLeaderDropsForwardedProposal: a proposal that comes to the leader as
// a raft message from another replica is not appended. The leader checks
// a producer's sequences only on its own proposals; a forwarded retry of a
// batch it holds would be stored twice.
func TestLeaderDropsForwardedProposal(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	b := idempotent(7, 0)
	first := c.appendRetry(b)
	l := c.leader()
	c.converge(c.group(l).HighWatermark())
	from := "n1"
	if from == l {
		from = "n2"
	}
	typ, to, src := pb.MsgProp, RaftID(l), RaftID(from)
	p, err := encodeFrame("p/0", &pb.Message{Type: &typ, To: &to, From: &src, Entries: []*pb.Entry{{Data: append([]byte(nil), b...)}}})
	if err != nil {
		t.Fatal(err)
	}
	c.hosts[l].HandleFrame(from, KindRaft, p)
	// Whatever the leader did with it is in its log before a later append.
	next := c.appendRetry(idempotent(7, 1))
	c.converge(next + 1)
	got := values(t, c.sameLogs())
	want := []string{"pid 7 seq 0", "pid 7 seq 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the log holds %v, want %v (first copy at %d)", got, want, first)
	}
}
