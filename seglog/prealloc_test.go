package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

func fileSize(t *testing.T, mem *vfs.MemFS, name string) int64 {
	t.Helper()
	b, err := mem.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

// TestPreallocatedReopen checks that the active segment is preallocated
// ahead of its end, that Size reports data bytes, that sealed segments are
// trimmed to their data, and that a reopen (clean or after a crash) finds
// exactly the records and end offset written, without cutting the zeros.
func TestPreallocatedReopen(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 256 << 10, PreallocateBytes: 20 << 10, IndexIntervalBytes: 1024, Logger: quiet}
	l := openT(t, "/p", o)
	active := "/p/" + segmentName(0, logSuffix)
	// Nothing before the first write; then zeros from a quarter of
	// PreallocateBytes past the data, PreallocateBytes of them.
	first := mkBatch("first", 1, 100, -1, -1)
	if _, err := l.Append(first); err != nil {
		t.Fatal(err)
	}
	waitExtended(t, l)
	if n, want := fileSize(t, mem, active), int64(len(first))+5<<10+20<<10; n != want {
		t.Fatalf("segment file is %d bytes after its first write, want %d preallocated", n, want)
	}
	data := int64(len(first))
	for i := 0; i < 150; i++ { // about 3 segments, each extended several times
		b := mkBatch(fmt.Sprint(i), 4, 500, -1, -1)
		data += int64(len(b))
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if l.Size() != data {
		t.Fatalf("Size %d, want the %d data bytes", l.Size(), data)
	}
	if l.Segments() < 2 {
		t.Fatalf("want a roll, have %d segments", l.Segments())
	}
	want, next := readAll(t, l), l.NextOffset()
	check := func(l *Log, what string) {
		t.Helper()
		if l.NextOffset() != next || l.Size() != data {
			t.Fatalf("%s: next %d size %d, want %d %d", what, l.NextOffset(), l.Size(), next, data)
		}
		got := readAll(t, l)
		if len(got) != len(want) {
			t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
		}
		for off, b := range want {
			if !sameRecords(got[off], b) {
				t.Fatalf("%s: batch %d differs", what, off)
			}
		}
		names, _ := mem.List("/p")
		var segs []string
		for _, n := range names {
			if _, ok := parseSegmentName(n); ok {
				segs = append(segs, n)
			}
		}
		var sum int64
		for i, n := range segs {
			size := fileSize(t, mem, "/p/"+n)
			b, _ := mem.ReadFile("/p/" + n)
			end := int64(dataEnd(b))
			if i < len(segs)-1 && size != end {
				t.Fatalf("%s: sealed segment %s is %d bytes, its data %d", what, n, size, end)
			}
			if i == len(segs)-1 && size <= end {
				t.Fatalf("%s: active segment %s is %d bytes, not preallocated past its data (%d)", what, n, size, end)
			}
			sum += end
		}
		if sum != data {
			t.Fatalf("%s: segments hold %d data bytes, want %d", what, sum, data)
		}
	}
	check(l, "before close")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := mem.List("/p")
	var actName string
	for _, n := range names {
		if _, ok := parseSegmentName(n); ok {
			actName = n
		}
	}
	before := fileSize(t, mem, "/p/"+actName)
	l = openT(t, "/p", o)
	check(l, "after reopen")
	if n := fileSize(t, mem, "/p/"+actName); n != before {
		t.Fatalf("reopen changed the active segment from %d to %d bytes", before, n)
	}
	// A crash of an open log (its checkpoint at the reopen): the scan from
	// the checkpoint ends at the zeros.
	mem.CrashClean()
	l = openT(t, "/p", o)
	check(l, "after crash")
	// Appends go on at the logical end.
	if base, err := l.Append(mkBatch("more", 2, 10, -1, -1)); err != nil || base != next {
		t.Fatalf("append after reopen: %d %v, want %d", base, err, next)
	}
	l.Close()
}

// TestCrashAfterPreallocation cuts the power right after a segment file is
// created and preallocated, before any append, and after a roll's
// preallocation; recovery finds an empty segment (or the rolled one's end).
func TestCrashAfterPreallocation(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		mem := vfs.NewMem()
		o := Options{FS: mem, SegmentBytes: 64 << 10, PreallocateBytes: 16 << 10, Logger: quiet}
		l := openT(t, "/q", o)
		mem.Crash(rand.New(rand.NewPCG(seed, 1)))
		l.Close() // stops its goroutine before the next Open lists the directory
		l = openT(t, "/q", o)
		if l.NextOffset() != 0 || l.Size() != 0 {
			t.Fatalf("seed %d: fresh log after crash: next %d size %d", seed, l.NextOffset(), l.Size())
		}
		// Fill a segment, so the next append rolls (and preallocates the new one).
		var n int64
		for l.Segments() == 1 {
			if _, err := l.Append(mkBatch("a", 4, 500, -1, -1)); err != nil {
				t.Fatal(err)
			}
			n++
		}
		next := l.NextOffset()
		mem.Crash(rand.New(rand.NewPCG(seed, 2)))
		l.Close() // its background seal must not race with the next Open
		l = openT(t, "/q", o)
		// Everything was acknowledged under SyncAlways.
		if l.NextOffset() != next {
			t.Fatalf("seed %d: after a crash past a roll, next %d, want %d", seed, l.NextOffset(), next)
		}
		if got := len(readAll(t, l)); int64(got) != n {
			t.Fatalf("seed %d: %d batches, want %d", seed, got, n)
		}
		l.Close()
	}
}

