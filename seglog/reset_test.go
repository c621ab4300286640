package seglog

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/sensehq/sense/vfs"
)

// TestReset: a log emptied and started again at an offset past, inside or
// below what it held serves nothing below that offset, forgets its
// producers and files, fails the appends still waiting, takes batches from
// the new offset on, and keeps them across a reopen.
func TestReset(t *testing.T) {
	for _, where := range []string{"past", "inside", "zero"} {
		t.Run(where, func(t *testing.T) {
			mem := vfs.NewMem()
			o := Options{FS: mem, SegmentBytes: 4 << 10, IndexIntervalBytes: 256, Logger: quiet}
			l := openT(t, "/r", o)
			bases := trimLog(t, l, 30)
			if _, err := l.Append(mkBatch("p", 1, 10, 9, 0)); err != nil {
				t.Fatal(err)
			}
			if err := l.Trim(bases[3]); err != nil {
				t.Fatal(err)
			}
			base := map[string]int64{"past": l.NextOffset() + 1000, "inside": bases[17] + 1, "zero": 0}[where]
			// An append written, not yet acknowledged: the reset fails it.
			pending, err := l.AppendWith(mkBatch("w", 1, 10, -1, -1), AppendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Reset(base); err != nil {
				t.Fatal(err)
			}
			if _, err := pending.Wait(); !errors.Is(err, ErrTruncated) && err != nil {
				t.Fatalf("an append waiting across the reset: %v, want ErrTruncated or acknowledged before it", err)
			}
			check := func(l *Log, next int64) {
				t.Helper()
				if s, n := l.StartOffset(), l.NextOffset(); s != base || n != next {
					t.Fatalf("log holds [%d, %d), want [%d, %d)", s, n, base, next)
				}
				if base > 0 {
					if _, err := l.Read(nil, base-1, 1<<10); !errors.Is(err, ErrOffsetOutOfRange) {
						t.Fatalf("read below the new start: %v", err)
					}
				}
			}
			check(l, base)
			if files := segmentFiles(t, mem, "/r"); len(files) > 1 {
				t.Fatalf("segment files after the reset: %v", files)
			}
			// The producer is forgotten: its sequence 1 would be a gap now
			// that it is new here; sequence 0 is taken again.
			if _, err := l.Append(mkBatch("p", 1, 10, 9, 0)); err != nil {
				t.Fatalf("producer 9 at sequence 0 after the reset: %v", err)
			}
			var next int64
			for i := range 20 {
				b := mkBatch("n", 2, 300, -1, -1)
				got, n, err := l.AppendReplicated(b, 3, false)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 && got != base+1 {
					t.Fatalf("first replicated batch at %d, want %d", got, base+1)
				}
				next = n
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			check(l, next)
			want := readAll(t, l)
			l.Close()
			l = openT(t, "/r", o)
			defer l.Close()
			check(l, next)
			got := readAll(t, l)
			if len(got) != len(want) || len(got) != 21 {
				t.Fatalf("reopened: %d batches, %d before, want 21", len(got), len(want))
			}
			for off, b := range want {
				if !sameRecords(got[off], b) {
					t.Fatalf("reopened: batch at %d differs", off)
				}
			}
		})
	}
}

// TestResetCrashAtEveryOperation cuts the power at each file operation of
// a reset: reopened, the log holds a prefix of what it held, from its old
// start and intact, or nothing; and nothing at all once Reset returned. A
// log that was trimmed never serves what is below its start again: it
// opens as above, or, between the deletion of its first segment and of
// its start offset file, refuses to open.
func TestResetCrashAtEveryOperation(t *testing.T) {
	for at := 1; at < 80; at++ {
		trimmed := at%2 == 0
		mem := vfs.NewMem()
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 9))}
		o := Options{FS: cfs, SegmentBytes: 4 << 10, IndexIntervalBytes: 256, PreallocateBytes: 1 << 10, Logger: quiet}
		l := openT(t, "/c", o)
		bases := trimLog(t, l, 30)
		if trimmed {
			if err := l.Trim(bases[2]); err != nil {
				t.Fatal(err)
			}
		}
		written := readAll(t, l)
		at := at / 2
		start, base := l.StartOffset(), l.NextOffset()+500
		cfs.mu.Lock()
		cfs.crashAt = cfs.ops + at
		cfs.mu.Unlock()
		err := l.Reset(base)
		if err != nil && !errors.Is(err, errPowerLoss) {
			t.Fatalf("crash at %d: reset: %v", at, err)
		}
		reset := err == nil
		l.Close()
		if cfs.alive() == nil {
			mem.Crash(cfs.rng)
		}
		o.FS = mem
		l, err = Open("/c", o)
		if trimmed && errors.Is(err, ErrCorrupt) {
			continue // the start offset file beside no segment
		}
		if err != nil {
			t.Fatalf("crash at %d: reopen: %v", at, err)
		}
		s, n := l.StartOffset(), l.NextOffset()
		switch {
		case s == n:
			// Empty: at 0 (no file left) or at base (its new segment).
			if s != 0 && s != base {
				t.Fatalf("crash at %d: an empty log at %d; want 0 or %d", at, s, base)
			}
		case reset:
			t.Fatalf("crash at %d: the reset returned, but the reopened log holds [%d, %d)", at, s, n)
		default:
			got := readAll(t, l)
			if len(got) == 0 || s != start {
				t.Fatalf("crash at %d: the log holds [%d, %d) with %d batches; want a prefix from %d", at, s, n, len(got), start)
			}
			for off, b := range got {
				if !sameRecords(written[off], b) {
					t.Fatalf("crash at %d: the batch at %d is not the one written there", at, off)
				}
			}
		}
		// Reset again, as the replica does: the log takes batches at base.
		if err := l.Reset(base); err != nil {
			t.Fatal(err)
		}
		if got, _, err := l.AppendReplicated(mkBatch("x", 1, 10, -1, -1), 1, false); err != nil || got != base {
			t.Fatalf("crash at %d: append after the second reset at %d, %v; want %d", at, got, err, base)
		}
		l.Close()
	}
}
