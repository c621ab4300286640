package seglog

// Benchmarks of the segmented log: append throughput under each fsync policy
// next to a raw write+fdatasync loop, append latency around segment rolls,
// read throughput from the page cache, recovery time of a 1 GiB log, and
// allocations per append. They assert nothing about time; the figures are
// for humans.
//
//	go test -run '^$' -bench . -benchtime=2s -count=1 ./seglog/
//
// Where the data goes: b.TempDir(), i.e. $TMPDIR or /tmp. On the machine
// these benchmarks were written on, /tmp is on the same ext4 file system as
// the repository (not tmpfs), so b.TempDir() measures the real disk. If the
// temporary directory is a tmpfs, fdatasync costs nothing there and the
// figures would be meaningless: the benchmarks then skip, and
// SEGLOG_BENCH_DIR=/some/disk/dir makes them use a fresh directory under
// that path instead (removed afterwards).
//
// Disk use is bounded: append benchmarks keep at most about 1 GiB of
// segments (RetentionBytes) plus a 128 MiB raw file, BenchmarkRead writes
// 256 MiB, BenchmarkRecover1GiB 1 GiB; each removes its files when done.
// BenchmarkRead, BenchmarkRecover1GiB and BenchmarkAppendVsRaw skip under
// -short.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

const (
	benchValueSize    = 100              // bytes per record value
	benchSegmentBytes = 128 << 20        // the default segment size, spelled out
	benchRetainBytes  = 1 << 30          // bounds what an append benchmark keeps on disk
	benchPoolPerG     = 4                // distinct pre-built batches per appender
	benchReadMax      = 1 << 20          // maxBytes per Read/Locate
	benchReadFill     = 256 << 20        // bytes in the log BenchmarkRead reads
	benchRecoverTail  = 32 << 20         // unchecked tail of the unclean recovery
	benchNoCheckpoint = int64(1<<62 - 1) // CheckpointBytes that never triggers
)

// Set by benchutil_test.go on Linux; nil elsewhere.
var (
	// evictFromPageCache drops a file's clean pages from the page cache.
	evictFromPageCache func(path string) error
	// isTmpfs reports whether dir is on a tmpfs.
	isTmpfs func(dir string) bool
)

// benchDir returns an empty directory on a real disk, removed when b ends.
func benchDir(b *testing.B) string {
	b.Helper()
	var dir string
	if root := os.Getenv("SEGLOG_BENCH_DIR"); root != "" {
		d, err := os.MkdirTemp(root, "seglog-bench-*")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	} else {
		dir = b.TempDir()
	}
	if isTmpfs != nil && isTmpfs(dir) {
		b.Skipf("%s is on tmpfs, where fdatasync costs nothing; set SEGLOG_BENCH_DIR to a directory on a disk", dir)
	}
	return dir
}

// openBench opens a log that is closed (outside the timer) when b ends,
// before its directory is removed.
func openBench(b *testing.B, dir string, o Options) *Log {
	b.Helper()
	l := openT(b, dir, o)
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	return l
}

// benchBatch returns a non-idempotent batch of n records of benchValueSize
// bytes each (about 108 bytes per record once framed).
func benchBatch(n int, tag string) []byte {
	return mkBatch(tag, n, benchValueSize, -1, -1)
}

// benchPools pre-builds benchPoolPerG batches of n records for each of
// appenders goroutines. Append rewrites a batch's base offset and epoch, so
// each pool belongs to one goroutine, which uses one batch at a time.
func benchPools(appenders, n int) [][][]byte {
	pools := make([][][]byte, appenders)
	for g := range pools {
		for i := range benchPoolPerG {
			pools[g] = append(pools[g], benchBatch(n, fmt.Sprintf("g%d.%d", g, i)))
		}
	}
	return pools
}

