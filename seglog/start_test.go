package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// trimLog fills a log of small segments with n batches of 3 records and
// returns their base offsets, in order.
func trimLog(t *testing.T, l *Log, n int) []int64 {
	t.Helper()
	var bases []int64
	for i := range n {
		b := mkBatch(fmt.Sprint(i), 3, 300, -1, -1)
		batch.SetBaseOffset(b, 0)
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base)
	}
	return bases
}

// segmentFiles lists the .log files of a log's directory.
func segmentFiles(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, logSuffix) })
}

// checkDropped checks that the only segment file of dir at or below start
// is the one holding it: those wholly below it are deleted.
func checkDropped(t *testing.T, fs vfs.FS, dir string, start int64) {
	t.Helper()
	var below []string
	for _, name := range segmentFiles(t, fs, dir) {
		if base, _ := parseSegmentName(name); base <= start {
			below = append(below, name)
		}
	}
	if len(below) != 1 {
		t.Fatalf("segments at or below the start %d: %v; want only the one holding it", start, below)
	}
}

// checkStart checks that a log starts at start: reads below it are out of
// range, a read at it returns the batch there, and every batch from it to
// the end is there.
func checkStart(t *testing.T, l *Log, start int64, bases []int64) {
	t.Helper()
	if got := l.StartOffset(); got != start {
		t.Fatalf("StartOffset = %d, want %d", got, start)
	}
	if start > 0 {
		if _, err := l.Read(nil, start-1, 1<<10); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read at %d, below the start %d: %v, want ErrOffsetOutOfRange", start-1, start, err)
		}
		if _, err := l.Locate(0, 1<<10); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("locate at 0, below the start %d: %v, want ErrOffsetOutOfRange", start, err)
		}
	}
	got := readAll(t, l)
	for _, b := range bases {
		if _, ok := got[b]; (b >= start) != ok {
			t.Fatalf("batch %d readable: %v, start %d", b, ok, start)
		}
	}
	if ts, err := l.OffsetForTime(0); err != nil || ts != start {
		t.Fatalf("OffsetForTime(0) = %d, %v; want the start %d", ts, err, start)
	}
}

func TestTrim(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 4 << 10, IndexIntervalBytes: 256, Logger: quiet}
	l := openT(t, "/t", o)
	bases := trimLog(t, l, 40)
	segs := l.Segments()
	if segs < 5 {
		t.Fatalf("%d segments; the test wants several", segs)
	}
	if err := l.Trim(bases[3] + 1); !errors.Is(err, ErrNotBatchBoundary) {
		t.Fatalf("trim inside a batch: %v, want ErrNotBatchBoundary", err)
	}
	if err := l.Trim(l.HighWatermark() + 3); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("trim past the high watermark: %v, want ErrOffsetOutOfRange", err)
	}
	checkStart(t, l, 0, bases)

	start := bases[17]
	if err := l.Trim(start); err != nil {
		t.Fatal(err)
	}
	checkStart(t, l, start, bases)
	if l.Segments() >= segs {
		t.Fatalf("%d segments after the trim, %d before: those below the start stay", l.Segments(), segs)
	}
	checkDropped(t, mem, "/t", start)
	// A lower start changes nothing.
	if err := l.Trim(bases[2]); err != nil {
		t.Fatal(err)
	}
	checkStart(t, l, start, bases)
	// Truncating below the start is refused.
	if err := l.Truncate(bases[5]); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("truncate below the start: %v, want ErrOffsetOutOfRange", err)
	}
	// Appends go on after it.
	more := trimLog(t, l, 3)
	bases = append(bases, more...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, cleanly and after a power cut, the log starts there.
	for _, crash := range []bool{false, true} {
		if crash {
			mem.CrashClean()
		}
		l = openT(t, "/t", o)
		checkStart(t, l, start, bases)
		l.Close()
	}
	// The whole log: the active segment stays, empty to readers.
	l = openT(t, "/t", o)
	end := l.HighWatermark()
	if err := l.Trim(end); err != nil {
		t.Fatal(err)
	}
	checkStart(t, l, end, bases)
	checkDropped(t, mem, "/t", end)
	l.Close()
	l = openT(t, "/t", o)
	defer l.Close()
	checkStart(t, l, end, bases)
	if base, err := l.Append(mkBatch("after", 1, 10, -1, -1)); err != nil || base != end {
		t.Fatalf("append after trimming everything: %d, %v; want offset %d", base, err, end)
	}
}

// TestTrimUnsynced: under SyncNever a trim makes the log durable up to its
// new start first, so a power cut right after it never leaves the start
// past the log's end.
func TestTrimUnsynced(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 4 << 10, Durability: Durability{Mode: SyncNever}, Logger: quiet}
	l := openT(t, "/u", o)
	bases := trimLog(t, l, 20)
	start := bases[15]
	if err := l.Trim(start); err != nil {
		t.Fatal(err)
	}
	l.Close()
	mem.Crash(rand.New(rand.NewPCG(1, 2)))
	l = openT(t, "/u", o)
	defer l.Close()
	if l.StartOffset() != start || l.NextOffset() < start {
		t.Fatalf("after a power cut: start %d, end %d; want start %d at or below the end", l.StartOffset(), l.NextOffset(), start)
	}
}