// TestPreallocationErrorFailsLog checks that a failed zero write or
// fdatasync while extending the active segment fails the log, for good,
// with a message naming the preallocation.
func TestPreallocationErrorFailsLog(t *testing.T) {
	for _, kind := range []string{"write", "sync"} {
		ffs := vfs.NewFault(vfs.NewMem())
		// An hour's interval: the only fdatasync is the extension's.
		o := Options{FS: ffs, SegmentBytes: 64 << 10, PreallocateBytes: 8 << 10, Durability: Durability{Mode: SyncInterval, Interval: time.Hour}, Logger: quiet}
		l := openT(t, "/f", o)
		b := mkBatch("x", 4, 500, -1, -1)
		ffs.SetMatch(func(name string) bool { return strings.HasSuffix(name, logSuffix) })
		switch kind {
		case "write":
			ffs.FailWrite(1, syscall.ENOSPC) // the append's own write passes
		case "sync":
			ffs.FailSync(0, syscall.EIO)
		}
		// The first write starts the extension, which fails.
		if _, err := l.Append(b); err != nil {
			t.Fatalf("%s: the append that starts the extension: %v", kind, err)
		}
		waitExtended(t, l)
		_, err := l.Append(b)
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "preallocate") {
			t.Fatalf("%s: append after the failed extension: %v, want ErrFailed naming the preallocation", kind, err)
		}
		ffs.Reset()
		if _, err := l.Append(mkBatch("y", 1, 10, -1, -1)); !errors.Is(err, ErrFailed) {
			t.Fatalf("%s: later append: %v, want ErrFailed (never retried)", kind, err)
		}
		l.Close()
	}
}

// BenchmarkAppendFdatasync measures one ~1.1 KiB append with its own
// fdatasync (one appender, SyncAlways) on a real file in t.TempDir(),
// with and without preallocation, and reports the median and p99
// latency. Preallocation's own extensions are included.
//
//	go test -run XXX -bench AppendFdatasync -benchtime 5000x ./seglog/
func BenchmarkAppendFdatasync(b *testing.B) {
	for _, pre := range []int64{-1, 1 << 20, 8 << 20} {
		name := "prealloc=off"
		if pre > 0 {
			name = fmt.Sprintf("prealloc=%dMiB", pre>>20)
		}
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "log")
			l, err := Open(dir, Options{PreallocateBytes: pre, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			bt := mkBatch("bench", 1, 1050, -1, -1) // 1126 bytes with the batch header
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(len(bt)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := l.Append(bt); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "max-µs")
		})
	}
}

