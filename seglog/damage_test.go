package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// buildLog writes a closed log of a few segments into mem and returns the
// batches by base offset.
func buildLog(t *testing.T, mem vfs.FS, dir string, o Options) map[int64][]byte {
	t.Helper()
	o.FS = mem
	l := openT(t, dir, o)
	want := map[int64][]byte{}
	for i := 0; i < 60; i++ {
		b := mkBatch(fmt.Sprint(i), 1+i%5, 80, 3, int32(i*100))
		if i > 0 {
			// make sequences follow on
			b = mkBatchSeq(i, 3, want)
		}
		orig := bytes.Clone(b)
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		want[base] = orig
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// mkBatchSeq builds the i-th batch of producer pid whose earlier batches are
// in prev, with the right next sequence.
func mkBatchSeq(i int, pid int64, prev map[int64][]byte) []byte {
	var seq int32
	for _, b := range prev {
		h, _ := batch.ParseHeader(b)
		if h.ProducerID == pid {
			seq = max(seq, h.LastSequence()+1)
		}
	}
	return mkBatch(fmt.Sprint(i), 1+i%5, 80, pid, seq)
}

// TestBitFlipsDetected flips one bit at many places in a segment file and
// checks that every read either returns the original batches or fails with
// a *CorruptionError: damaged data is never served. Only the leader-epoch
// field (outside the CRC by the Kafka format) may change undetected, and
// then nothing but the epoch differs.
func TestBitFlipsDetected(t *testing.T) {
	o := Options{SegmentBytes: 8 << 10, IndexIntervalBytes: 256, Logger: quiet}
	base := vfs.NewMem()
	want := buildLog(t, base, "/b", o)
	names, _ := base.List("/b")
	var segFiles []string
	for _, n := range names {
		if _, ok := parseSegmentName(n); ok {
			segFiles = append(segFiles, n)
		}
	}
	if len(segFiles) < 3 {
		t.Fatalf("want several segments, got %v", segFiles)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	flips, detected := 0, 0
	for _, name := range segFiles {
		orig, err := base.ReadFile("/b/" + name)
		if err != nil {
			t.Fatal(err)
		}
		// The active segment's preallocated zero tail is not data.
		orig = orig[:dataEnd(orig)]
		// Every byte of the first 200, then random ones.
		var positions []int64
		for p := 0; p < min(200, len(orig)); p++ {
			positions = append(positions, int64(p))
		}
		for i := 0; i < 150; i++ {
			positions = append(positions, int64(rng.IntN(len(orig))))
		}
		// The leader-epoch field of each batch lies outside the CRC.
		inEpoch := map[int64]bool{}
		for p := 0; p < len(orig); {
			n := mustSize(t, orig[p:])
			for i := 0; i < 4; i++ {
				inEpoch[int64(p+batch.OffLeaderEpoch+i)] = true
			}
			p += n
		}
		for _, pos := range positions {
			mem := cloneMem(t, base, "/b")
			bit := byte(1) << rng.IntN(8)
			if err := mem.Corrupt("/b/"+name, pos, bit); err != nil {
				t.Fatal(err)
			}
			flips++
			if checkDamagedRead(t, mem, o, want, name, pos) {
				detected++
			} else if !inEpoch[pos] {
				t.Fatalf("flip of bit %#x in %s at %d went undetected", bit, name, pos)
			}
		}
	}
	t.Logf("%d flips, %d detected as corruption, the rest in leader-epoch fields", flips, detected)
}

// checkDamagedRead opens the damaged log and reads everything. It reports
// whether corruption was detected.
func checkDamagedRead(t *testing.T, mem vfs.FS, o Options, want map[int64][]byte, name string, pos int64) bool {
	t.Helper()
	o.FS = mem
	l, err := Open("/b", o)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return true
		}
		t.Fatalf("flip in %s at %d: open: %v", name, pos, err)
	}
	defer l.Close()
	detected := false
	for off, reads := l.StartOffset(), 0; off < l.HighWatermark(); reads++ {
		if reads > 10000 {
			t.Fatalf("flip in %s at %d: reading does not advance, stuck at offset %d (start %d, hw %d)", name, pos, off, l.StartOffset(), l.HighWatermark())
		}
		buf, err := l.Read(nil, off, 1<<10)
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("flip in %s at %d: read at %d: %v (not a CorruptionError)", name, pos, off, err)
			}
			detected = true
			off = nextWanted(want, off)
			continue
		}
		for len(buf) > 0 {
			h, err := batch.Check(buf[:mustSize(t, buf)])
			if err != nil {
				t.Fatalf("flip in %s at %d: read returned a damaged batch: %v", name, pos, err)
			}
			w := want[h.BaseOffset]
			if w == nil || !sameRecords(w, buf[:h.Size()]) {
				t.Fatalf("flip in %s at %d: read returned batch %d that differs from what was written", name, pos, h.BaseOffset)
			}
			buf = buf[h.Size():]
			off = h.NextOffset()
		}
	}
	return detected
}

