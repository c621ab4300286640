package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// kv is one record of a compaction test: a nil value is a tombstone.
type kv struct {
	key, value []byte
	ts         int64
}

// kvBatch builds a batch of records with keys, compressed with codec.
func kvBatch(t testing.TB, recs []kv, pid int64, seq int32, codec int) []byte {
	t.Helper()
	var b batch.Builder
	if pid >= 0 {
		b.Reset(pid, 0, seq)
	} else {
		b.Reset(-1, -1, -1)
	}
	for _, r := range recs {
		b.Add(r.ts, r.key, r.value)
	}
	p := bytes.Clone(b.Finish())
	if codec == batch.CompressionNone {
		return p
	}
	h, err := batch.Check(p)
	if err != nil {
		t.Fatal(err)
	}
	it, err := batch.NewIter(p)
	if err != nil {
		t.Fatal(err)
	}
	var rb batch.Rebuilder
	rb.Reset(&h)
	for it.Next() {
		rb.Add(it.Record(), nil)
	}
	out, err := rb.FinishCompressed(codec)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(out)
}

// logRecord is a record read back, at its offset.
type logRecord struct {
	key, value string
	tomb       bool
}

// readRecords reads every acknowledged record of l by offset, checking
// that batches follow on in offsets, and counts the batches.
func readRecords(t testing.TB, l *Log) (map[int64]logRecord, int) {
	t.Helper()
	out := map[int64]logRecord{}
	nb := 0
	for off, b := range readAll(t, l) {
		nb++
		h, _ := batch.Check(b)
		recs, err := batch.Decompress(nil, b)
		if err != nil {
			t.Fatalf("batch at %d: %v", off, err)
		}
		it, err := batch.NewIterRecords(recs, h.RecordCount)
		if err != nil {
			t.Fatalf("batch at %d: %v", off, err)
		}
		for it.Next() {
			r := it.Record()
			o := h.BaseOffset + int64(r.OffsetDelta)
			if o > h.LastOffset() {
				t.Fatalf("record at %d past its batch's last offset %d", o, h.LastOffset())
			}
			out[o] = logRecord{key: string(r.Key), value: string(r.Value), tomb: r.Value == nil}
		}
		if it.Err() != nil {
			t.Fatalf("batch at %d: %v", off, it.Err())
		}
	}
	return out, nb
}

// overwriteModel appends a key-overwrite workload and remembers the
// offset of each key's latest record.
type overwriteModel struct {
	latest map[string]int64
	tomb   map[string]bool
	value  map[string]string
}

func newModel() *overwriteModel {
	return &overwriteModel{latest: map[string]int64{}, tomb: map[string]bool{}, value: map[string]string{}}
}

// appendRound writes one value for each of keys [from, to), in batches
// of per records, some compressed; the keys in tombs get a tombstone.
func (m *overwriteModel) appendRound(t testing.TB, l *Log, round, from, to, per int, tombs func(k int) bool, ts int64) {
	t.Helper()
	codecs := []int{batch.CompressionNone, batch.CompressionGzip, batch.CompressionZstd, batch.CompressionNone, batch.CompressionLZ4, batch.CompressionSnappy}
	for k := from; k < to; k += per {
		var recs []kv
		for j := k; j < min(k+per, to); j++ {
			key := fmt.Sprintf("key-%05d", j)
			var v []byte
			if tombs == nil || !tombs(j) {
				v = fmt.Appendf(nil, "%s=%d/%s", key, round, bytes.Repeat([]byte{'v'}, 40))
			}
			recs = append(recs, kv{key: []byte(key), value: v, ts: ts})
		}
		base, err := l.Append(kvBatch(t, recs, -1, -1, codecs[(round+k/per)%len(codecs)]))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			m.latest[string(r.key)] = base + int64(i)
			m.tomb[string(r.key)] = r.value == nil
			m.value[string(r.key)] = string(r.value)
		}
	}
}

// check asserts that l holds, among the records below end, exactly one
// record per key (the latest, at its offset), tombstones only where
// tombs says they stay, and that every latest record at or past end is
// there too.
func (m *overwriteModel) check(t testing.TB, l *Log, end int64, tombsStay bool) {
	t.Helper()
	recs, _ := readRecords(t, l)
	seen := map[string]int64{}
	for off, r := range recs {
		if off >= end {
			continue
		}
		if prev, ok := seen[r.key]; ok {
			t.Fatalf("key %s below %d at offsets %d and %d after compaction", r.key, end, prev, off)
		}
		seen[r.key] = off
	}
	for key, off := range m.latest {
		r, ok := recs[off]
		switch {
		case m.tomb[key] && !tombsStay && off < end:
			if ok {
				t.Fatalf("tombstone of %s at %d still there past the horizon", key, off)
			}
		case !ok:
			t.Fatalf("latest record of %s (offset %d) is gone", key, off)
		case r.key != key || r.value != m.value[key] || r.tomb != m.tomb[key]:
			t.Fatalf("offset %d holds %+v, want %s=%q", off, r, key, m.value[key])
		}
	}
}