// TestTrimCrashAtEveryOperation cuts the power at each file operation of
// a trim (and of the reopen after it): the log then starts either where it
// did or at the new start, never elsewhere, every batch from there on is
// intact, and a trim that returned is never undone.
func TestTrimCrashAtEveryOperation(t *testing.T) {
	for at := 1; at < 40; at++ {
		mem := vfs.NewMem()
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 7))}
		o := Options{FS: cfs, SegmentBytes: 4 << 10, IndexIntervalBytes: 256, Logger: quiet}
		l := openT(t, "/c", o)
		bases := trimLog(t, l, 30)
		old, start := bases[4], bases[21]
		if err := l.Trim(old); err != nil { // a first trim, which must be kept
			t.Fatal(err)
		}
		cfs.mu.Lock()
		cfs.crashAt = cfs.ops + at
		cfs.mu.Unlock()
		err := l.Trim(start)
		if err != nil && !errors.Is(err, errPowerLoss) {
			t.Fatalf("crash at %d: trim: %v", at, err)
		}
		trimmed := err == nil
		l.Close()
		if cfs.alive() == nil {
			mem.Crash(cfs.rng)
		}
		// The reopen may crash too (it deletes the segments below the
		// start): open again until it holds.
		cfs = &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 8)), crashAt: 1 + at%5}
		o.FS = cfs
		if l, err := Open("/c", o); err == nil {
			l.Close()
		} else if !errors.Is(err, errPowerLoss) {
			t.Fatalf("crash at %d: reopen: %v", at, err)
		}
		if cfs.alive() == nil {
			mem.Crash(cfs.rng)
		}
		o.FS = mem
		l = openT(t, "/c", o)
		got := l.StartOffset()
		if got != old && got != start || trimmed && got != start {
			t.Fatalf("crash at %d: the log starts at %d; want %d or %d (trim returned: %v)", at, got, old, start, trimmed)
		}
		checkStart(t, l, got, bases)
		checkDropped(t, mem, "/c", got)
		l.Close()
	}
}

// TestTrimFsyncErrorIsFatal: a failed sync of the start offset file fails
// the log, which never retries it; reopened, the log starts where it did
// or at the new start.
func TestTrimFsyncErrorIsFatal(t *testing.T) {
	for _, what := range []string{"file", "directory"} {
		t.Run(what, func(t *testing.T) {
			mem := vfs.NewMem()
			ffs := vfs.NewFault(mem)
			o := Options{FS: ffs, SegmentBytes: 4 << 10, Logger: quiet}
			l := openT(t, "/f", o)
			bases := trimLog(t, l, 20)
			if what == "file" {
				ffs.FailSync(0, syscall.EIO)
			} else {
				ffs.FailSyncDir(0, syscall.EIO)
			}
			if err := l.Trim(bases[10]); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("trim whose fsync failed: %v, want ErrFailed wrapping EIO", err)
			}
			ffs.Reset()
			if _, err := l.Append(mkBatch("x", 1, 10, -1, -1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after a failed trim: %v, want ErrFailed", err)
			}
			if err := l.Trim(bases[12]); !errors.Is(err, ErrFailed) {
				t.Fatalf("trim after a failed trim: %v, want ErrFailed", err)
			}
			l.Close()
			mem.CrashClean()
			o.FS = mem
			l = openT(t, "/f", o)
			defer l.Close()
			if s := l.StartOffset(); s != 0 && s != bases[10] {
				t.Fatalf("reopened, the log starts at %d; want 0 or %d", s, bases[10])
			}
			checkStart(t, l, l.StartOffset(), bases)
		})
	}
}

// TestStartFileDamaged: a start offset file that does not decode, or that
// names no batch of the log, keeps the log from opening, with an error
// naming the file, rather than serving trimmed records again.
func TestStartFileDamaged(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 4 << 10, Logger: quiet}
	l := openT(t, "/d", o)
	bases := trimLog(t, l, 10)
	if err := l.Trim(bases[3]); err != nil {
		t.Fatal(err)
	}
	l.Close()
	good, err := mem.ReadFile("/d/" + startName)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"bit flip":     func() []byte { b := bytes.Clone(good); b[12] ^= 1; return b }(),
		"cut short":    good[:11],
		"past the end": encodeStart(bases[9] + 100),
		"inside":       encodeStart(bases[5] + 1),
	} {
		if err := vfs.WriteFileAtomic(mem, "/d/"+startName, data); err != nil {
			t.Fatal(err)
		}
		_, err := Open("/d", o)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), startName) {
			t.Fatalf("%s: open: %v; want ErrCorrupt naming %s", name, err, startName)
		}
	}
}

// FuzzStartFile opens a log of ten batches beside a start offset file of
// arbitrary bytes. Opening must not panic; it fails, or the log starts at
// a batch boundary within it and reads below the start are out of range.
func FuzzStartFile(f *testing.F) {
	f.Add(encodeStart(0))
	f.Add(encodeStart(6))
	f.Add(encodeStart(30))
	f.Add(encodeStart(31))
	f.Add(encodeStart(-1))
	f.Add(encodeStart(1 << 62))
	f.Add([]byte(startMagic))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, startSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := vfs.NewMem()
		o := Options{FS: mem, SegmentBytes: 4 << 10, Logger: quiet}
		l := openT(t, "/z", o)
		bases := trimLog(t, l, 10)
		l.Close()
		if err := vfs.WriteFileAtomic(mem, "/z/"+startName, data); err != nil {
			t.Fatal(err)
		}
		l, err := Open("/z", o)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v, want ErrCorrupt", err)
			}
			return
		}
		defer l.Close()
		start := l.StartOffset()
		if start != l.NextOffset() && !slices.Contains(bases, start) {
			t.Fatalf("the log starts at %d, not a batch of %v nor its end %d", start, bases, l.NextOffset())
		}
		checkStart(t, l, start, bases)
	})
}