// nextWanted returns the offset after the written batch at off (batches in
// want were cloned before Append set their base offsets).
func nextWanted(want map[int64][]byte, off int64) int64 {
	if want[off] == nil {
		return off + 1
	}
	h, _ := batch.ParseHeader(want[off])
	return off + int64(h.LastDelta) + 1
}

// cloneMem copies the files of dir into a fresh MemFS.
func cloneMem(t *testing.T, src *vfs.MemFS, dir string) *vfs.MemFS {
	t.Helper()
	dst := vfs.NewMem()
	if err := dst.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	names, err := src.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := src.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		f, err := dst.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		f.Sync()
		f.Close()
	}
	dst.SyncDir(dir)
	return dst
}

// TestCorruptionBeforeTailIsReported damages a batch in the middle of the
// unchecked tail (past the checkpoint) and checks that recovery reports it
// with its place instead of cutting the log there.
func TestCorruptionBeforeTailIsReported(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 1 << 20, CheckpointBytes: 1 << 20, Logger: quiet}
	l := openT(t, "/c", o)
	var positions []int64
	var pos int64
	for i := 0; i < 20; i++ {
		b := mkBatch(fmt.Sprint(i), 3, 50, -1, -1)
		positions = append(positions, pos)
		pos += int64(len(b))
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	// Abandon the log without Close (as a crash would) after the open-time
	// checkpoint at 0, so recovery scans all 20 batches.
	mem.CrashClean()
	seg := "/c/" + segmentName(0, logSuffix)
	if err := mem.Corrupt(seg, positions[10]+40, 0x10); err != nil {
		t.Fatal(err)
	}
	_, err := Open("/c", o)
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("open with damage before the tail: %v, want a CorruptionError", err)
	}
	if ce.Position != positions[10] || ce.Segment != seg || ce.Offset != 30 {
		t.Fatalf("corruption reported at %s:%d offset %d, want %s:%d offset 30", ce.Segment, ce.Position, ce.Offset, seg, positions[10])
	}
	// Nothing was cut.
	data, _ := mem.ReadFile(seg)
	if int64(len(data)) < pos {
		t.Fatalf("segment is %d bytes after the failed open, was %d", len(data), pos)
	}
	// Damage to the very last batch is a torn tail: it is cut.
	mem2 := cloneMem(t, mem, "/c")
	mem2.Corrupt(seg, positions[10]+40, 0x10) // undo
	mem2.Corrupt(seg, positions[19]+40, 0x10)
	o.FS = mem2
	l = openT(t, "/c", o)
	defer l.Close()
	if l.NextOffset() != 57 {
		t.Fatalf("after cutting a torn last batch the log ends at %d, want 57", l.NextOffset())
	}
}