// appendAll appends n batches in total from len(pools) goroutines.
func appendAll(b *testing.B, l *Log, pools [][][]byte, n int) {
	var wg sync.WaitGroup
	a := len(pools)
	for g, pool := range pools {
		cnt := n / a
		if g < n%a {
			cnt++
		}
		wg.Go(func() {
			for i := range cnt {
				if _, err := l.Append(pool[i%len(pool)]); err != nil {
					b.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// countFS counts fdatasyncs of segment (.log) files and the time spent in
// them and in segment writes, to show how many appends share one fdatasync
// (group commit) and where the time goes; and bytes read from any file, to
// show how much a recovery reads.
type countFS struct {
	vfs.FS
	syncs, syncNanos   atomic.Int64
	writes, writeNanos atomic.Int64
	reads              atomic.Int64
}

// snap returns the counters.
func (c *countFS) snap() countSnap {
	return countSnap{c.syncs.Load(), c.syncNanos.Load(), c.writes.Load(), c.writeNanos.Load()}
}

type countSnap struct{ syncs, syncNanos, writes, writeNanos int64 }

func (c *countFS) Create(name string) (vfs.File, error) {
	f, err := c.FS.Create(name)
	return c.wrap(name, f, err)
}

func (c *countFS) OpenRW(name string) (vfs.File, error) {
	f, err := c.FS.OpenRW(name)
	return c.wrap(name, f, err)
}

func (c *countFS) Open(name string) (vfs.File, error) {
	f, err := c.FS.Open(name)
	return c.wrap(name, f, err)
}

func (c *countFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &countFile{File: f, fs: c, segment: strings.HasSuffix(name, logSuffix)}, nil
}

type countFile struct {
	vfs.File
	fs      *countFS
	segment bool
}

func (f *countFile) Sync() error {
	if !f.segment {
		return f.File.Sync()
	}
	t := time.Now()
	err := f.File.Sync()
	f.fs.syncNanos.Add(int64(time.Since(t)))
	f.fs.syncs.Add(1)
	return err
}

func (f *countFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.segment {
		return f.File.WriteAt(p, off)
	}
	t := time.Now()
	n, err := f.File.WriteAt(p, off)
	f.fs.writeNanos.Add(int64(time.Since(t)))
	f.fs.writes.Add(1)
	return n, err
}

func (f *countFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.reads.Add(int64(n))
	return n, err
}

// benchAppend measures b.N appends of pre-built batches of records records,
// spread over appenders goroutines, under the fsync policy durability.
func benchAppend(b *testing.B, durability string, records, appenders int) {
	d, err := ParseDurability(durability)
	if err != nil {
		b.Fatal(err)
	}
	fs := &countFS{FS: vfs.Default}
	l := openBench(b, benchDir(b), Options{FS: fs, Durability: d, SegmentBytes: benchSegmentBytes, RetentionBytes: benchRetainBytes})
	pools := benchPools(appenders, records)
	b.SetBytes(int64(len(pools[0][0])))
	b.ReportAllocs()
	c0 := fs.snap()
	b.ResetTimer()
	appendAll(b, l, pools, b.N)
	b.StopTimer()
	c := fs.snap()
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// Segment fdatasyncs, including those of checkpoints and rolls.
	if syncs := c.syncs - c0.syncs; syncs > 0 {
		b.ReportMetric(float64(b.N)/float64(syncs), "batches/fsync")
		b.ReportMetric(float64(c.syncNanos-c0.syncNanos)/1e3/float64(syncs), "us/fsync")
	}
	if writes := c.writes - c0.writes; writes > 0 {
		b.ReportMetric(float64(c.writeNanos-c0.writeNanos)/1e3/float64(writes), "us/write")
	}
}

// BenchmarkAppend: 100-byte records in batches of 1, 100 and 1000, fsync
// always, 1, 4 and 16 concurrent appenders. One op is one batch; MB/s counts
// batch bytes. Compare with BenchmarkRawWriteFdatasync of the same sizes.
// Goal (not asserted): >= 2,000,000 events/s at batch=1000 with group commit.
func BenchmarkAppend(b *testing.B) {
	for _, records := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", records), func(b *testing.B) {
			for _, appenders := range []int{1, 4, 16} {
				b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
					benchAppend(b, "always", records, appenders)
				})
			}
		})
	}
}

// BenchmarkAppendDurability compares the fsync policies for one appender of
// batches of 1000 records.
func BenchmarkAppendDurability(b *testing.B) {
	for _, mode := range []string{"always", "interval:10ms", "never"} {
		b.Run("batch=1000/appenders=1/fsync="+mode, func(b *testing.B) {
			benchAppend(b, mode, 1000, 1)
		})
	}
}

// BenchmarkAppendAllocs: allocations per Append of a 100-record batch, fsync
// never, one appender. Expected 0 allocs/op (amortized growth of the index
// slices, checkpoints and rolls aside).
func BenchmarkAppendAllocs(b *testing.B) {
	l := openBench(b, benchDir(b), Options{Durability: Durability{Mode: SyncNever}, SegmentBytes: benchSegmentBytes, RetentionBytes: benchRetainBytes})
	p := benchBatch(100, "allocs")
	if _, err := l.Append(p); err != nil { // first-append setup
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(p); err != nil {
			b.Fatal(err)
		}
	}
}

// rawWriteSync appends p to a file n times, fdatasyncing (vfs File.Sync)
// after each write: an ideal single writer with no framing, checks or
// indexes. To bound disk use the file is replaced by a new one every
// benchSegmentBytes; pause and resume bracket that replacement, which is not
// counted in the returned duration either.
func rawWriteSync(b *testing.B, dir string, p []byte, n int, pause, resume func()) time.Duration {
	var (
		f       vfs.File
		pos     int64
		seq     int
		elapsed time.Duration
	)
	replace := func() {
		pause()
		defer resume()
		if f != nil {
			f.Close()
			if err := os.Remove(f.Name()); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		if f, err = vfs.Default.Create(filepath.Join(dir, fmt.Sprintf("raw-%d.dat", seq))); err != nil {
			b.Fatal(err)
		}
		seq++
		if err := vfs.Default.SyncDir(dir); err != nil {
			b.Fatal(err)
		}
		pos = 0
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	replace()
	start := time.Now()
	for range n {
		if pos+int64(len(p)) > benchSegmentBytes {
			elapsed += time.Since(start)
			replace()
			start = time.Now()
		}
		if _, err := f.WriteAt(p, pos); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		pos += int64(len(p))
	}
	return elapsed + time.Since(start)
}

// BenchmarkRawWriteFdatasync: the file system's baseline, sequential
// write+fdatasync of the byte sizes of the batches BenchmarkAppend uses (1,
// 100 and 1000 records of 100 bytes), plus 1 MiB writes as a sequential
// bandwidth reference.
func BenchmarkRawWriteFdatasync(b *testing.B) {
	sizes := []int{}
	for _, records := range []int{1, 100, 1000} {
		sizes = append(sizes, len(benchBatch(records, "raw")))
	}
	sizes = append(sizes, 1<<20)
	for _, size := range sizes {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			p := bytes.Repeat(benchBatch(1000, "raw"), size/len(benchBatch(1000, "raw"))+1)[:size]
			dir := benchDir(b)
			b.SetBytes(int64(size))
			b.ResetTimer()
			rawWriteSync(b, dir, p, b.N, b.StopTimer, b.StartTimer)
		})
	}
}

// BenchmarkAppendVsRaw measures, in the same run and for the same number of
// writes of the same size, first the raw write+fdatasync loop and then the
// log (batches of 1000 records, fsync always), and reports
// ratio-to-raw = log MB/s / raw MB/s. ns/op is the sum of both halves and
// means nothing by itself. With several appenders the log shares fdatasyncs
// (group commit) while the raw loop syncs every write, so the ratio may
// exceed 1. Goal (not asserted): >= 0.8.
func BenchmarkAppendVsRaw(b *testing.B) {
	if testing.Short() {
		b.Skip("expensive; skipped under -short")
	}
	const records = 1000
	for _, appenders := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("batch=%d/appenders=%d", records, appenders), func(b *testing.B) {
			dir := benchDir(b)
			rawDir, logDir := filepath.Join(dir, "raw"), filepath.Join(dir, "log")
			if err := os.Mkdir(rawDir, 0o755); err != nil {
				b.Fatal(err)
			}
			l := openBench(b, logDir, Options{SegmentBytes: benchSegmentBytes, RetentionBytes: benchRetainBytes})
			pools := benchPools(appenders, records)
			p := bytes.Clone(pools[0][0])
			size := float64(len(p))
			nop := func() {}
			b.ResetTimer()
			rawDur := rawWriteSync(b, rawDir, p, b.N, nop, nop)
			t0 := time.Now()
			appendAll(b, l, pools, b.N)
			logDur := time.Since(t0)
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(n*size/rawDur.Seconds()/1e6, "raw-MB/s")
			b.ReportMetric(n*size/logDur.Seconds()/1e6, "log-MB/s")
			b.ReportMetric(n*records/logDur.Seconds(), "events/s")
			b.ReportMetric(rawDur.Seconds()/logDur.Seconds(), "ratio-to-raw")
		})
	}
}

