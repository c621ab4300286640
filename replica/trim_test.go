package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/seglog"
)

// TestTrim: the leader moves the log's start to a batch boundary; every
// replica then reads from there, refuses reads below it, drops the
// segments that held only what is below it, and keeps the start across a
// restart; appends go on. A trim while a replica is behind is refused with
// ErrTrimBehind, and a trim to what is not a batch boundary is refused.
func TestTrim(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c")
	var bases []int64
	for i := range 400 { // 400 KiB: several 64 KiB segments
		bases = append(bases, c.appendRetry(bigRecord(i)))
	}
	hw := bases[len(bases)-1] + 2
	c.converge(hw)
	l := c.leader()
	segsBefore := c.group(l).log.Segments()
	if segsBefore < 3 {
		t.Fatalf("%d segments; the test needs several", segsBefore)
	}
	if _, err := c.group(l).Trim(bases[300] + 1); err == nil || !strings.Contains(err.Error(), "batch boundary") {
		t.Fatalf("trim inside a batch: %v", err)
	}
	cut := bases[300]
	a, err := c.group(l).Trim(cut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		g := c.group(n)
		deadline := time.Now().Add(10 * time.Second)
		for g.StartOffset() != cut {
			if time.Now().After(deadline) {
				t.Fatalf("%s starts at %d, want %d", n, g.StartOffset(), cut)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := g.Read(nil, cut-2, 1<<20); !errors.Is(err, seglog.ErrOffsetOutOfRange) {
			t.Fatalf("%s: a read below the start: %v", n, err)
		}
		got := values(t, readAll(t, g))
		if len(got) != 2*100 || !strings.HasPrefix(got[0], "value 300 ") {
			t.Fatalf("%s reads %d records from the start, first %.20q; want 200 from value 300", n, len(got), got[0])
		}
		// The segments go as the trim applies, or at a tick after a
		// segment's seal.
		for g.log.Segments() >= segsBefore {
			if time.Now().After(deadline) {
				t.Fatalf("%s keeps %d segments after the trim, %d before", n, g.log.Segments(), segsBefore)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The start survives a restart, and appends go on.
	c.stop("b")
	c.start("b")
	if s := c.group("b").StartOffset(); s != cut {
		t.Fatalf("b starts at %d after a restart, want %d", s, cut)
	}
	next := c.appendRetry(record(1000)) + 2
	c.converge(next)
	// A replica down misses the next batch: a trim past it waits.
	c.stop("c")
	more := c.appendRetry(record(1001), "c") + 2
	if _, err := c.group(c.leader("c")).Trim(more); !errors.Is(err, ErrTrimBehind) {
		t.Fatalf("trim with replica c down and behind: %v, want ErrTrimBehind", err)
	}
	c.start("c")
}

// bigRecord is record(i) with a 1 KiB first value.
func bigRecord(i int) []byte {
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(int64(1000+i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("value %d %s", i, strings.Repeat("x", 1024))))
	b.Add(int64(1000+i), nil, []byte("second"))
	return append([]byte(nil), b.Finish()...)
}