// TestCutCorrupt: with Options.CutCorrupt, damage before the tail (here in
// a sealed segment, with later segments after it) makes recovery cut the
// log at the damaged batch instead of refusing to open: the batches before
// it read back as written, the log ends at the damaged batch's offset, and
// it takes appends again; CutAt says where it cut.
func TestCutCorrupt(t *testing.T) {
	mem := vfs.NewMem()
	o := Options{FS: mem, SegmentBytes: 4 << 10, CheckpointBytes: 1 << 20, Logger: quiet}
	l := openT(t, "/cc", o)
	var bases []int64
	for i := 0; i < 60; i++ {
		base, err := l.Append(mkBatch(fmt.Sprint(i), 3, 50, -1, -1))
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base)
	}
	mem.CrashClean()
	// Damage the first batch of the active segment, which recovery scans
	// (past the checkpoint of the last roll); valid batches follow it.
	names, err := mem.List("/cc")
	if err != nil {
		t.Fatal(err)
	}
	seg := ""
	for _, n := range names {
		if strings.HasSuffix(n, logSuffix) && "/cc/"+n > seg {
			seg = "/cc/" + n
		}
	}
	if seg == "/cc/"+segmentName(0, logSuffix) {
		t.Fatal("the log did not roll: no sealed segment before the damage")
	}
	if err := mem.Corrupt(seg, 100, 0x10); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("/cc", o); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without CutCorrupt: %v, want a corruption error", err)
	}
	o.CutCorrupt = true
	l = openT(t, "/cc", o)
	defer l.Close()
	at, cut := l.CutAt()
	if !cut || at != l.NextOffset() || at <= bases[0] || at >= bases[len(bases)-1] {
		t.Fatalf("CutAt %d, %v; log ends at %d", at, cut, l.NextOffset())
	}
	got, err := l.Read(nil, 0, 1<<20)
	if err != nil || len(got) == 0 {
		t.Fatalf("read before the cut: %d bytes, %v", len(got), err)
	}
	if _, err := l.Append(mkBatch("after", 3, 50, -1, -1)); err != nil {
		t.Fatalf("append after the cut: %v", err)
	}
}

// TestMissingAndDamagedIndexRebuilt removes or damages index files and
// checks the log still serves every batch.
func TestMissingAndDamagedIndexRebuilt(t *testing.T) {
	o := Options{SegmentBytes: 8 << 10, IndexIntervalBytes: 256, Logger: quiet}
	base := vfs.NewMem()
	want := buildLog(t, base, "/b", o)
	names, _ := base.List("/b")
	for _, n := range names {
		if filepath.Ext(n) != indexSuffix && filepath.Ext(n) != timeIndexSuffix {
			continue
		}
		for _, how := range []string{"remove", "flip", "truncate"} {
			mem := cloneMem(t, base, "/b")
			p := "/b/" + n
			switch how {
			case "remove":
				mem.Remove(p)
			case "flip":
				mem.Corrupt(p, 3, 0x40)
			case "truncate":
				f, _ := mem.OpenRW(p)
				f.Truncate(5)
				f.Close()
			}
			oo := o
			oo.FS = mem
			l := openT(t, "/b", oo)
			got := readAll(t, l)
			if len(got) != len(want) {
				t.Fatalf("%s %s: %d batches, want %d", how, n, len(got), len(want))
			}
			for off, b := range want {
				if !sameRecords(got[off], b) {
					t.Fatalf("%s %s: batch %d differs", how, n, off)
				}
			}
			l.Close()
		}
	}
}

