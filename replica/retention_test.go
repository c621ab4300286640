package replica

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// TestRetention: a replicated buffer over its size limit is trimmed by its
// leader on every replica, whole segments from the front, the newest kept;
// while a replica is down and behind, no trim passes what it holds; it
// catches up and is trimmed too once back.
func TestRetention(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c")
	for i := range 100 {
		c.appendRetry(bigRecord(i))
	}
	l := c.leader()
	// Replica c goes down; appends go on, past what it holds.
	down := "c"
	if l == "c" {
		down = "b"
	}
	c.stop(down)
	var last int64
	for i := 100; i < 400; i++ {
		last = c.appendRetry(bigRecord(i), down)
	}
	l = c.leader(down)
	held := int64(0)
	for _, n := range []string{"a", "b", "c"} {
		if n != down {
			if err := c.group(n).SetRetention(0, 128<<10); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The leader may not trim past what the down replica holds.
	for _, pr := range c.group(l).Progress() {
		if pr.Node == down {
			held = pr.Match
		}
	}
	time.Sleep(300 * time.Millisecond) // many ticks
	if s := c.group(l).StartOffset(); s > held {
		t.Fatalf("with %s down holding the log up to %d, the leader trimmed to %d", down, held, s)
	}
	c.start(down)
	if err := c.group(down).SetRetention(0, 128<<10); err != nil {
		t.Fatal(err)
	}
	c.converge(last + 2)
	for _, n := range []string{"a", "b", "c"} {
		g := c.group(n)
		deadline := time.Now().Add(10 * time.Second)
		for g.StartOffset() == 0 || g.log.Segments() > 4 {
			if time.Now().After(deadline) {
				t.Fatalf("%s starts at %d with %d segments, 10s after a retention of 128 KiB on a log of 400 KiB", n, g.StartOffset(), g.log.Segments())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := g.Read(nil, 0, 1<<20); !errors.Is(err, seglog.ErrOffsetOutOfRange) {
			t.Fatalf("%s: a read below the start: %v", n, err)
		}
		got := values(t, readAll(t, g))
		if len(got) < 2*100 || got[len(got)-1] != "second" {
			t.Fatalf("%s keeps %d records after retention, the newest last; want at least the last 100 batches", n, len(got))
		}
	}
}

// TestAppendLargerThanSegment: a batch larger than a segment is refused at
// append, before raft commits it (each replica's log would refuse to write
// it and fail); the group goes on taking batches.
func TestAppendLargerThanSegment(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c")
	c.appendRetry(record(1))
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(1, nil, make([]byte, 70<<10)) // segments are 64 KiB here
	_, err := c.group(c.leader()).Append(b.Finish(), false, false, true)
	if result.CodeOf(err) != result.RequestTooLarge || !strings.Contains(err.Error(), "segment_bytes") {
		t.Fatalf("a batch of 70 KiB: %v, want REQUEST_TOO_LARGE naming durability.segment_bytes", err)
	}
	c.converge(c.appendRetry(record(2)) + 1)
}