// fillLog appends count copies of p (SyncNever logs fill at page-cache
// speed).
func fillLog(b *testing.B, l *Log, p []byte, count int64) {
	b.Helper()
	for range count {
		if _, err := l.Append(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead: sequential reads of a 256 MiB log from the page cache,
// 1 MiB per call, wrapping at the end. method=Read copies into a reused
// buffer; method=Locate finds the same range for sendfile (it still reads
// the batches once to check their CRCs). MB/s counts the bytes returned.
func BenchmarkRead(b *testing.B) {
	if testing.Short() {
		b.Skip("fills 256 MiB; skipped under -short")
	}
	dir := benchDir(b)
	l := openBench(b, dir, Options{Durability: Durability{Mode: SyncNever}, SegmentBytes: benchSegmentBytes})
	p := benchBatch(100, "read")
	fillLog(b, l, p, benchReadFill/int64(len(p)))
	start, hw := l.StartOffset(), l.HighWatermark()
	// One untimed pass so every page is cached and every check has passed.
	var dst []byte
	for off := start; off < hw; {
		var err error
		if dst, err = l.Read(dst[:0], off, benchReadMax); err != nil {
			b.Fatal(err)
		}
		if off, err = lastNext(dst); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("method=Read", func(b *testing.B) {
		var total, events int64
		off := start
		dst := make([]byte, 0, benchReadMax)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			var err error
			if dst, err = l.Read(dst[:0], off, benchReadMax); err != nil {
				b.Fatal(err)
			}
			next, err := lastNext(dst)
			if err != nil {
				b.Fatal(err)
			}
			total += int64(len(dst))
			events += next - off
			if off = next; off >= hw {
				off = start
			}
		}
		b.StopTimer()
		b.SetBytes(total / int64(b.N))
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("method=Locate", func(b *testing.B) {
		var total, events int64
		off := start
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			s, err := l.Locate(off, benchReadMax)
			if err != nil {
				b.Fatal(err)
			}
			if s.Len == 0 {
				b.Fatalf("Locate(%d) below the high watermark %d found nothing", off, hw)
			}
			total += s.Len
			events += s.NextOffset - off
			if off = s.NextOffset; off >= hw {
				off = start
			}
			s.Release()
		}
		b.StopTimer()
		b.SetBytes(total / int64(b.N))
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	})
}

// abandon stops a log as a crashed process would: no checkpoint, no index
// flush, files closed. Whatever was not synced stays in the page cache.
func abandon(l *Log) {
	close(l.quit)
	l.wg.Wait()
	l.segMu.Lock()
	for _, s := range l.segs {
		s.f.Close()
	}
	l.segMu.Unlock()
}

// BenchmarkRecover1GiB: time of Open on a 1 GiB log (8 segments of 128 MiB,
// batches of 100 records), built once (fsync never) before the timed part.
// One op is one Open; Close and any preparation are not timed.
//
//   - state=clean: the log was closed (the checkpoint covers everything).
//   - state=unclean-tail: before each Open, a process appended the last
//     32 MiB (CheckpointBytes set so high that no checkpoint followed),
//     synced them and stopped without Close; recovery trusts the checkpoint
//     and scans (CRC-checks) the 32 MiB after it, from the page cache.
//   - state=unclean-tail-cold (Linux): the same with the log's files evicted
//     from the page cache first, as after a machine restart.
//   - state=no-checkpoint: the checkpoint file was removed; recovery scans
//     the whole 1 GiB and rewrites the indexes (the worst case).
//
// Goal (not asserted): < 1 s for the clean and unclean-tail cases.
func BenchmarkRecover1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1 GiB log; skipped under -short")
	}
	dir := benchDir(b)
	fs := &countFS{FS: vfs.Default}
	o := Options{FS: fs, Logger: quiet, Durability: Durability{Mode: SyncNever}, SegmentBytes: benchSegmentBytes}
	p := benchBatch(100, "recover")
	bsize := int64(len(p))
	perSeg := benchSegmentBytes / bsize // batches a segment holds
	total := 8 * perSeg                 // fills 8 segments, just under 1 GiB
	tail := (benchRecoverTail + bsize - 1) / bsize

	l := openT(b, dir, o)
	fillLog(b, l, p, total-tail)
	prefixNext := l.NextOffset()
	fillLog(b, l, p, tail)
	end, size, segs := l.NextOffset(), l.Size(), l.Segments()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	if segs != 8 {
		b.Fatalf("built %d segments, want 8", segs)
	}
	b.Logf("log: %d bytes (%.3f GiB) in %d segments, %d batches of %d bytes, %d records; unclean tail %d batches (%.1f MiB)",
		size, float64(size)/(1<<30), segs, total, bsize, end, tail, float64(tail*bsize)/(1<<20))

	// reopen is the timed part: one Open, checked, then closed untimed.
	// It adds what the Open read (from any file) to *read.
	reopen := func(b *testing.B, read *int64) {
		r0 := fs.reads.Load()
		b.StartTimer()
		l, err := Open(dir, o)
		b.StopTimer()
		*read += fs.reads.Load() - r0
		if err != nil {
			b.Fatal(err)
		}
		if l.NextOffset() != end || l.Segments() != 8 {
			b.Fatalf("recovered next %d in %d segments, want %d in 8", l.NextOffset(), l.Segments(), end)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
	// crashAfterTail leaves the log with a checkpoint at prefixNext and the
	// tail appended, synced, but neither checkpointed nor indexed on disk.
	crashAfterTail := func(b *testing.B) {
		wo := o
		wo.CheckpointBytes = benchNoCheckpoint
		w := openT(b, dir, wo)
		if err := w.Truncate(prefixNext); err != nil {
			b.Fatal(err)
		}
		fillLog(b, w, p, tail)
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
		if w.NextOffset() != end || w.Segments() != 8 {
			b.Fatalf("rewrote the tail to %d in %d segments, want %d in 8", w.NextOffset(), w.Segments(), end)
		}
		abandon(w)
	}
	report := func(b *testing.B, read int64) {
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/open")
		b.ReportMetric(float64(read)/(1<<20)/float64(b.N), "MiB-read/open")
	}

	b.Run("state=clean", func(b *testing.B) {
		b.StopTimer()
		b.ResetTimer()
		var read int64
		for range b.N {
			reopen(b, &read)
		}
		report(b, read)
	})
	b.Run("state=unclean-tail", func(b *testing.B) {
		b.StopTimer()
		b.ResetTimer()
		var read int64
		for range b.N {
			crashAfterTail(b)
			reopen(b, &read)
		}
		report(b, read)
	})
	if evictFromPageCache != nil {
		b.Run("state=unclean-tail-cold", func(b *testing.B) {
			b.StopTimer()
			b.ResetTimer()
			var read int64
			for range b.N {
				crashAfterTail(b)
				names, err := os.ReadDir(dir)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range names {
					if err := evictFromPageCache(filepath.Join(dir, e.Name())); err != nil {
						b.Fatal(err)
					}
				}
				reopen(b, &read)
			}
			report(b, read)
		})
	}
	b.Run("state=no-checkpoint", func(b *testing.B) {
		b.StopTimer()
		b.ResetTimer()
		var read int64
		for range b.N {
			if err := os.Remove(filepath.Join(dir, checkpointName)); err != nil {
				b.Fatal(err)
			}
			reopen(b, &read)
		}
		report(b, read)
	})
}

// BenchmarkAppendRoll measures the latency of single appends when segments
// roll often, with one and four appenders: batches of 10 records (about
// 1.1 KiB), segments of 256 KiB under fsync always (a roll every ~230
// batches) and of 4 MiB under fsync never (a roll every ~3700 batches,
// some tens per second). It reports the percentiles of Append's latency
// (from the call to its return) and the rolls per second: the appends that
// arrive while a roll holds the append lock make up the high percentiles.
//
// disk=real is the benchmark directory (see benchDir). disk=sim is an
// in-memory file system on which every File.Sync and SyncDir takes
// simSyncDelay, one at a time as on one disk: it shows the effect of the
// locking alone, without the noise of a shared disk.
func BenchmarkAppendRoll(b *testing.B) {
	const records = 10
	for _, disk := range []string{"real", "sim"} {
		for _, mode := range []string{"always", "never"} {
			for _, appenders := range []int{1, 4} {
				b.Run(fmt.Sprintf("disk=%s/fsync=%s/appenders=%d", disk, mode, appenders), func(b *testing.B) {
					d, err := ParseDurability(mode)
					if err != nil {
						b.Fatal(err)
					}
					segBytes := int64(256 << 10)
					if d.Mode == SyncNever {
						segBytes = 4 << 20
					}
					o := Options{Durability: d, SegmentBytes: segBytes, RetentionBytes: 64 << 20, Logger: quiet}
					dir := "/bench"
					if disk == "real" {
						dir = benchDir(b)
					} else {
						o.FS = &slowSyncFS{FS: vfs.NewMem(), delay: simSyncDelay}
					}
					benchAppendRoll(b, openBench(b, dir, o), records, appenders, segBytes)
					if s, ok := o.FS.(*slowSyncFS); ok && s.syncs.Load() > 0 {
						b.ReportMetric(float64(s.nanos.Load())/1e3/float64(s.syncs.Load()), "sim-us/sync")
					}
				})
			}
		}
	}
}

// simSyncDelay is what an fdatasync costs on disk=sim: about what one costs
// on the machine these benchmarks were written on.
const simSyncDelay = 220 * time.Microsecond

func benchAppendRoll(b *testing.B, l *Log, records, appenders int, segBytes int64) {
	pools := benchPools(appenders, records)
	lat := make([][]time.Duration, appenders)
	for g := range lat {
		lat[g] = make([]time.Duration, 0, b.N/appenders+1)
	}
	start := l.NextOffset()
	b.SetBytes(int64(len(pools[0][0])))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g, pool := range pools {
		cnt := b.N / appenders
		if g < b.N%appenders {
			cnt++
		}
		wg.Go(func() {
			for i := range cnt {
				t0 := time.Now()
				if _, err := l.Append(pool[i%len(pool)]); err != nil {
					b.Errorf("append: %v", err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e3 }
	b.ReportMetric(q(0.50), "p50-us")
	b.ReportMetric(q(0.99), "p99-us")
	b.ReportMetric(q(0.999), "p99.9-us")
	b.ReportMetric(q(0.9999), "p99.99-us")
	b.ReportMetric(float64(all[len(all)-1])/1e3, "max-us")
	rolls := float64(l.NextOffset()-start) * float64(len(pools[0][0])) / float64(records) / float64(segBytes)
	b.ReportMetric(rolls/b.Elapsed().Seconds(), "rolls/s")
}

// slowSyncFS makes every File.Sync and SyncDir take delay (at least: a
// sleep may take longer), one at a time, and measures what they took.
type slowSyncFS struct {
	vfs.FS
	delay        time.Duration
	mu           sync.Mutex // one sync at a time, as on one disk
	syncs, nanos atomic.Int64
}

func (s *slowSyncFS) wait() {
	s.mu.Lock()
	t := time.Now()
	time.Sleep(s.delay)
	s.nanos.Add(int64(time.Since(t)))
	s.syncs.Add(1)
	s.mu.Unlock()
}

func (s *slowSyncFS) Create(name string) (vfs.File, error) { return s.wrap(s.FS.Create(name)) }
func (s *slowSyncFS) OpenRW(name string) (vfs.File, error) { return s.wrap(s.FS.OpenRW(name)) }
func (s *slowSyncFS) Open(name string) (vfs.File, error)   { return s.wrap(s.FS.Open(name)) }

func (s *slowSyncFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &slowSyncFile{File: f, fs: s}, nil
}

func (s *slowSyncFS) SyncDir(dir string) error {
	s.wait()
	return s.FS.SyncDir(dir)
}

type slowSyncFile struct {
	vfs.File
	fs *slowSyncFS
}

func (f *slowSyncFile) Sync() error {
	f.fs.wait()
	return f.File.Sync()
}
