package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// mkBatch builds a batch of n records whose values identify the batch by tag.
func mkBatch(tag string, n, size int, pid int64, seq int32) []byte {
	var b batch.Builder
	b.Reset(pid, 0, seq)
	if pid < 0 {
		b.Reset(-1, -1, -1)
	}
	val := make([]byte, size)
	for i := 0; i < n; i++ {
		v := fmt.Appendf(val[:0], "%s/%d/", tag, i)
		v = v[:max(len(v), size)]
		b.Add(1_700_000_000_000+int64(i), nil, v)
	}
	return bytes.Clone(b.Finish())
}

func openT(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return l
}

// readAll reads every acknowledged batch and returns them keyed by base
// offset, checking offsets are contiguous.
func readAll(t testing.TB, l *Log) map[int64][]byte {
	t.Helper()
	out := map[int64][]byte{}
	off := l.StartOffset()
	hw := l.HighWatermark()
	for off < hw {
		buf, err := l.Read(nil, off, 1<<20)
		if err != nil {
			t.Fatalf("read at %d (hw %d): %v", off, hw, err)
		}
		if len(buf) == 0 {
			t.Fatalf("read at %d below hw %d returned nothing", off, hw)
		}
		for len(buf) > 0 {
			h, err := batch.Check(buf[:mustSize(t, buf)])
			if err != nil {
				t.Fatalf("read returned a bad batch at %d: %v", off, err)
			}
			if h.BaseOffset != off {
				t.Fatalf("batch base %d, want %d", h.BaseOffset, off)
			}
			out[off] = bytes.Clone(buf[:h.Size()])
			off = h.NextOffset()
			buf = buf[h.Size():]
		}
	}
	return out
}