// TestCompactKeyOverwrite: 1,000 keys written 50 times over (some ending
// in a tombstone), compacted while appends go on: afterwards one record
// per key, the latest, at its offset; tombstones stay before their
// horizon and go after; the log reopens the same.
func TestCompactKeyOverwrite(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 64 << 10, Durability: Durability{Mode: SyncNever}}
	l := openT(t, dir, o)
	m := newModel()
	const keys, rounds = 1000, 50
	tombs := func(k int) bool { return k%10 == 0 }
	for r := range rounds {
		var tb func(int) bool
		if r == rounds-1 {
			tb = tombs
		}
		m.appendRound(t, l, r, 0, keys, 20, tb, 1_700_000_000_000+int64(r))
	}
	sizeBefore := l.Size()
	// Appends of other keys go on while compaction runs.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	other := newModel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; ; r++ {
			select {
			case <-stop:
				return
			default:
			}
			other.appendRound(t, l, r, keys, keys+50, 10, nil, 1_800_000_000_000)
		}
	}()
	st, err := l.Compact(CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if st.Written == 0 || st.Removed == 0 {
		t.Fatalf("compaction changed nothing: %+v", st)
	}
	m.check(t, l, st.End, true)
	other.check(t, l, 0, true)

	// Past the tombstones' horizon they go too.
	st2, err := l.Compact(CompactOptions{TombstonesBefore: 1_750_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	m.check(t, l, st2.End, false)
	t.Logf("before %d bytes; first pass %+v; second %+v; after %d bytes", sizeBefore, st, st2, l.Size())

	// A third pass only merges the small compacted segments; a fourth
	// changes nothing and writes nothing.
	if _, err := l.Compact(CompactOptions{TombstonesBefore: 1_750_000_000_000, End: st2.End}); err != nil {
		t.Fatal(err)
	}
	st3, err := l.Compact(CompactOptions{TombstonesBefore: 1_750_000_000_000, End: st2.End})
	if err != nil {
		t.Fatal(err)
	}
	if st3.Written != 0 {
		t.Fatalf("a pass over a compacted log rewrote %d segments: %+v", st3.Rewritten, st3)
	}
	want, _ := readRecords(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, o)
	defer l.Close()
	got, _ := readRecords(t, l)
	if !maps.Equal(got, want) {
		t.Fatalf("reopened, the log holds %d records, %d before", len(got), len(want))
	}
	m.check(t, l, st2.End, false)
	// Appends go on at the log's end.
	if _, err := l.Append(mkBatch("after", 1, 10, -1, -1)); err != nil {
		t.Fatal(err)
	}
}

// TestCompactKeepBatchesDeterministic: with KeepBatches every batch stays
// (emptied ones as headers), and two logs with the same batches but other
// segment boundaries compact to the same bytes at the same offsets; a
// second pass changes nothing.
func TestCompactKeepBatchesDeterministic(t *testing.T) {
	var logs [2]*Log
	for i, segBytes := range []int64{16 << 10, 40 << 10} {
		logs[i] = openT(t, t.TempDir(), Options{SegmentBytes: segBytes, Durability: Durability{Mode: SyncNever}})
		defer logs[i].Close()
		m := newModel()
		for r := range 10 {
			m.appendRound(t, logs[i], r, 0, 300, 7, func(k int) bool { return r == 9 && k%7 == 0 }, 1_700_000_000_000)
		}
	}
	before := readAll(t, logs[0])
	end := logs[0].NextOffset() - 100
	var after [2]map[int64][]byte
	for i, l := range logs {
		if _, err := l.Compact(CompactOptions{End: end, Roll: true, KeepBatches: true, TombstonesBefore: 1_800_000_000_000}); err != nil {
			t.Fatal(err)
		}
		after[i] = readAll(t, l)
	}
	if len(after[0]) != len(before) {
		t.Fatalf("%d batches after compaction, %d before: KeepBatches dropped some", len(after[0]), len(before))
	}
	for off, b := range after[0] {
		if !bytes.Equal(b[batch.OffLength:], after[1][off][batch.OffLength:]) {
			t.Fatalf("the batch at %d differs between two logs compacted alike", off)
		}
	}
	if _, err := logs[0].Compact(CompactOptions{End: end, KeepBatches: true, TombstonesBefore: 1_800_000_000_000}); err != nil {
		t.Fatal(err)
	}
	again := readAll(t, logs[0])
	for off, b := range again {
		if !bytes.Equal(b, after[0][off]) {
			t.Fatalf("a second pass changed the batch at %d", off)
		}
	}
}

// TestCompactKeepsProducerBatches: the last batches of an idempotent
// producer stay (emptied) so that its retry is still recognized after a
// reopen that scans the whole log (no checkpoint).
func TestCompactKeepsProducerBatches(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 8 << 10, Durability: Durability{Mode: SyncNever}}
	l := openT(t, "/p", o)
	var last []byte
	var lastBase int64
	for i := range 200 {
		last = kvBatch(t, []kv{{key: []byte("k"), value: fmt.Appendf(nil, "v%d", i), ts: 1}}, 7, int32(i), batch.CompressionNone)
		base, err := l.Append(bytes.Clone(last))
		if err != nil {
			t.Fatal(err)
		}
		lastBase = base
	}
	// More appends of another producer so that the first one's last batch
	// lies in a sealed segment.
	for i := range 200 {
		if _, err := l.Append(kvBatch(t, []kv{{key: []byte("other"), value: []byte("x"), ts: 1}}, 8, int32(i), batch.CompressionNone)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := mem.Remove("/p/" + checkpointName); err != nil {
		t.Fatal(err)
	}
	l = openT(t, "/p", o)
	defer l.Close()
	base, err := l.Append(last)
	if err != nil || base != lastBase {
		t.Fatalf("retry of the producer's last batch: base %d, %v; want %d (recognized)", base, err, lastBase)
	}
}

// TestCompactCrashAtEveryOperation cuts the power at each file operation
// of a compaction pass (and of the reopen after it): the log then reads
// exactly the records it held before the pass, or those it holds after a
// whole pass, never a mix, and every latest value is there.
func TestCompactCrashAtEveryOperation(t *testing.T) {
	build := func(fs vfs.FS) (*Log, *overwriteModel) {
		l := openT(t, "/c", Options{FS: fs, SegmentBytes: 4 << 10, IndexIntervalBytes: 256})
		m := newModel()
		for r := range 6 {
			m.appendRound(t, l, r, 0, 40, 8, func(k int) bool { return r == 5 && k%9 == 0 }, 1_700_000_000_000)
		}
		// Closed and opened again, so that no seal is pending: every
		// run compacts the same segments.
		l.Close()
		return openT(t, "/c", Options{FS: fs, SegmentBytes: 4 << 10, IndexIntervalBytes: 256}), m
	}
	compact := CompactOptions{TombstonesBefore: 1_800_000_000_000}
	// The reference: the records before and after a whole pass.
	ref := vfs.NewMem()
	l, m := build(ref)
	before, _ := readRecords(t, l)
	st, err := l.Compact(compact)
	if err != nil || st.Written < 2 {
		t.Fatalf("reference pass: %+v, %v; want at least two segments written", st, err)
	}
	after, _ := readRecords(t, l)
	l.Close()
	m.check(t, openT(t, "/c", Options{FS: ref}), st.End, false)

	sawBefore, sawAfter := 0, 0
	for at := 1; ; at++ {
		mem := vfs.NewMem()
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 11))}
		l, _ := build(cfs)
		cfs.mu.Lock()
		cfs.crashAt = cfs.ops + at
		cfs.mu.Unlock()
		_, err := l.Compact(compact)
		if err != nil && !errors.Is(err, errPowerLoss) && !errors.Is(err, ErrFailed) {
			t.Fatalf("crash at %d: compact: %v", at, err)
		}
		done := cfs.alive() == nil
		l.Close()
		if done {
			if at < 3 {
				t.Fatalf("a pass took %d file operations", at)
			}
			t.Logf("a pass has %d file operations; the log read as before %d times, as after %d times", at-1, sawBefore, sawAfter)
			break
		}
		// The reopen may crash too (it completes a swap): until it holds.
		cfs = &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 12)), crashAt: 1 + at%7}
		if l, err := Open("/c", Options{FS: cfs, SegmentBytes: 4 << 10, Logger: quiet}); err == nil {
			l.Close()
		} else if !errors.Is(err, errPowerLoss) {
			t.Fatalf("crash at %d: reopen: %v", at, err)
		}
		if cfs.alive() == nil {
			mem.Crash(cfs.rng)
		}
		l = openT(t, "/c", Options{FS: mem, SegmentBytes: 4 << 10})
		got, _ := readRecords(t, l)
		switch {
		case maps.Equal(got, before):
			sawBefore++
		case maps.Equal(got, after):
			sawAfter++
		default:
			t.Fatalf("crash at %d: the log holds %d records, neither the %d before the pass nor the %d after", at, len(got), len(before), len(after))
		}
		// Each key's latest value is there, whichever it is.
		for key, off := range m.latest {
			if r, ok := got[off]; !m.tomb[key] && (!ok || r.value != m.value[key]) {
				t.Fatalf("crash at %d: latest value of %s at %d lost", at, key, off)
			}
		}
		// And the log goes on: appends, another pass.
		if _, err := l.Append(mkBatch("more", 2, 10, -1, -1)); err != nil {
			t.Fatalf("crash at %d: append after reopen: %v", at, err)
		}
		if _, err := l.Compact(compact); err != nil {
			t.Fatalf("crash at %d: compact after reopen: %v", at, err)
		}
		l.Close()
	}
}