// waitExtended waits (at most 10 s) for the active segment's background
// extension, if any, to end.
func waitExtended(t *testing.T, l *Log) {
	t.Helper()
	for range 10000 {
		l.mu.Lock()
		e := l.active.extending
		l.mu.Unlock()
		if !e {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the segment's extension did not end")
}

// zeroHoldFS holds every write of zeros of at least 4 KiB (preallocation)
// while hold is set, until release is closed, and records the offsets of
// the writes in order.
type zeroHoldFS struct {
	vfs.FS
	mu      sync.Mutex
	hold    bool
	held    chan struct{} // receives when a zero write is held
	release chan struct{}
	writes  []zeroWrite
}

type zeroWrite struct {
	off   int64
	zeros bool
}

type zeroHoldFile struct {
	vfs.File
	fs *zeroHoldFS
}

func (z *zeroHoldFS) Create(name string) (vfs.File, error) { return z.wrap(z.FS.Create(name)) }
func (z *zeroHoldFS) OpenRW(name string) (vfs.File, error) { return z.wrap(z.FS.OpenRW(name)) }

func (z *zeroHoldFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &zeroHoldFile{File: f, fs: z}, nil
}

func (f *zeroHoldFile) WriteAt(p []byte, off int64) (int, error) {
	zeros := len(p) >= 4<<10 && bytes.Equal(p, zeroChunk[:len(p)])
	f.fs.mu.Lock()
	hold := f.fs.hold && zeros
	f.fs.mu.Unlock()
	if hold {
		f.fs.held <- struct{}{}
		<-f.fs.release
	}
	f.fs.mu.Lock()
	f.fs.writes = append(f.fs.writes, zeroWrite{off, zeros})
	f.fs.mu.Unlock()
	return f.File.WriteAt(p, off)
}

// TestPreallocateAheadInBackground: a segment's first write starts an
// extension that writes zeros a quarter of PreallocateBytes past the data,
// beside the appends, which go on below them meanwhile; an append that
// would reach them waits for them, and writes after them. Nothing appended
// is lost on reopen.
func TestPreallocateAheadInBackground(t *testing.T) {
	mem := vfs.NewMem()
	zfs := &zeroHoldFS{FS: mem, held: make(chan struct{}, 1), release: make(chan struct{})}
	const prealloc = 64 << 10
	o := Options{FS: zfs, SegmentBytes: 1 << 20, PreallocateBytes: prealloc, IndexIntervalBytes: 4096, Logger: quiet}
	l := openT(t, "/bg", o)
	zfs.mu.Lock()
	zfs.hold = true
	zfs.mu.Unlock()

	var data int64
	appendOne := func(tag string) {
		t.Helper()
		b := mkBatch(tag, 1, 900, -1, -1)
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		data += int64(len(b))
	}
	appendOne("first")
	select {
	case <-zfs.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no extension started by the first write")
	}
	from := data + prealloc/4
	// The extension is held: appends below its zeros go on.
	for i := 0; data < from-2048; i++ {
		appendOne(fmt.Sprint(i))
	}
	// These would reach them: they wait for the extension.
	done := make(chan error, 1)
	go func() {
		var err error
		for k := 0; k < 4 && err == nil; k++ {
			_, err = l.Append(mkBatch(fmt.Sprint("past", k), 1, 900, -1, -1))
		}
		done <- err
	}()
	close(zfs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	zfs.mu.Lock()
	zeroAt, dataPast := -1, -1
	for k, w := range zfs.writes {
		switch {
		case w.zeros && w.off == from && zeroAt < 0:
			zeroAt = k
		case !w.zeros && w.off >= from && dataPast < 0:
			dataPast = k
		}
	}
	zfs.mu.Unlock()
	if zeroAt < 0 || dataPast < 0 || dataPast < zeroAt {
		t.Fatalf("writes from byte %d: zeros at #%d, data at #%d; want the zeros first (%+v)", from, zeroAt, dataPast, zfs.writes)
	}
	want, next := readAll(t, l), l.NextOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, "/bg", Options{FS: mem, SegmentBytes: 1 << 20, PreallocateBytes: prealloc, IndexIntervalBytes: 4096, Logger: quiet})
	defer l.Close()
	if got := readAll(t, l); l.NextOffset() != next || len(got) != len(want) {
		t.Fatalf("reopened: next %d, %d batches; want %d, %d", l.NextOffset(), len(got), next, len(want))
	}
}

// TestNoPreallocationWithoutSync: a log that never fdatasyncs its appends
// writes no zeros ahead of them.
func TestNoPreallocationWithoutSync(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 256 << 10, PreallocateBytes: 20 << 10, Durability: Durability{Mode: SyncNever}, Logger: quiet}
	l := openT(t, "/n", o)
	defer l.Close()
	b := mkBatch("x", 4, 500, -1, -1)
	for range 3 {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	waitExtended(t, l)
	if n, want := fileSize(t, mem, "/n/"+segmentName(0, logSuffix)), int64(3*len(b)); n != want {
		t.Fatalf("segment file is %d bytes, want %d (its data, no zeros)", n, want)
	}
}