func mustSize(t testing.TB, b []byte) int {
	n, err := batch.Size(b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sameRecords reports whether two batches hold the same records (they may
// differ in base offset and epoch).
func sameRecords(a, b []byte) bool {
	return len(a) == len(b) && bytes.Equal(a[batch.OffMagic:], b[batch.OffMagic:])
}

func TestAppendReadReopen(t *testing.T) {
	for _, fsName := range []string{"os", "mem"} {
		t.Run(fsName, func(t *testing.T) {
			dir := t.TempDir()
			var fs vfs.FS = vfs.Default
			if fsName == "mem" {
				fs = vfs.NewMem()
			}
			o := Options{FS: fs, SegmentBytes: 64 << 10, IndexIntervalBytes: 1024}
			l := openT(t, dir, o)
			want := map[int64][]byte{}
			for i := 0; i < 300; i++ {
				b := mkBatch(fmt.Sprint(i), 1+i%7, 100, -1, -1)
				orig := bytes.Clone(b)
				base, err := l.Append(b)
				if err != nil {
					t.Fatal(err)
				}
				want[base] = orig
			}
			if l.Segments() < 3 {
				t.Fatalf("expected several segments, got %d", l.Segments())
			}
			check := func(l *Log) {
				got := readAll(t, l)
				if len(got) != len(want) {
					t.Fatalf("read %d batches, want %d", len(got), len(want))
				}
				for off, w := range want {
					if !sameRecords(got[off], w) {
						t.Fatalf("batch at %d differs", off)
					}
				}
				// Reads from the middle of a batch start at that batch.
				for off := range want {
					buf, err := l.Read(nil, off+1, 1)
					if err != nil {
						t.Fatal(err)
					}
					h, _ := batch.ParseHeader(buf)
					if h.BaseOffset > off+1 || h.NextOffset() <= off+1 {
						t.Fatalf("read at %d returned batch %d..%d", off+1, h.BaseOffset, h.LastOffset())
					}
				}
			}
			check(l)
			next := l.NextOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, o)
			defer l.Close()
			if l.NextOffset() != next {
				t.Fatalf("next offset after reopen %d, want %d", l.NextOffset(), next)
			}
			check(l)
			if _, err := l.Read(nil, next+1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read past end: %v", err)
			}
			if buf, err := l.Read(nil, next, 100); err != nil || len(buf) != 0 {
				t.Fatalf("read at end: %d bytes, %v", len(buf), err)
			}
		})
	}
}

func TestAppendRejectsBadBatch(t *testing.T) {
	l := openT(t, t.TempDir(), Options{})
	defer l.Close()
	b := mkBatch("x", 3, 10, -1, -1)
	b[len(b)-1] ^= 1
	if _, err := l.Append(b); !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("append of a batch with a bad CRC: %v", err)
	}
	if _, err := l.Append(b[:30]); err == nil {
		t.Fatal("append of a truncated batch succeeded")
	}
	if l.NextOffset() != 0 {
		t.Fatalf("bad batches moved the log end to %d", l.NextOffset())
	}
}

func TestIdempotence(t *testing.T) {
	l := openT(t, t.TempDir(), Options{FS: vfs.NewMem()})
	const pid = 42
	var bases []int64
	seq := int32(0)
	for i := 0; i < 8; i++ {
		b := mkBatch(fmt.Sprint(i), 3, 20, pid, seq)
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base)
		seq += 3
	}
	end := l.NextOffset()
	// Retries of the last five batches return their original offsets and
	// write nothing.
	for i := 3; i < 8; i++ {
		base, err := l.Append(mkBatch(fmt.Sprint(i), 3, 20, pid, int32(i*3)))
		if err != nil || base != bases[i] {
			t.Fatalf("retry of batch %d: base %d err %v, want %d", i, base, err, bases[i])
		}
	}
	if l.NextOffset() != end {
		t.Fatalf("retries were written: end %d, want %d", l.NextOffset(), end)
	}
	if _, err := l.Append(mkBatch("old", 3, 20, pid, 0)); !errors.Is(err, ErrDuplicateSequence) {
		t.Fatalf("retry older than the window: %v", err)
	}
	if _, err := l.Append(mkBatch("gap", 3, 20, pid, seq+1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: %v", err)
	}
	if _, err := l.Append(mkBatch("new", 1, 20, 7, 5)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("unknown producer not starting at 0: %v", err)
	}
	// The state survives a clean reopen and a reopen without checkpoint.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, dropCk := range []bool{false, true} {
		l = openT(t, l.dir, l.opts)
		if base, err := l.Append(mkBatch("7", 3, 20, pid, 21)); err != nil || base != bases[7] {
			t.Fatalf("retry after reopen (no checkpoint: %v): base %d err %v, want %d", dropCk, base, err, bases[7])
		}
		if _, err := l.Append(mkBatch("gap", 3, 20, pid, seq+1)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("gap after reopen: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.fs.Remove(l.dir + "/" + checkpointName); err != nil {
			t.Fatal(err)
		}
	}
	// A newer epoch fences the older one.
	l = openT(t, l.dir, l.opts)
	defer l.Close()
	nb := mkBatch("e1", 1, 20, pid, 0)
	nb[batch.OffProducerEpoch+1] = 1
	binaryFix(nb)
	if _, err := l.Append(nb); err != nil {
		t.Fatalf("new epoch: %v", err)
	}
	if _, err := l.Append(mkBatch("e0", 1, 20, pid, seq)); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("old epoch after new: %v", err)
	}
}