// TestCompactWriteErrorAbandons: a failed write of the output (a full
// disk) abandons the pass and leaves the log as it was, usable; a failed
// fdatasync of it fails the log.
func TestCompactWriteErrorAbandons(t *testing.T) {
	mem := vfs.NewMem()
	ffs := vfs.NewFault(mem)
	l := openT(t, "/w", Options{FS: ffs, SegmentBytes: 4 << 10, Durability: Durability{Mode: SyncNever}})
	m := newModel()
	for r := range 4 {
		m.appendRound(t, l, r, 0, 30, 5, nil, 1)
	}
	before, _ := readRecords(t, l)
	// The last roll's seal may still be pending in the background: a
	// segment being sealed is no input, so finish it first.
	l.ckptMu.Lock()
	if err := l.finishSeal(); err != nil {
		t.Fatal(err)
	}
	l.ckptMu.Unlock()
	ffs.SetMatch(func(name string) bool { return strings.HasSuffix(name, compactSuffix) })
	ffs.FailWrite(0, syscall.ENOSPC)
	if _, err := l.Compact(CompactOptions{}); err == nil || errors.Is(err, ErrFailed) {
		t.Fatalf("compaction on a full disk: %v; want an error that does not fail the log", err)
	}
	ffs.Reset()
	ffs.SetMatch(nil)
	got, _ := readRecords(t, l)
	if !maps.Equal(got, before) {
		t.Fatal("an abandoned pass changed the log")
	}
	if _, err := l.Append(mkBatch("x", 1, 10, -1, -1)); err != nil {
		t.Fatalf("append after an abandoned pass: %v", err)
	}
	names, _ := mem.List("/w")
	if slices.ContainsFunc(names, func(n string) bool { _, ok := parseBaseName(n, compactSuffix); return ok }) {
		t.Fatalf("the abandoned output is still there: %v", names)
	}
	ffs.SetMatch(func(name string) bool { return strings.HasSuffix(name, compactSuffix) })
	ffs.FailSync(0, syscall.EIO)
	if _, err := l.Compact(CompactOptions{}); !errors.Is(err, ErrFailed) {
		t.Fatalf("compaction whose fdatasync failed: %v; want ErrFailed", err)
	}
	l.Close()
}