// TestFsyncErrorIsFatal: after an fdatasync fails, the append that waited
// for it fails, every later append fails, and nothing is reported durable
// that was not.
func TestFsyncErrorIsFatal(t *testing.T) {
	for _, mode := range []string{"always", "interval:1ms"} {
		t.Run(mode, func(t *testing.T) {
			mem := vfs.NewMem()
			ffs := vfs.NewFault(mem)
			d, _ := ParseDurability(mode)
			o := Options{FS: ffs, Durability: d, Logger: quiet}
			l := openT(t, "/f", o)
			var acked []int64
			for i := 0; i < 5; i++ {
				base, err := l.Append(mkBatch(fmt.Sprint(i), 2, 30, -1, -1))
				if err != nil {
					t.Fatal(err)
				}
				acked = append(acked, base)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			hw := l.HighWatermark()
			ffs.FailSync(0, syscall.EIO)
			if mode == "always" {
				if _, err := l.Append(mkBatch("x", 2, 30, -1, -1)); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("append whose fsync failed: %v, want ErrFailed wrapping EIO", err)
				}
				if l.HighWatermark() != hw {
					t.Fatalf("high watermark moved to %d after a failed fsync (was %d)", l.HighWatermark(), hw)
				}
			} else {
				// The append is acknowledged at write time (that is what
				// interval means); the failed background fsync then fails the log.
				l.Append(mkBatch("x", 2, 30, -1, -1))
				if err := l.Sync(); !errors.Is(err, ErrFailed) {
					t.Fatalf("sync after a failed background fsync: %v", err)
				}
			}
			// The fault is cleared, but the log never retries: it stays failed.
			ffs.Reset()
			if _, err := l.Append(mkBatch("y", 2, 30, -1, -1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the failure: %v, want ErrFailed", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Fatalf("sync after the failure: %v", err)
			}
			l.Close()
			// What was acknowledged before the failure survives a crash.
			mem.CrashClean()
			o.FS = mem
			l = openT(t, "/f", o)
			defer l.Close()
			got := readAll(t, l)
			for _, b := range acked {
				if got[b] == nil {
					t.Fatalf("acknowledged batch %d lost", b)
				}
			}
		})
	}
}

// TestWriteErrorsAreFatal: EIO on write, a short write, a full disk.
func TestWriteErrorsAreFatal(t *testing.T) {
	cases := map[string]func(*vfs.FaultFS){
		"eio":   func(f *vfs.FaultFS) { f.FailWrite(0, syscall.EIO) },
		"short": func(f *vfs.FaultFS) { f.ShortWrite(0) },
		"full":  func(f *vfs.FaultFS) { f.DiskFull(100) },
	}
	for name, inject := range cases {
		t.Run(name, func(t *testing.T) {
			mem := vfs.NewMem()
			ffs := vfs.NewFault(mem)
			o := Options{FS: ffs, Logger: quiet}
			l := openT(t, "/w", o)
			base, err := l.Append(mkBatch("ok", 2, 30, -1, -1))
			if err != nil {
				t.Fatal(err)
			}
			ffs.SetMatch(func(n string) bool { return filepath.Ext(n) == logSuffix })
			inject(ffs)
			if _, err := l.Append(mkBatch("bad", 2, 300, -1, -1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("append with a failing write: %v, want ErrFailed", err)
			}
			ffs.Reset()
			if _, err := l.Append(mkBatch("later", 2, 30, -1, -1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the failure: %v", err)
			}
			l.Close()
			// Reopening recovers: the acknowledged batch is there, the
			// partial one is cut, appends work again.
			o.FS = mem
			l = openT(t, "/w", o)
			defer l.Close()
			if got := readAll(t, l); len(got) != 1 || got[base] == nil {
				t.Fatalf("after reopen: %d batches", len(got))
			}
			if _, err := l.Append(mkBatch("again", 2, 30, -1, -1)); err != nil {
				t.Fatalf("append after reopen: %v", err)
			}
		})
	}
}

// TestRealDiskReopenAfterKill checks recovery on the OS file system with a
// torn tail left by a write that never completed.
func TestRealDiskTornTail(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{})
	for i := 0; i < 10; i++ {
		if _, err := l.Append(mkBatch(fmt.Sprint(i), 2, 40, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	seg := filepath.Join(dir, segmentName(0, logSuffix))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := mkBatch("torn", 5, 100, -1, -1)
	f.Write(half[:len(half)/2])
	f.Close()
	l = openT(t, dir, Options{})
	defer l.Close()
	if l.NextOffset() != 20 {
		t.Fatalf("next offset %d after cutting the torn tail, want 20", l.NextOffset())
	}
	if base, err := l.Append(mkBatch("next", 1, 10, -1, -1)); err != nil || base != 20 {
		t.Fatalf("append after recovery: %d %v", base, err)
	}
}

// dataEnd returns where the batches of a segment file end: its length, or
// the start of the all-zero (preallocated) tail.
func dataEnd(b []byte) int {
	p := 0
	for p < len(b) && !bytes.Equal(b[p:], make([]byte, len(b)-p)) {
		n, err := batch.Size(b[p:])
		if err != nil || p+n > len(b) {
			return len(b)
		}
		p += n
	}
	return p
}