// binaryFix recomputes a batch's CRC after a test edited it.
func binaryFix(b []byte) {
	c := batch.Checksum(b[batch.OffAttributes:])
	b[batch.OffCRC], b[batch.OffCRC+1], b[batch.OffCRC+2], b[batch.OffCRC+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

func TestGroupCommitConcurrent(t *testing.T) {
	for _, mode := range []string{"always", "interval:1ms", "never"} {
		t.Run(mode, func(t *testing.T) {
			d, err := ParseDurability(mode)
			if err != nil {
				t.Fatal(err)
			}
			l := openT(t, t.TempDir(), Options{Durability: d, SegmentBytes: 256 << 10})
			const writers, each = 8, 200
			var wg sync.WaitGroup
			bases := make(chan int64, writers*each)
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						base, err := l.Append(mkBatch(fmt.Sprint(w, i), 2, 50, int64(w), int32(2*i)))
						if err != nil {
							t.Error(err)
							return
						}
						bases <- base
					}
				}()
			}
			wg.Wait()
			close(bases)
			seen := map[int64]bool{}
			for b := range bases {
				if seen[b] {
					t.Fatalf("offset %d given twice", b)
				}
				seen[b] = true
			}
			if len(seen) != writers*each || l.NextOffset() != 2*writers*each {
				t.Fatalf("%d bases, end %d", len(seen), l.NextOffset())
			}
			if got := readAll(t, l); len(got) != writers*each {
				t.Fatalf("read %d batches", len(got))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	fs := vfs.NewMem()
	o := Options{FS: fs, SegmentBytes: 8 << 10, IndexIntervalBytes: 512}
	l := openT(t, "/log", o)
	var bases []int64
	for i := 0; i < 200; i++ {
		base, err := l.Append(mkBatch(fmt.Sprint(i), 2, 60, 9, int32(2*i)))
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base)
	}
	segs := l.Segments()
	if err := l.Truncate(bases[150] + 1); !errors.Is(err, ErrNotBatchBoundary) {
		t.Fatalf("truncate inside a batch: %v", err)
	}
	if err := l.Truncate(bases[50]); err != nil {
		t.Fatal(err)
	}
	if l.NextOffset() != bases[50] || l.HighWatermark() != bases[50] || l.Segments() >= segs {
		t.Fatalf("after truncate: next %d hw %d segments %d (was %d)", l.NextOffset(), l.HighWatermark(), l.Segments(), segs)
	}
	if got := readAll(t, l); len(got) != 50 {
		t.Fatalf("%d batches after truncate", len(got))
	}
	// The producer continues from the truncated point.
	if _, err := l.Append(mkBatch("again", 2, 60, 9, 100)); err != nil {
		t.Fatalf("append after truncate: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, "/log", o)
	defer l.Close()
	if got := readAll(t, l); len(got) != 51 || l.NextOffset() != bases[51] {
		t.Fatalf("after reopen: %d batches, next %d", len(got), l.NextOffset())
	}
}

func TestRetention(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	fs := vfs.NewMem()
	o := Options{FS: fs, SegmentBytes: 4 << 10, RetentionBytes: 16 << 10, Now: func() time.Time { return now }}
	l := openT(t, "/r", o)
	for i := 0; i < 400; i++ {
		if _, err := l.Append(mkBatch(fmt.Sprint(i), 1, 100, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if sz := l.Size(); sz > 16<<10+4<<10 {
		t.Fatalf("size %d after retention by size", sz)
	}
	if l.StartOffset() == 0 {
		t.Fatal("nothing deleted")
	}
	if _, err := l.Read(nil, 0, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of a deleted offset: %v", err)
	}
	readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// By age: records carry 2023 timestamps; two days later, a day of
	// retention deletes all sealed segments. The log's background goroutine
	// reads the options and the clock, so rather than changing them on the
	// open log the test reopens it with the age policy and a fixed later
	// clock.
	later := now.Add(48 * time.Hour)
	o = Options{FS: fs, SegmentBytes: 4 << 10, RetentionAge: 24 * time.Hour, Now: func() time.Time { return later }}
	l = openT(t, "/r", o)
	defer l.Close()
	if l.Segments() < 2 {
		t.Fatalf("%d segments after reopen; want sealed segments for retention by age to delete", l.Segments())
	}
	next := l.NextOffset()
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if l.Segments() != 1 {
		t.Fatalf("%d segments after retention by age", l.Segments())
	}
	if l.NextOffset() != next {
		t.Fatalf("next offset %d after retention by age, want %d", l.NextOffset(), next)
	}
}

// TestSetRetention: limits changed on an open log are enforced by its
// background goroutine without a roll; 0 turns them off again.
func TestSetRetention(t *testing.T) {
	l := openT(t, "/r", Options{FS: vfs.NewMem(), SegmentBytes: 4 << 10})
	defer l.Close()
	for i := 0; i < 400; i++ {
		if _, err := l.Append(mkBatch(fmt.Sprint(i), 1, 100, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.EnforceRetention(); n != 0 || err != nil || l.StartOffset() != 0 {
		t.Fatalf("without limits: %d segments deleted (%v), start %d", n, err, l.StartOffset())
	}
	if err := l.SetRetention(-time.Second, 0); err == nil {
		t.Fatal("a negative retention was taken")
	}
	if err := l.SetRetention(0, 16<<10); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Size() > 16<<10+4<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("size %d 10s after SetRetention(0, 16KiB)", l.Size())
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := l.StartOffset()
	if err := l.SetRetention(0, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := l.Append(mkBatch(fmt.Sprint(i), 1, 100, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.EnforceRetention(); n != 0 || err != nil || l.StartOffset() != start {
		t.Fatalf("limits off again: %d segments deleted (%v), start %d, want %d", n, err, l.StartOffset(), start)
	}
}

func TestOffsetForTime(t *testing.T) {
	o := Options{FS: vfs.NewMem(), SegmentBytes: 4 << 10, IndexIntervalBytes: 300}
	l := openT(t, "/t", o)
	defer l.Close()
	var b batch.Builder
	bases := map[int64]int64{} // batch number -> base offset
	for i := int64(0); i < 200; i++ {
		b.Reset(-1, -1, -1)
		b.Add(1000+10*i, nil, []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
		b.Add(1000+10*i+5, nil, []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"))
		base, err := l.Append(bytes.Clone(b.Finish()))
		if err != nil {
			t.Fatal(err)
		}
		bases[i] = base
	}
	if l.Segments() < 3 {
		t.Fatalf("want several segments, got %d", l.Segments())
	}
	for _, c := range []struct{ ts, want int64 }{
		{0, bases[0]},
		{1000, bases[0]},
		{1005, bases[0]},
		{1006, bases[1]},
		{1010, bases[1]},
		{1000 + 10*123 + 3, bases[123]},
		{1000 + 10*199 + 5, bases[199]},
		{1000 + 10*199 + 6, l.HighWatermark()},
	} {
		got, err := l.OffsetForTime(c.ts)
		if err != nil || got != c.want {
			t.Errorf("OffsetForTime(%d) = %d, %v; want %d", c.ts, got, err, c.want)
		}
	}
}

// TestRaftSurface covers what a raft replica uses: the epoch stamped by
// Append, AppendAt at the expected offset keeping the leader's epoch, and
// Truncate of a suffix.
func TestRaftSurface(t *testing.T) {
	leader := openT(t, "/leader", Options{FS: vfs.NewMem()})
	follower := openT(t, "/follower", Options{FS: vfs.NewMem()})
	defer leader.Close()
	defer follower.Close()
	for term := int32(1); term <= 3; term++ {
		leader.SetEpoch(term)
		for i := 0; i < 3; i++ {
			if _, err := leader.Append(mkBatch(fmt.Sprint(term, i), 2, 10, -1, -1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Ship the leader's batches to the follower as raft entries.
	for off := int64(0); off < leader.HighWatermark(); {
		buf, err := leader.Read(nil, off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := batch.ParseHeader(buf)
		if want := int32(1 + off/6); h.LeaderEpoch != want {
			t.Fatalf("batch %d has epoch %d, want %d", off, h.LeaderEpoch, want)
		}
		if err := follower.AppendAt(buf); err != nil {
			t.Fatalf("AppendAt(%d): %v", off, err)
		}
		off = h.NextOffset()
	}
	// A batch at the wrong offset is refused.
	b := mkBatch("late", 1, 10, -1, -1)
	batch.SetBaseOffset(b, 5)
	if err := follower.AppendAt(b); !errors.Is(err, ErrUnexpectedOffset) {
		t.Fatalf("AppendAt at the wrong offset: %v", err)
	}
	// Truncate the last term's entries and append a new term's.
	if err := follower.Truncate(12); err != nil {
		t.Fatal(err)
	}
	b = mkBatch("t4", 1, 10, -1, -1)
	batch.SetBaseOffset(b, 12)
	batch.SetLeaderEpoch(b, 4)
	if err := follower.AppendAt(b); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, follower)
	if len(got) != 7 {
		t.Fatalf("follower holds %d batches, want 7", len(got))
	}
	if h, _ := batch.ParseHeader(got[12]); h.LeaderEpoch != 4 {
		t.Fatalf("batch 12 epoch %d, want 4", h.LeaderEpoch)
	}
}

func TestAppendSparse(t *testing.T) {
	l := openT(t, "/s", Options{FS: vfs.NewMem()})
	defer l.Close()
	// A producer's events 0..9 were spread: this log got 2..4 and 7..8.
	b1, err := l.AppendSparse(mkBatch("a", 3, 10, 5, 2))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := l.AppendSparse(mkBatch("b", 2, 10, 5, 7))
	if err != nil {
		t.Fatal(err)
	}
	if base, err := l.AppendSparse(mkBatch("a", 3, 10, 5, 2)); err != nil || base != b1 {
		t.Fatalf("retry of the first batch: %d %v, want %d", base, err, b1)
	}
	if base, err := l.AppendSparse(mkBatch("b", 2, 10, 5, 7)); err != nil || base != b2 {
		t.Fatalf("retry of the second batch: %d %v, want %d", base, err, b2)
	}
	if _, err := l.AppendSparse(mkBatch("old", 1, 10, 5, 5)); !errors.Is(err, ErrDuplicateSequence) {
		t.Fatalf("sequence below the last: %v", err)
	}
	// The strict rule still applies to Append.
	if _, err := l.Append(mkBatch("gap", 1, 10, 5, 20)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("strict append with a gap: %v", err)
	}
}

func TestAppendAsync(t *testing.T) {
	l := openT(t, t.TempDir(), Options{})
	defer l.Close()
	var ps []Pending
	for i := 0; i < 10; i++ {
		p, err := l.AppendAsync(mkBatch(fmt.Sprint(i), 2, 10, -1, -1), false)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		base, err := p.Wait()
		if err != nil || base != int64(2*i) {
			t.Fatalf("pending %d: base %d err %v", i, base, err)
		}
	}
	if l.HighWatermark() != 20 {
		t.Fatalf("high watermark %d after waiting for all", l.HighWatermark())
	}
}

// TestReadsFollowTruncation: reads of offsets just appended find their
// batches from memory (the recent batches); after a truncation and new,
// differently sized batches at the same offsets, every offset reads the
// new batch, never a remembered place of the old one.
func TestReadsFollowTruncation(t *testing.T) {
	l := openT(t, "/log", Options{FS: vfs.NewMem(), IndexIntervalBytes: 1 << 20})
	defer l.Close()
	want := map[int64][]byte{}
	appendBatch := func(tag string, n, size int) {
		b := mkBatch(tag, n, size, -1, -1)
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := batch.ParseHeader(b)
		for o := base; o < base+int64(h.RecordCount); o++ {
			want[o] = b
		}
	}
	check := func(when string) {
		t.Helper()
		for off := l.StartOffset(); off < l.HighWatermark(); off++ {
			got, err := l.Read(nil, off, 1)
			if err != nil {
				t.Fatalf("%s: read %d: %v", when, off, err)
			}
			h, err := batch.ParseHeader(got)
			if err != nil || off < h.BaseOffset || off >= h.NextOffset() {
				t.Fatalf("%s: read %d returned the batch at %d..%d (%v)", when, off, h.BaseOffset, h.NextOffset(), err)
			}
			// Offsets and epochs are stamped on append: compare records.
			if !bytes.Equal(got[batch.HeaderSize:h.Size()], want[off][batch.HeaderSize:]) {
				t.Fatalf("%s: read %d returned other records than were appended", when, off)
			}
		}
	}
	for i := range 10 {
		appendBatch(fmt.Sprint("a", i), 1+i%3, 50)
	}
	check("after appends")
	cut := int64(6) // a0 0, a1 1-2, a2 3-5, a3 6
	if err := l.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	for o := range want {
		if o >= cut {
			delete(want, o)
		}
	}
	for i := range 6 {
		appendBatch(fmt.Sprint("b", i), 4-i%3, 70)
	}
	check("after truncation and new appends")
}

// TestTxnFreeFrom: the offset past which no transactional or control batch
// lies starts at the log's end when it opens and moves past each such
// batch appended, and only those.
func TestTxnFreeFrom(t *testing.T) {
	fs := vfs.NewMem()
	l := openT(t, "/log", Options{FS: fs})
	if _, err := l.Append(mkBatch("plain", 3, 20, -1, -1)); err != nil {
		t.Fatal(err)
	}
	if got := l.TxnFreeFrom(); got != 0 {
		t.Fatalf("TxnFreeFrom after a plain batch = %d, want 0 (the end at open)", got)
	}
	var b batch.Builder
	b.Reset(7, 0, 0)
	b.Add(1, nil, []byte("in a transaction"))
	b.Add(2, nil, []byte("in a transaction"))
	txn := bytes.Clone(b.Finish())
	binary.BigEndian.PutUint16(txn[batch.OffAttributes:], batch.AttrTransactional)
	binary.BigEndian.PutUint32(txn[batch.OffCRC:], batch.Checksum(txn[batch.OffAttributes:]))
	if _, err := l.Append(txn); err != nil {
		t.Fatal(err)
	}
	if got := l.TxnFreeFrom(); got != 5 {
		t.Fatalf("TxnFreeFrom after a transactional batch at 3..4 = %d, want 5", got)
	}
	if _, err := l.Append(mkBatch("plain", 2, 20, -1, -1)); err != nil {
		t.Fatal(err)
	}
	if got := l.TxnFreeFrom(); got != 5 {
		t.Fatalf("TxnFreeFrom moved to %d for a plain batch", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, "/log", Options{FS: fs})
	defer l.Close()
	if got := l.TxnFreeFrom(); got != 7 {
		t.Fatalf("TxnFreeFrom after reopening a log ending at 7 = %d", got)
	}
}