// FuzzCompactCommit decodes arbitrary commit files: no panic, and what
// decodes encodes back to the same bytes.
func FuzzCompactCommit(f *testing.F) {
	seg := func(base, next int64) compactOutput {
		s := newSegment("/x", base)
		s.next = next
		return compactOutput{seg: s}
	}
	f.Add(encodeCommit([]compactOutput{seg(0, 10), seg(10, 400)}))
	f.Add(encodeCommit(nil))
	f.Add([]byte(commitMagic + "\xff\xff\xff\xff"))
	f.Add([]byte(commitMagic + "\x00\x00\x00\x01\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"))
	f.Add([]byte("SENSECM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodeCommit(b)
		if err != nil {
			return
		}
		outs := make([]compactOutput, len(rs))
		for i, r := range rs {
			outs[i] = seg(r.base, r.end)
		}
		if !bytes.Equal(encodeCommit(outs), b) {
			t.Fatalf("decoded %v, which encodes to other bytes", rs)
		}
	})
}

// FuzzCompactBatch compacts a log holding an arbitrary (valid) batch
// among keyed ones, both ways: no panic, and the log still reads whole at
// every offset, the arbitrary batch's offsets included.
func FuzzCompactBatch(f *testing.F) {
	f.Add(kvBatch(f, []kv{{key: []byte("a"), value: []byte("1")}, {key: []byte("a")}}, -1, -1, batch.CompressionNone))
	f.Add(kvBatch(f, []kv{{key: []byte("a"), value: []byte("1")}, {key: nil, value: []byte("2")}}, 3, 0, batch.CompressionGzip))
	f.Add(kvBatch(f, []kv{{key: []byte("b"), value: []byte("3")}}, -1, -1, batch.CompressionZstd))
	f.Add(batch.Control(0, batch.ControlCommit, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := batch.Check(b); err != nil {
			return
		}
		for _, keep := range []bool{false, true} {
			l := openT(t, "/f", Options{FS: vfs.NewMem(), Durability: Durability{Mode: SyncNever}})
			for i := range 3 {
				if _, err := l.Append(kvBatch(t, []kv{{key: []byte("a"), value: []byte{byte(i)}}, {key: []byte("b")}}, -1, -1, batch.CompressionNone)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.Append(bytes.Clone(b)); err != nil {
				l.Close()
				return // refused as any append would be
			}
			if _, err := l.Append(kvBatch(t, []kv{{key: []byte("a"), value: []byte("z")}}, -1, -1, batch.CompressionNone)); err != nil {
				t.Fatal(err)
			}
			next := l.NextOffset()
			// A batch whose records do not decode fails the pass, which
			// then changes nothing; any other outcome must read whole.
			l.Compact(CompactOptions{Roll: true, KeepBatches: keep, TombstonesBefore: 1 << 62})
			readAll(t, l)
			if l.HighWatermark() != next {
				t.Fatalf("high watermark %d after compaction, %d before", l.HighWatermark(), next)
			}
			l.Close()
		}
	})
}

// BenchmarkCompact compacts a key-overwrite workload: 10,000 keys written
// 20 times over (100-byte values, batches of 100 records), in 1 MiB
// segments on the machine's disk. It reports the throughput over the
// bytes read, and the log's size after compaction against the live data
// (a log holding only the latest record of each key, in the same
// batches): disk/live.
func BenchmarkCompact(b *testing.B) {
	const keys, rounds, per = 10_000, 20, 100
	write := func(dir string, from, to int) *Log {
		l := openT(b, dir, Options{SegmentBytes: 1 << 20, Durability: Durability{Mode: SyncNever}})
		m := newModel()
		for r := from; r < to; r++ {
			m.appendRound(b, l, r, 0, keys, per, nil, 1_700_000_000_000)
		}
		return l
	}
	live := write(b.TempDir(), rounds-1, rounds)
	liveBytes := live.Size()
	live.Close()
	var before, after int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		l := write(b.TempDir(), 0, rounds)
		if err := l.Roll(); err != nil {
			b.Fatal(err)
		}
		before = l.Size()
		b.StartTimer()
		st, err := l.Compact(CompactOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Written == 0 {
			b.Fatal("nothing compacted")
		}
		after = l.Size()
		b.SetBytes(before)
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(after)/float64(liveBytes), "disk/live")
	b.ReportMetric(float64(before)/float64(liveBytes), "before/live")
}

// TestCompactBackground: a log with compaction enabled compacts its
// sealed segments by itself as they fill, and reports each pass.
func TestCompactBackground(t *testing.T) {
	var mu sync.Mutex
	var passes []CompactStats
	l := openT(t, t.TempDir(), Options{SegmentBytes: 16 << 10, Durability: Durability{Mode: SyncNever},
		Compaction: CompactPolicy{Enabled: true},
		ObserveCompaction: func(st CompactStats, err error) {
			if err != nil {
				t.Errorf("background pass: %v", err)
			}
			mu.Lock()
			passes = append(passes, st)
			mu.Unlock()
		}})
	defer l.Close()
	m := newModel()
	for r := range 40 {
		m.appendRound(t, l, r, 0, 100, 10, nil, 1)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		dirty, sealed := l.Dirty()
		mu.Lock()
		n := len(passes)
		mu.Unlock()
		if n > 0 && dirty < sealed/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background compaction within 10s: %d passes, %d of %d sealed bytes dirty", n, dirty, sealed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.check(t, l, 0, true)
}
